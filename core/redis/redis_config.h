/* Where the Redis of a scale-out deployment is (issue 14), read from a URL or from the old
 * service's environment variables. Pure parsing: no connection, no hiredis.
 *
 * Precedence, highest first (docs/scaling.md):
 *   1. --redis <url> (the caller passes it as cli_url),
 *   2. REDIS_URL,
 *   3. REDIS_HOST, REDIS_PORT, REDIS_DB (each defaulting to 127.0.0.1, 6379, 0).
 * A URL fixes host, port and db as a whole: the REDIS_HOST/PORT/DB parts are then ignored.
 * REDIS_PASSWORD applies whenever the chosen URL carries no password (so the secret can be
 * kept out of a URL that appears in process lists and logs); a password in the URL wins.
 * Redis counts as configured when any of those is set; otherwise the gateway runs alone.
 *
 * URL form: redis://[[username]:password@]host[:port][/db]. host may be [IPv6]; the password
 * and username may use %XX escapes. rediss:// is refused (hiredis 0.14 has no TLS), as is
 * anything after the db (a query string, a path). */
#ifndef GW_REDIS_CONFIG_H
#define GW_REDIS_CONFIG_H

#include <stddef.h>

#define GW_REDIS_HOST_MAX 255
#define GW_REDIS_SECRET_MAX 512 /* bytes of a username or password */
#define GW_REDIS_PREFIX_MAX 64

typedef struct gw_redis_config {
  int configured; /* 1: a URL or a REDIS_* variable named a Redis */
  char host[GW_REDIS_HOST_MAX + 1];
  int port;
  char username[GW_REDIS_SECRET_MAX + 1]; /* "" : AUTH <password> (Redis < 6 style) */
  char password[GW_REDIS_SECRET_MAX + 1]; /* "" : no AUTH */
  int db;                                 /* SELECT on connect when > 0 */
  char prefix[GW_REDIS_PREFIX_MAX + 1];   /* namespaces every channel and key; "aivo:" */
  unsigned connect_timeout_ms;            /* default 2000 */
  unsigned command_timeout_ms;            /* default 2000 */
  int required;                           /* redis.required: /readyz is 503 while down */
} gw_redis_config_t;

void gw_redis_config_defaults(gw_redis_config_t *c);

/* Parses url into c (host, port, username, password, db; configured = 1). 0, or GW_EINVAL
 * with a message in err that says what is wrong (never echoing the password). On error c is
 * unchanged. */
int gw_redis_config_parse_url(gw_redis_config_t *c, const char *url, char *err, size_t errlen);

/* Applies the precedence above from cli_url (NULL: none) and the environment. 0, or
 * GW_EINVAL with a message in err (a bad URL, a bad REDIS_PORT/REDIS_DB value). */
int gw_redis_config_resolve(gw_redis_config_t *c, const char *cli_url, char *err,
                            size_t errlen);

/* host:port/db for logs: never the password. */
void gw_redis_config_describe(const gw_redis_config_t *c, char *out, size_t cap);

#endif
