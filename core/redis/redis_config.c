#include "redis_config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"

void gw_redis_config_defaults(gw_redis_config_t *c) {
  memset(c, 0, sizeof *c);
  snprintf(c->host, sizeof c->host, "127.0.0.1");
  c->port = 6379;
  snprintf(c->prefix, sizeof c->prefix, "aivo:");
  c->connect_timeout_ms = 2000;
  c->command_timeout_ms = 2000;
}

static int fail(char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return GW_EINVAL;
}

/* Decimal in [lo, hi], the whole of s[0..len). */
static int parse_num(const char *s, size_t len, long lo, long hi, long *out) {
  if (len == 0 || len > 10) return GW_EINVAL;
  long v = 0;
  for (size_t i = 0; i < len; i++) {
    if (!isdigit((unsigned char)s[i])) return GW_EINVAL;
    v = v * 10 + (s[i] - '0');
  }
  if (v < lo || v > hi) return GW_EINVAL;
  *out = v;
  return 0;
}

static int hexval(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

/* %XX-decodes s[0..len) into out (cap bytes with the NUL); refuses NUL bytes. */
static int decode(const char *s, size_t len, char *out, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    char ch = s[i];
    if (ch == '%') {
      if (i + 2 >= len) return GW_EINVAL; /* needs two hex digits */
      int a = hexval(s[i + 1]), b = hexval(s[i + 2]);
      if (a < 0 || b < 0 || (a == 0 && b == 0)) return GW_EINVAL;
      ch = (char)(a * 16 + b);
      i += 2;
    }
    if (o + 1 >= cap) return GW_EINVAL;
    out[o++] = ch;
  }
  out[o] = '\0';
  return 0;
}

int gw_redis_config_parse_url(gw_redis_config_t *c, const char *url, char *err, size_t errlen) {
  static const char scheme[] = "redis://";
  if (!url || !*url) return fail(err, errlen, "empty Redis URL");
  if (strncmp(url, "rediss://", 9) == 0)
    return fail(err, errlen, "rediss:// (TLS) is not supported by hiredis 0.14: use redis:// "
                             "on a trusted network or a TLS tunnel");
  if (strncmp(url, scheme, sizeof scheme - 1) != 0)
    return fail(err, errlen, "Redis URL must start with redis:// (redis://[:password@]host:port[/db])");
  gw_redis_config_t n = *c;
  n.username[0] = n.password[0] = '\0';
  n.db = 0;
  n.port = 6379;
  const char *p = url + sizeof scheme - 1;
  const char *end = p + strlen(p);
  /* userinfo: the last '@' before the first '/' (a password may contain '@' only escaped) */
  const char *slash = memchr(p, '/', (size_t)(end - p));
  const char *hostend = slash ? slash : end;
  const char *at = NULL;
  for (const char *q = p; q < hostend; q++)
    if (*q == '@') at = q;
  if (at) {
    const char *colon = memchr(p, ':', (size_t)(at - p));
    if (!colon)
      return fail(err, errlen, "Redis URL: the part before '@' must be [username]:password");
    if (decode(p, (size_t)(colon - p), n.username, sizeof n.username) ||
        decode(colon + 1, (size_t)(at - colon - 1), n.password, sizeof n.password))
      return fail(err, errlen, "Redis URL: bad username or password (bad %%XX escape, or over %d bytes)",
                  GW_REDIS_SECRET_MAX);
    if (!n.password[0]) return fail(err, errlen, "Redis URL: empty password after ':'");
    p = at + 1;
  }
  /* host[:port] */
  const char *hs = p, *he, *portp = NULL;
  if (*p == '[') {
    const char *rb = memchr(p, ']', (size_t)(hostend - p));
    if (!rb) return fail(err, errlen, "Redis URL: '[' without ']' in the host");
    hs = p + 1;
    he = rb;
    if (rb + 1 < hostend) {
      if (rb[1] != ':') return fail(err, errlen, "Redis URL: junk after ']'");
      portp = rb + 2;
    }
  } else {
    const char *colon = memchr(p, ':', (size_t)(hostend - p));
    he = colon ? colon : hostend;
    if (colon) portp = colon + 1;
  }
  size_t hlen = (size_t)(he - hs);
  if (hlen == 0) return fail(err, errlen, "Redis URL: no host");
  if (hlen > GW_REDIS_HOST_MAX) return fail(err, errlen, "Redis URL: host over %d bytes", GW_REDIS_HOST_MAX);
  for (size_t i = 0; i < hlen; i++) {
    unsigned char ch = (unsigned char)hs[i];
    if (!(isalnum(ch) || ch == '.' || ch == '-' || ch == '_' || ch == ':'))
      return fail(err, errlen, "Redis URL: bad character in the host");
  }
  memcpy(n.host, hs, hlen);
  n.host[hlen] = '\0';
  if (portp) {
    long v;
    if (parse_num(portp, (size_t)(hostend - portp), 1, 65535, &v))
      return fail(err, errlen, "Redis URL: the port must be a number 1..65535");
    n.port = (int)v;
  }
  if (slash && slash + 1 < end) {
    long v;
    if (parse_num(slash + 1, (size_t)(end - slash - 1), 0, 1000000, &v))
      return fail(err, errlen, "Redis URL: the database after '/' must be a number (0..1000000), "
                               "with nothing after it");
    n.db = (int)v;
  }
  n.configured = 1;
  *c = n;
  return 0;
}

