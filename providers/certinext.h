/* SPDX-License-Identifier: Apache-2.0 */
/* The CERTInext provider (type = certinext). */
#ifndef P11E_CERTINEXT_H
#define P11E_CERTINEXT_H

#include "provider.h"

extern const struct p11e_ca_ops p11e_certinext_ops;

#endif
