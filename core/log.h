/* One logger for the whole gateway: levels, conn=<id> tags, text or JSON lines. */
#ifndef GW_LOG_H
#define GW_LOG_H

#include <stdint.h>

typedef enum { GW_LOG_DEBUG = 0, GW_LOG_INFO, GW_LOG_WARN, GW_LOG_ERROR } gw_log_level_t;
typedef enum { GW_LOG_TEXT = 0, GW_LOG_JSON } gw_log_format_t;

void gw_log_setup(gw_log_level_t level, gw_log_format_t format);
int gw_log_level_parse(const char *s, gw_log_level_t *out);
int gw_log_format_parse(const char *s, gw_log_format_t *out);
int gw_log_enabled(gw_log_level_t level);

/* conn_id 0 means "not about one connection". */
void gw_log(gw_log_level_t level, uint64_t conn_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define gw_debug(...) gw_log(GW_LOG_DEBUG, 0, __VA_ARGS__)
#define gw_info(...) gw_log(GW_LOG_INFO, 0, __VA_ARGS__)
#define gw_warn(...) gw_log(GW_LOG_WARN, 0, __VA_ARGS__)
#define gw_error(...) gw_log(GW_LOG_ERROR, 0, __VA_ARGS__)

#endif
