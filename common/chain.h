/* SPDX-License-Identifier: Apache-2.0 */
/* Certificates as the CAs send them, and the one place where the chain is
 * made of them. A provider reads what the CA sent (p11e_certs_read) and hands
 * it on as PEM in the order received; the agent finds the leaf by its key and
 * has OpenSSL order the rest (p11e_chain_build). docs/architecture.md, "Chains". */
#ifndef P11E_CHAIN_H
#define P11E_CHAIN_H

#include <stddef.h>
#include <time.h>

#include <openssl/x509.h>

#include "err.h"

/* Bare base64 (line breaks, CR and blanks allowed) to DER with OpenSSL's
 * decoder; *der is OPENSSL_malloc'd. 0, or -1 when it is not base64. */
int p11e_base64_der(const char *text, unsigned char **der, size_t *len);

/* Appends the certificates of `text` to `certs`: PEM blocks (LF or CRLF), or
 * one bare base64 DER certificate. Returns how many were read, 0 for a text
 * that is empty or blank, -1 when a block or the base64 is not a certificate
 * (those read before it stay in `certs`). */
int p11e_certs_read(const char *text, STACK_OF(X509) * certs);

/* PEM text of `first` (when not NULL) and then of the first `n` of `more`
 * (n < 0: all of them); malloc'd, NULL when out of memory. */
char *p11e_certs_pem(X509 *first, const STACK_OF(X509) * more, int n);

/* The serial as p11enroll shows it everywhere (journal, status, hooks):
 * upper-case hex, two digits a byte, as `openssl x509 -serial` prints it. */
void p11e_cert_serial(const X509 *cert, char *buf, size_t len);
/* notAfter as a time, 0 when it cannot be read. */
time_t p11e_cert_not_after(const X509 *cert);

/* From the PEM certificates a CA sent (any order, any count, duplicates and
 * strangers included) takes the leaf as the one that carries `pub` — never
 * by position — and has OpenSSL build its chain from the others (a link
 * needs the issuer's name and its signature). *cas: the leaf's issuer first,
 * up to the root when one was sent. Certificates outside the chain are
 * named in a warning and left out. No certificate for the key is P11E_EFAIL
 * saying so. */
p11e_status p11e_chain_build(const char *pem, EVP_PKEY *pub, X509 **leaf, STACK_OF(X509) * *cas,
			     struct p11e_err *err);
/* The certificate signed itself (a root). */
int p11e_cert_self_signed(X509 *cert);

#endif
