/* aivo-gw: command line, then the gateway. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "cli.h"
#include "gateway.h"
#include "log.h"
#include "policy.h"
#include "test_cmd.h"
#include "tls.h"
#include "token_cmd.h"

static int is_dir(const char *p) {
  struct stat st;
  return p && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The installed share folder next to the binary, else the source tree it was built from. */
static const char *data_dir(const char *what, char *buf, size_t cap) {
  char exe[PATH_MAX - 64]; /* leaves room for the suffix below */
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) {
      *slash = 0;
      snprintf(buf, cap, "%s/../share/aivo-gw/%s", exe, what);
      char real[PATH_MAX];
      if (is_dir(buf) && realpath(buf, real)) { /* logs and /admin/policy show a plain path */
        snprintf(buf, cap, "%s", real);
        return buf;
      }
    }
  }
  snprintf(buf, cap, "%s/%s", AIVO_SOURCE_DIR, what);
  return buf;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "token") == 0) return gw_token_cmd(argc - 1, argv + 1);
  if (argc > 1 && strcmp(argv[1], "test") == 0) return gw_test_cmd(argc - 1, argv + 1);
  gw_cli_t cli;
  int rc = gw_cli_parse(&cli, argc, argv);
  if (rc != GW_CLI_RUN) {
    gw_cli_free(&cli); /* a refusal after --admin-listen/--listen parsed a host */
    return rc == GW_CLI_EXIT_OK ? 0 : 2;
  }

  gw_log_setup(cli.log_level, cli.log_format);
  gw_auth_allow_dev_secret(cli.dev_secret);
  if (cli.admin_exposed)
    gw_warn("!!! --admin-insecure: the admin API on %s:%d has NO token: anyone who can reach it can "
            "publish, disconnect and reload. Set ADMIN_TOKEN unless a firewall really protects it !!!",
            cli.admin_host, cli.admin_port);

  /* Defaults are found the same way whatever the current folder: the installed share folder
   * next to the binary, else the source tree. --plugin-path adds folders before the shipped
   * plugins/, so a policy can use its own plugins and echo/rooms/agent together. */
  char lua_buf[PATH_MAX], plugins_buf[PATH_MAX], policies_buf[PATH_MAX], policy_buf[PATH_MAX + 16];
  if (!cli.lua_dir) cli.lua_dir = data_dir("lua", lua_buf, sizeof lua_buf);
  cli.plugin_dirs[cli.n_plugin_dirs++] = data_dir("plugins", plugins_buf, sizeof plugins_buf);
  cli.plugin_dirs[cli.n_plugin_dirs] = NULL;
  if (!cli.policy_path) {
    snprintf(policy_buf, sizeof policy_buf, "%s/default.lua", data_dir("policies", policies_buf, sizeof policies_buf));
    cli.policy_path = policy_buf;
  }

  if (cli.check) {
    gw_auth_set_check_only(1);
    gw_errlist_t errs = {0};
    gw_policy_opts_t po = {cli.policy_path, cli.lua_dir, cli.plugin_dirs,
                           cli.overrides, cli.n_overrides};
    gw_policy_t *p = gw_policy_load(&po, &errs);
    if (!p) {
      for (size_t i = 0; i < errs.n; i++) fprintf(stderr, "%s\n", errs.items[i]);
      fprintf(stderr, "policy %s: %zu error%s\n", cli.policy_path, errs.n, errs.n == 1 ? "" : "s");
      gw_errlist_free(&errs);
      gw_cli_free(&cli);
      return 1;
    }
    printf("policy OK: %s (plugins: %s)\n", cli.policy_path, p->plugins);
    gw_policy_free(p);
    if (cli.tls_cert) { /* like nginx -t: the certificate too */
      char err[512];
      gw_tls_t *t = gw_tls_load(cli.tls_cert, cli.tls_key, err, sizeof err);
      if (t) printf("TLS OK: %s\n", gw_tls_describe(t));
      else fprintf(stderr, "%s\n", err);
      gw_tls_free(t);
      if (!t) {
        gw_cli_free(&cli);
        return 1;
      }
    }
    gw_cli_free(&cli);
    return 0;
  }

  gw_options_t o = {cli.policy_path, cli.listen_host, cli.port, cli.reuse_port, cli.lua_dir,
                    cli.plugin_dirs, cli.overrides, cli.n_overrides, cli.admin_host, cli.admin_port,
                    cli.admin_explicit, cli.admin_token, cli.tls_cert, cli.tls_key, cli.redis_url};
  rc = gw_gateway_run(&o);
  gw_cli_free(&cli);
  return rc;
}
