/* Command-line parsing: flags, environment fallbacks (PORT) and --set overrides. */
#ifndef GW_CLI_H
#define GW_CLI_H

#include <stddef.h>

#include "log.h"
#include "policy.h"

#define GW_CLI_MAX_PLUGIN_DIRS 16
#define GW_CLI_MAX_OVERRIDES 128

typedef struct gw_cli {
  const char *policy_path; /* NULL: the shipped policies/default.lua (main.c finds it) */
  char *listen_host;
  int port;
  int reuse_port, check;
  int dev_secret;                   /* --dev-secret */
  const char *tls_cert, *tls_key;   /* --tls-cert/--tls-key, or SSL_ENABLED + SSL_*_PATH */
  const char *redis_url;            /* --redis URL (docs/scaling.md); NULL: REDIS_* or redis.* */
  char *admin_host;
  int admin_port; /* -1: off */
  int admin_explicit;
  const char *admin_token;          /* --admin-token > ADMIN_TOKEN > AIVO_ADMIN_TOKEN; "" is none */
  int admin_insecure;               /* --admin-insecure: a tokenless admin API off loopback */
  int admin_exposed;                /* the admin listener is on, not loopback, and has no token */
  gw_log_level_t log_level;
  gw_log_format_t log_format;
  const char *lua_dir;
  const char *plugin_dirs[GW_CLI_MAX_PLUGIN_DIRS + 2]; /* + the shipped plugins/ + NULL */
  size_t n_plugin_dirs;
  gw_override_t overrides[GW_CLI_MAX_OVERRIDES];
  size_t n_overrides;
  char *override_mem[GW_CLI_MAX_OVERRIDES];
} gw_cli_t;

enum { GW_CLI_RUN = 0, GW_CLI_EXIT_OK = 1, GW_CLI_USAGE = 2 };

/* Prints help/version or a one-line usage error itself. */
int gw_cli_parse(gw_cli_t *cli, int argc, char **argv);
/* "HOST:PORT", ":PORT" or "PORT" -> host (NULL: all interfaces) and port. */
int gw_cli_parse_listen(const char *s, char **host, int *port);
void gw_cli_free(gw_cli_t *cli);
/* 1 when HOST is a loopback address (127.0.0.0/8, ::1, localhost). NULL, a wildcard or any
 * other name is not: an admin API bound there is reachable from the network. */
int gw_cli_host_is_loopback(const char *host);

#endif
