/* SPDX-License-Identifier: Apache-2.0 */
/* Messages for people go to stderr through here; stdout is for results. */
#ifndef P11E_LOG_H
#define P11E_LOG_H

typedef enum { P11E_LOG_ERROR, P11E_LOG_WARN, P11E_LOG_INFO, P11E_LOG_DEBUG } p11e_log_level;

void p11e_log_set_level(p11e_log_level level);
p11e_log_level p11e_log_get_level(void);
/* Parses "error|warn|info|debug"; returns -1 when unknown. */
int p11e_log_parse_level(const char *text);
void p11e_log(p11e_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define p11e_error(...) p11e_log(P11E_LOG_ERROR, __VA_ARGS__)
#define p11e_warn(...) p11e_log(P11E_LOG_WARN, __VA_ARGS__)
#define p11e_info(...) p11e_log(P11E_LOG_INFO, __VA_ARGS__)
#define p11e_debug(...) p11e_log(P11E_LOG_DEBUG, __VA_ARGS__)

#endif
