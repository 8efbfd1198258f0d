#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "json.h"

static gw_log_level_t g_level = GW_LOG_INFO;
static gw_log_format_t g_format = GW_LOG_TEXT;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void gw_log_setup(gw_log_level_t level, gw_log_format_t format) {
  g_level = level;
  g_format = format;
}

int gw_log_level_parse(const char *s, gw_log_level_t *out) {
  for (int i = 0; i < 4; i++)
    if (strcmp(s, level_names[i]) == 0) {
      *out = (gw_log_level_t)i;
      return 0;
    }
  return -1;
}

int gw_log_format_parse(const char *s, gw_log_format_t *out) {
  if (strcmp(s, "text") == 0) *out = GW_LOG_TEXT;
  else if (strcmp(s, "json") == 0) *out = GW_LOG_JSON;
  else return -1;
  return 0;
}

int gw_log_enabled(gw_log_level_t level) { return level >= g_level; }

void gw_log(gw_log_level_t level, uint64_t conn_id, const char *fmt, ...) {
  if (level < g_level) return;
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);

  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char when[64];
  snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(ts.tv_nsec / 1000000) % 1000);

  if (g_format == GW_LOG_JSON) {
    char esc[4200];
    gw_json_escape(msg, strlen(msg), esc, sizeof esc);
    if (conn_id)
      fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"conn\":%llu,\"msg\":%s}\n", when,
              level_names[level], (unsigned long long)conn_id, esc);
    else
      fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":%s}\n", when, level_names[level],
              esc);
  } else if (conn_id) {
    fprintf(stderr, "%s %-5s conn=%llu %s\n", when, level_names[level],
            (unsigned long long)conn_id, msg);
  } else {
    fprintf(stderr, "%s %-5s %s\n", when, level_names[level], msg);
  }
}
