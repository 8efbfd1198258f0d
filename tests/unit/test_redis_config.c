/* Redis configuration: URLs, the REDIS_* variables and their precedence, clear errors. */
#include <stdlib.h>

#include "check.h"
#include "errors.h"
#include "redis_config.h"

static void clear_env(void) {
  unsetenv("REDIS_URL");
  unsetenv("REDIS_HOST");
  unsetenv("REDIS_PORT");
  unsetenv("REDIS_PASSWORD");
  unsetenv("REDIS_DB");
}

static int parse(gw_redis_config_t *c, const char *url, char *err) {
  gw_redis_config_defaults(c);
  err[0] = '\0';
  return gw_redis_config_parse_url(c, url, err, 200);
}

int main(void) {
  gw_redis_config_t c;
  char err[200];
  clear_env();

  gw_redis_config_defaults(&c);
  CHECK_EQ_INT(c.configured, 0);
  CHECK_STR(c.host, "127.0.0.1");
  CHECK_EQ_INT(c.port, 6379);
  CHECK_STR(c.prefix, "aivo:");
  CHECK_EQ_INT(c.connect_timeout_ms, 2000);
  CHECK_EQ_INT(c.command_timeout_ms, 2000);

  /* URLs */
  CHECK_EQ_INT(parse(&c, "redis://10.0.0.5:6380/2", err), 0);
  CHECK_STR(c.host, "10.0.0.5");
  CHECK_EQ_INT(c.port, 6380);
  CHECK_EQ_INT(c.db, 2);
  CHECK_STR(c.password, "");
  CHECK_EQ_INT(c.configured, 1);
  CHECK_EQ_INT(parse(&c, "redis://:s3cret@redis.internal", err), 0);
  CHECK_STR(c.host, "redis.internal");
  CHECK_EQ_INT(c.port, 6379);
  CHECK_STR(c.password, "s3cret");
  CHECK_STR(c.username, "");
  CHECK_EQ_INT(parse(&c, "redis://gw:p%40ss%3Aword@h:1/0", err), 0);
  CHECK_STR(c.username, "gw");
  CHECK_STR(c.password, "p@ss:word");
  CHECK_EQ_INT(c.db, 0);
  CHECK_EQ_INT(parse(&c, "redis://[::1]:7000/15", err), 0);
  CHECK_STR(c.host, "::1");
  CHECK_EQ_INT(c.port, 7000);
  CHECK_EQ_INT(c.db, 15);
  CHECK_EQ_INT(parse(&c, "redis://h/", err), 0); /* a trailing slash: db 0 */
  CHECK_EQ_INT(c.db, 0);

  /* bad ones: a clear message, nothing changed, the password never echoed */
  CHECK_EQ_INT(parse(&c, "rediss://h:1", err), GW_EINVAL);
  CHECK_CONTAINS(err, "TLS");
  CHECK_EQ_INT(parse(&c, "http://h:1", err), GW_EINVAL);
  CHECK_CONTAINS(err, "redis://");
  CHECK_EQ_INT(parse(&c, "redis://h:0", err), GW_EINVAL);
  CHECK_CONTAINS(err, "port");
  CHECK_EQ_INT(parse(&c, "redis://h:65536", err), GW_EINVAL);
  CHECK_EQ_INT(parse(&c, "redis://h:12x", err), GW_EINVAL);
  CHECK_EQ_INT(parse(&c, "redis://h:1/db", err), GW_EINVAL);
  CHECK_CONTAINS(err, "database");
  CHECK_EQ_INT(parse(&c, "redis://h:1/2?x=1", err), GW_EINVAL);
  CHECK_EQ_INT(parse(&c, "redis://:topsecret@:1", err), GW_EINVAL);
  CHECK_CONTAINS(err, "no host");
  CHECK(strstr(err, "topsecret") == NULL);
  CHECK_EQ_INT(parse(&c, "redis://nocolon@h", err), GW_EINVAL);
  CHECK_EQ_INT(parse(&c, "redis://:bad%zzescape@h", err), GW_EINVAL);
  CHECK_EQ_INT(parse(&c, "redis://:nul%00@h", err), GW_EINVAL);
  CHECK_EQ_INT(parse(&c, "redis://:@h", err), GW_EINVAL);
  CHECK_EQ_INT(parse(&c, "redis://[::1", err), GW_EINVAL);
  CHECK_EQ_INT(parse(&c, "redis://h o:1", err), GW_EINVAL);
  CHECK_EQ_INT(parse(&c, "", err), GW_EINVAL);
  gw_redis_config_defaults(&c);
  CHECK_EQ_INT(gw_redis_config_parse_url(&c, "redis://h:99999", err, sizeof err), GW_EINVAL);
  CHECK_STR(c.host, "127.0.0.1"); /* unchanged on error */
  CHECK_EQ_INT(c.configured, 0);

  /* nothing set: not configured (the gateway runs alone) */
  gw_redis_config_defaults(&c);
  CHECK_EQ_INT(gw_redis_config_resolve(&c, NULL, err, sizeof err), 0);
  CHECK_EQ_INT(c.configured, 0);

  /* the old service's variables */
  setenv("REDIS_HOST", "cache", 1);
  setenv("REDIS_PORT", "6390", 1);
  setenv("REDIS_DB", "4", 1);
  setenv("REDIS_PASSWORD", "envpw", 1);
  gw_redis_config_defaults(&c);
  CHECK_EQ_INT(gw_redis_config_resolve(&c, NULL, err, sizeof err), 0);
  CHECK_EQ_INT(c.configured, 1);
  CHECK_STR(c.host, "cache");
  CHECK_EQ_INT(c.port, 6390);
  CHECK_EQ_INT(c.db, 4);
  CHECK_STR(c.password, "envpw");

  /* REDIS_URL wins over the parts; REDIS_PASSWORD fills a URL without a password */
  setenv("REDIS_URL", "redis://urlhost:7001/1", 1);
  gw_redis_config_defaults(&c);
  CHECK_EQ_INT(gw_redis_config_resolve(&c, NULL, err, sizeof err), 0);
  CHECK_STR(c.host, "urlhost");
  CHECK_EQ_INT(c.port, 7001);
  CHECK_EQ_INT(c.db, 1);
  CHECK_STR(c.password, "envpw");
  setenv("REDIS_URL", "redis://:urlpw@urlhost:7001", 1);
  gw_redis_config_defaults(&c);
  CHECK_EQ_INT(gw_redis_config_resolve(&c, NULL, err, sizeof err), 0);
  CHECK_STR(c.password, "urlpw");
  CHECK_EQ_INT(c.db, 0);

  /* --redis wins over REDIS_URL */
  gw_redis_config_defaults(&c);
  CHECK_EQ_INT(gw_redis_config_resolve(&c, "redis://cli:7002", err, sizeof err), 0);
  CHECK_STR(c.host, "cli");
  CHECK_EQ_INT(c.port, 7002);
  CHECK_STR(c.password, "envpw");

  /* errors name their source */
  gw_redis_config_defaults(&c);
  CHECK_EQ_INT(gw_redis_config_resolve(&c, "redis://cli:x", err, sizeof err), GW_EINVAL);
  CHECK_CONTAINS(err, "--redis");
  setenv("REDIS_URL", "redis://h:0", 1);
  CHECK_EQ_INT(gw_redis_config_resolve(&c, NULL, err, sizeof err), GW_EINVAL);
  CHECK_CONTAINS(err, "REDIS_URL");
  unsetenv("REDIS_URL");
  setenv("REDIS_PORT", "70000", 1);
  CHECK_EQ_INT(gw_redis_config_resolve(&c, NULL, err, sizeof err), GW_EINVAL);
  CHECK_CONTAINS(err, "REDIS_PORT");
  setenv("REDIS_PORT", "6379", 1);
  setenv("REDIS_DB", "-1", 1);
  CHECK_EQ_INT(gw_redis_config_resolve(&c, NULL, err, sizeof err), GW_EINVAL);
  CHECK_CONTAINS(err, "REDIS_DB");

  /* describe never shows the password */
  clear_env();
  CHECK_EQ_INT(parse(&c, "redis://:hunter2@h:1/3", err), 0);
  char d[200];
  gw_redis_config_describe(&c, d, sizeof d);
  CHECK(strstr(d, "hunter2") == NULL);
  CHECK_CONTAINS(d, "h:1/3");
  return check_done();
}
