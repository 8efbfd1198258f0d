#include "cli.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifndef AIVO_VERSION
#define AIVO_VERSION "0.0.0"
#endif

static const char usage[] =
    "usage: aivo-gw [options]\n"
    "\n"
    "A real-time WebSocket gateway: C holds the connections, a Lua policy decides.\n"
    "\n"
    "  --policy FILE        policy to run (default: the shipped policies/default.lua,\n"
    "                       found like --lua-path, whatever the current folder)\n"
    "  --listen HOST:PORT   address to listen on (default 0.0.0.0:4003, or $PORT)\n"
    "  --reuse-port         SO_REUSEPORT: several worker processes on one port\n"
    "  --tls-cert FILE      serve https/wss with this PEM certificate (chain); with\n"
    "  --tls-key FILE       its private key. Or SSL_ENABLED=true, SSL_CERT_PATH, SSL_KEY_PATH\n"
    "  --dev-secret         no JWT key configured: use (create) a development secret,\n"
    "                       loudly; never in production (docs/security.md)\n"
    "  --admin-listen ADDR  the admin API's HOST:PORT, or 'off' (or $ADMIN_LISTEN;\n"
    "                       default 127.0.0.1 and the main port + 1). Off loopback it\n"
    "                       needs a token, or the gateway refuses to start\n"
    "  --admin-token TOKEN  require 'Authorization: Bearer TOKEN' on the admin API\n"
    "  --redis URL          run as one of several gateways through Redis:\n"
    "                       redis://[:password@]host[:port][/db] (also REDIS_URL, REDIS_HOST,\n"
    "                       REDIS_PORT, REDIS_DB, REDIS_PASSWORD; docs/scaling.md)\n"
    "                       (or $ADMIN_TOKEN, or $AIVO_ADMIN_TOKEN; empty = none)\n"
    "  --admin-insecure     allow a tokenless admin API off loopback (logged loudly;\n"
    "                       anyone who reaches it can publish and disconnect)\n"
    "  --set KEY=VALUE      override a value of the policy's config table, e.g.\n"
    "                       --set ratelimit.per_minute=500 (repeatable)\n"
    "  --plugin-path DIR    also search DIR for plugins: after the policy's folder,\n"
    "                       before the shipped plugins/ (repeatable)\n"
    "  --lua-path DIR       the aivo Lua runtime (default: the shipped lua/)\n"
    "  --check              load and validate the policy, print every error, exit\n"
    "  --log-level LEVEL    debug | info | warn | error (default info)\n"
    "  --log-format FORMAT  text | json (default text)\n"
    "  --version            print the version\n"
    "  --help               this text\n"
    "\n"
    "Config precedence: command line > environment (AIVO_<KEY>, e.g.\n"
    "AIVO_RATELIMIT_PER_MINUTE) > the policy's config table > defaults.\n"
    "Signals: SIGHUP reloads the policy (and the TLS certificate); SIGTERM/SIGINT drain\n"
    "and exit.\n"
    "\n"
    "  aivo-gw token --sub ID [--claim k=v] [--ttl 1h]   mint a token (aivo-gw token --help)\n";