static const char *env(const char *name) {
  const char *v = getenv(name);
  return v && *v ? v : NULL;
}

int gw_redis_config_resolve(gw_redis_config_t *c, const char *cli_url, char *err,
                            size_t errlen) {
  gw_redis_config_t n = *c;
  const char *url = cli_url && *cli_url ? cli_url : env("REDIS_URL");
  const char *what = cli_url && *cli_url ? "--redis" : "REDIS_URL";
  if (url) {
    char e[200];
    if (gw_redis_config_parse_url(&n, url, e, sizeof e))
      return fail(err, errlen, "%s: %s", what, e);
  } else {
    const char *host = env("REDIS_HOST"), *port = env("REDIS_PORT"), *db = env("REDIS_DB");
    if (host) {
      if (strlen(host) > GW_REDIS_HOST_MAX) return fail(err, errlen, "REDIS_HOST: over %d bytes", GW_REDIS_HOST_MAX);
      snprintf(n.host, sizeof n.host, "%s", host);
    }
    long v;
    if (port) {
      if (parse_num(port, strlen(port), 1, 65535, &v))
        return fail(err, errlen, "REDIS_PORT: must be a number 1..65535");
      n.port = (int)v;
    }
    if (db) {
      if (parse_num(db, strlen(db), 0, 1000000, &v))
        return fail(err, errlen, "REDIS_DB: must be a number (0..1000000)");
      n.db = (int)v;
    }
    if (host || port || db) n.configured = 1;
  }
  const char *pw = env("REDIS_PASSWORD");
  if (pw && !n.password[0]) {
    if (strlen(pw) > GW_REDIS_SECRET_MAX) return fail(err, errlen, "REDIS_PASSWORD: over %d bytes", GW_REDIS_SECRET_MAX);
    snprintf(n.password, sizeof n.password, "%s", pw);
    n.configured = 1;
  }
  *c = n;
  return 0;
}

void gw_redis_config_describe(const gw_redis_config_t *c, char *out, size_t cap) {
  int v6 = strchr(c->host, ':') != NULL;
  snprintf(out, cap, "redis://%s%s%s%s:%d/%d (prefix \"%s\")", c->password[0] ? "***@" : "",
           v6 ? "[" : "", c->host, v6 ? "]" : "", c->port, c->db, c->prefix);
}
