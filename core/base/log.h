/* One logger for the whole gateway: levels, conn=<id> tags, text or JSON lines. */
#ifndef GW_LOG_H
#define GW_LOG_H

#include <stddef.h>
#include <stdint.h>

typedef enum { GW_LOG_DEBUG = 0, GW_LOG_INFO, GW_LOG_WARN, GW_LOG_ERROR } gw_log_level_t;
typedef enum { GW_LOG_TEXT = 0, GW_LOG_JSON } gw_log_format_t;

void gw_log_setup(gw_log_level_t level, gw_log_format_t format);
int gw_log_level_parse(const char *s, gw_log_level_t *out);
int gw_log_format_parse(const char *s, gw_log_format_t *out);
int gw_log_enabled(gw_log_level_t level);

/* Escapes in[0..len) for one log line into out (NUL-terminated, cut to fit cap, never
 * inside a character or an escape); returns its length. Text format (json 0): newline,
 * CR and tab as \n \r \t, other control characters (C0, DEL, C1) as \xHH, U+2028/2029
 * as \u2028/\u2029, bytes that are not UTF-8 as \xHH; a backslash is kept. JSON (json 1):
 * the inside of a JSON string, with \ufffd for bytes that are not UTF-8. gw_log applies it
 * to every message, so client-supplied text cannot forge a line. */
size_t gw_log_escape(const char *in, size_t len, int json, char *out, size_t cap);

/* conn_id 0 means "not about one connection". */
void gw_log(gw_log_level_t level, uint64_t conn_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define gw_debug(...) gw_log(GW_LOG_DEBUG, 0, __VA_ARGS__)
#define gw_info(...) gw_log(GW_LOG_INFO, 0, __VA_ARGS__)
#define gw_warn(...) gw_log(GW_LOG_WARN, 0, __VA_ARGS__)
#define gw_error(...) gw_log(GW_LOG_ERROR, 0, __VA_ARGS__)

#endif