static int usage_error(const char *fmt, const char *arg) {
  fprintf(stderr, "aivo-gw: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, " (see aivo-gw --help)\n");
  return GW_CLI_USAGE;
}

int gw_cli_host_is_loopback(const char *host) {
  if (!host) return 0;
  if (strcasecmp(host, "localhost") == 0) return 1;
  unsigned char a[16];
  if (inet_pton(AF_INET, host, a) == 1) return a[0] == 127;
  if (inet_pton(AF_INET6, host, a) == 1) {
    static const unsigned char v6_loop[16] = {[15] = 1};
    static const unsigned char v4_mapped[12] = {[10] = 0xff, [11] = 0xff};
    return memcmp(a, v6_loop, 16) == 0 || (memcmp(a, v4_mapped, 12) == 0 && a[12] == 127);
  }
  return 0;
}

/* The first non-empty value: an empty token is no token, never "the empty string matches". */
static const char *first_set(const char *a, const char *b, const char *c) {
  if (a && *a) return a;
  if (b && *b) return b;
  if (c && *c) return c;
  return NULL;
}

int gw_cli_parse_listen(const char *s, char **host, int *port) {
  const char *colon = strrchr(s, ':');
  const char *ps = colon ? colon + 1 : s;
  char *end;
  long p = strtol(ps, &end, 10);
  if (!*ps || *end || p < 0 || p > 65535) return -1;
  *host = NULL;
  if (colon && colon != s) {
    size_t hl = (size_t)(colon - s);
    if (s[0] == '[' && hl >= 2 && s[hl - 1] == ']') { /* [::1]:4003 */
      s++;
      hl -= 2;
    }
    *host = strndup(s, hl);
    if (!*host) return -1;
  }
  *port = (int)p;
  return 0;
}

void gw_cli_free(gw_cli_t *cli) {
  free(cli->listen_host);
  free(cli->admin_host);
  for (size_t i = 0; i < cli->n_overrides; i++) free(cli->override_mem[i]);
  cli->n_overrides = 0;
}

int gw_cli_parse(gw_cli_t *cli, int argc, char **argv) {
  memset(cli, 0, sizeof *cli);
  cli->port = 4003;
  cli->log_level = GW_LOG_INFO;
  cli->log_format = GW_LOG_TEXT;
  int have_listen = 0;
  const char *admin_listen = NULL;

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *val = NULL;
    char flag[64];
    /* --flag=value and --flag value */
    const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
    if (eq && (size_t)(eq - a) < sizeof flag) {
      memcpy(flag, a, (size_t)(eq - a));
      flag[eq - a] = 0;
      val = eq + 1;
      a = flag;
    }
#define NEED_VALUE()                                                 \
  do {                                                               \
    if (!val) {                                                      \
      if (i + 1 >= argc) return usage_error("%s needs a value", a);  \
      val = argv[++i];                                               \
    }                                                                \
  } while (0)
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(usage, stdout);
      return GW_CLI_EXIT_OK;
    } else if (strcmp(a, "--version") == 0) {
      printf("aivo-gw %s\n", AIVO_VERSION);
      return GW_CLI_EXIT_OK;
    } else if (strcmp(a, "--policy") == 0) {
      NEED_VALUE();
      cli->policy_path = val;
    } else if (strcmp(a, "--listen") == 0) {
      NEED_VALUE();
      free(cli->listen_host);
      cli->listen_host = NULL;
      if (gw_cli_parse_listen(val, &cli->listen_host, &cli->port))
        return usage_error("--listen: '%s' is not HOST:PORT", val);
      have_listen = 1;
    } else if (strcmp(a, "--admin-listen") == 0) {
      NEED_VALUE();
      admin_listen = val;
    } else if (strcmp(a, "--admin-token") == 0) {
      NEED_VALUE();
      cli->admin_token = val;
    } else if ((strcmp(a, "--reuse-port") == 0 || strcmp(a, "--check") == 0 ||
                strcmp(a, "--admin-insecure") == 0) && val) {
      return usage_error("%s takes no value", a);
    } else if (strcmp(a, "--admin-insecure") == 0) {
      cli->admin_insecure = 1;
    } else if (strcmp(a, "--reuse-port") == 0) {
      cli->reuse_port = 1;
    } else if (strcmp(a, "--check") == 0) {
      cli->check = 1;
    } else if (strcmp(a, "--dev-secret") == 0) {
      cli->dev_secret = 1;
    } else if (strcmp(a, "--redis") == 0) {
      NEED_VALUE();
      cli->redis_url = val;
    } else if (strcmp(a, "--tls-cert") == 0) {
      NEED_VALUE();
      cli->tls_cert = val;
    } else if (strcmp(a, "--tls-key") == 0) {
      NEED_VALUE();
      cli->tls_key = val;
    } else if (strcmp(a, "--set") == 0) {
      NEED_VALUE();
      const char *e = strchr(val, '=');
      if (!e || e == val) return usage_error("--set: '%s' is not KEY=VALUE", val);
      if (cli->n_overrides >= GW_CLI_MAX_OVERRIDES) return usage_error("%s", "too many --set");
      char *mem = strdup(val);
      if (!mem) return GW_CLI_USAGE;
      mem[e - val] = 0;
      cli->override_mem[cli->n_overrides] = mem;
      cli->overrides[cli->n_overrides].key = mem;
      cli->overrides[cli->n_overrides].value = mem + (e - val) + 1;
      cli->n_overrides++;
    } else if (strcmp(a, "--plugin-path") == 0) {
      NEED_VALUE();
      if (cli->n_plugin_dirs >= GW_CLI_MAX_PLUGIN_DIRS) return usage_error("%s", "too many --plugin-path");
      cli->plugin_dirs[cli->n_plugin_dirs++] = val;
    } else if (strcmp(a, "--lua-path") == 0) {
      NEED_VALUE();
      cli->lua_dir = val;
    } else if (strcmp(a, "--log-level") == 0) {
      NEED_VALUE();
      if (gw_log_level_parse(val, &cli->log_level))
        return usage_error("--log-level: '%s' is not debug, info, warn or error", val);
    } else if (strcmp(a, "--log-format") == 0) {
      NEED_VALUE();
      if (gw_log_format_parse(val, &cli->log_format))
        return usage_error("--log-format: '%s' is not text or json", val);
    } else {
      return usage_error("unknown option '%s'", argv[i]);
    }
#undef NEED_VALUE
  }

  /* TLS: the flags, else the old service's SSL_ENABLED + SSL_CERT_PATH/SSL_KEY_PATH. Asked
   * for but incomplete is an error: never a silent fall-back to plain HTTP. */
  const char *ssl = getenv("SSL_ENABLED");
  int ssl_on = ssl && (strcasecmp(ssl, "true") == 0 || strcmp(ssl, "1") == 0 || strcasecmp(ssl, "yes") == 0);
  if (ssl && *ssl && !ssl_on && strcasecmp(ssl, "false") && strcmp(ssl, "0") && strcasecmp(ssl, "no"))
    return usage_error("SSL_ENABLED: '%s' is not true or false", ssl);
  if (ssl_on && !cli->tls_cert) cli->tls_cert = getenv("SSL_CERT_PATH");
  if (ssl_on && !cli->tls_key) cli->tls_key = getenv("SSL_KEY_PATH");
  if (cli->tls_cert && !*cli->tls_cert) cli->tls_cert = NULL;
  if (cli->tls_key && !*cli->tls_key) cli->tls_key = NULL;
  if (!cli->tls_cert != !cli->tls_key || (ssl_on && !cli->tls_cert))
    return usage_error("%s", !cli->tls_cert ? (ssl_on ? "SSL_ENABLED=true needs a certificate: set SSL_CERT_PATH (or --tls-cert)"
                                                      : "--tls-key needs --tls-cert")
                                            : (ssl_on ? "SSL_ENABLED=true needs a private key: set SSL_KEY_PATH (or --tls-key)"
                                                      : "--tls-cert needs --tls-key"));

  const char *env_port = getenv("PORT");
  if (!have_listen && env_port && *env_port) {
    char *end;
    long p = strtol(env_port, &end, 10);
    if (*end || p < 0 || p > 65535) return usage_error("PORT: '%s' is not a port number", env_port);
    cli->port = (int)p;
  }
  /* the flag, else ADMIN_LISTEN (the name the admin API's issue asked for) */
  const char *admin_from = "--admin-listen";
  if (!admin_listen) {
    admin_listen = getenv("ADMIN_LISTEN");
    admin_from = "ADMIN_LISTEN";
    if (admin_listen && !*admin_listen) admin_listen = NULL;
  }
  if (admin_listen) {
    if (strcmp(admin_listen, "off") == 0) {
      cli->admin_port = -1;
    } else if (gw_cli_parse_listen(admin_listen, &cli->admin_host, &cli->admin_port)) {
      fprintf(stderr, "aivo-gw: %s: '%s' is not HOST:PORT or off (see aivo-gw --help)\n", admin_from, admin_listen);
      return GW_CLI_USAGE;
    }
    cli->admin_explicit = 1;
  }
  if (!cli->admin_explicit) /* beside the main port; with port 0 the kernel picks both */
    cli->admin_port = cli->port == 0 ? 0 : cli->port < 65535 ? cli->port + 1 : -1;
  cli->admin_token = first_set(cli->admin_token, getenv("ADMIN_TOKEN"), getenv("AIVO_ADMIN_TOKEN"));

  /* Fail closed: a tokenless admin API (publish, disconnect, reload) reachable from the
   * network is refused unless the operator opts out explicitly. No host means loopback here
   * (the admin listener's default is 127.0.0.1). */
  cli->admin_exposed = cli->admin_port != -1 && cli->admin_host &&
                       !gw_cli_host_is_loopback(cli->admin_host) && !cli->admin_token;
  if (cli->admin_exposed && !cli->admin_insecure) {
    fprintf(stderr,
            "aivo-gw: refusing to start: the admin API would listen on %s:%d (from %s) without a token, "
            "so anyone who can reach it could publish to rooms, disconnect users and reload the policy. "
            "Set ADMIN_TOKEN (or --admin-token) to a long random secret, or bind it to loopback "
            "(--admin-listen 127.0.0.1:PORT), or pass --admin-insecure if a firewall really protects it\n",
            cli->admin_host, cli->admin_port, admin_from);
    return GW_CLI_USAGE;
  }
  return GW_CLI_RUN;
}
