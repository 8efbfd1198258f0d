#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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

/* Length of the valid UTF-8 sequence at s (1..4), 0 when s does not start one. Overlong
 * forms, surrogates and code points past U+10FFFF are not valid. */
static size_t utf8_seq(const unsigned char *s, size_t len, uint32_t *cp) {
  unsigned char c = s[0];
  size_t n;
  uint32_t v;
  if (c < 0x80) n = 1, v = c;
  else if (c >= 0xC2 && c <= 0xDF) n = 2, v = c & 0x1F;
  else if (c >= 0xE0 && c <= 0xEF) n = 3, v = c & 0x0F;
  else if (c >= 0xF0 && c <= 0xF4) n = 4, v = c & 0x07;
  else return 0;
  if (n > len) return 0;
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    v = v << 6 | (s[i] & 0x3F);
  }
  if ((n == 3 && (v < 0x800 || (v >= 0xD800 && v <= 0xDFFF))) || (n == 4 && (v < 0x10000 || v > 0x10FFFF)))
    return 0;
  *cp = v;
  return n;
}

static const char hexd[] = "0123456789abcdef";

size_t gw_log_escape(const char *in, size_t len, int json, char *out, size_t cap) {
  const unsigned char *s = (const unsigned char *)in;
  size_t o = 0;
  if (!cap) return 0;
  for (size_t i = 0; i < len;) {
    char e[12];
    size_t n = 0;
    uint32_t cp = 0;
    size_t k = utf8_seq(s + i, len - i, &cp);
    if (k == 0) { /* not UTF-8: a log shipper or a terminal must not see the raw byte */
      if (json) memcpy(e, "\\ufffd", 6), n = 6;
      else e[0] = '\\', e[1] = 'x', e[2] = hexd[s[i] >> 4], e[3] = hexd[s[i] & 15], n = 4;
      k = 1;
    } else if (cp == '\n') e[0] = '\\', e[1] = 'n', n = 2;
    else if (cp == '\r') e[0] = '\\', e[1] = 'r', n = 2;
    else if (cp == '\t') e[0] = '\\', e[1] = 't', n = 2;
    else if (json && (cp == '"' || cp == '\\')) e[0] = '\\', e[1] = (char)cp, n = 2;
    /* C0, DEL, C1 and the Unicode line/paragraph separators: each could end a line or
     * drive a terminal */
    else if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029) {
      if (json || cp > 0xFF)
        n = (size_t)snprintf(e, sizeof e, "\\u%04x", (unsigned)cp);
      else
        e[0] = '\\', e[1] = 'x', e[2] = hexd[cp >> 4], e[3] = hexd[cp & 15], n = 4;
    } else {
      memcpy(e, s + i, k);
      n = k;
    }
    if (o + n + 1 > cap) break; /* cut before a whole character or escape, never inside */
    memcpy(out + o, e, n);
    o += n;
    i += k;
  }
  out[o] = 0;
  return o;
}

void gw_log(gw_log_level_t level, uint64_t conn_id, const char *fmt, ...) {
  if (level < g_level) return;
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  int len = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (len < 0) len = 0;
  if ((size_t)len >= sizeof msg) len = (int)sizeof msg - 1;
  /* Messages carry text a client chose (a token's kid, a user agent, an event name): every
   * line is escaped here, so no call site can let a client forge a line or a JSON field. */
  char esc[sizeof msg * 6 + 1];
  gw_log_escape(msg, (size_t)len, g_format == GW_LOG_JSON, esc, sizeof esc);

  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char when[64];
  snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(ts.tv_nsec / 1000000) % 1000);

  if (g_format == GW_LOG_JSON) {
    if (conn_id)
      fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"conn\":%llu,\"msg\":\"%s\"}\n", when,
              level_names[level], (unsigned long long)conn_id, esc);
    else
      fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"}\n", when, level_names[level],
              esc);
  } else if (conn_id) {
    fprintf(stderr, "%s %-5s conn=%llu %s\n", when, level_names[level],
            (unsigned long long)conn_id, esc);
  } else {
    fprintf(stderr, "%s %-5s %s\n", when, level_names[level], esc);
  }
}
