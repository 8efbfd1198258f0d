/* Command-line parsing: --listen forms, --set overrides, --flag=value, usage errors and the
 * PORT fallback. gw_cli_parse prints its usage errors to stderr: expected in this output. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "cli.h"

/* argv from a NULL-terminated list; argv[0] is the program name. */
#define ARGV(...) ((char *[]){"aivo-gw", __VA_ARGS__, NULL})
static int argc_of(char **av) {
  int n = 0;
  while (av[n]) n++;
  return n;
}

/* Parses, returns the code; the caller frees with gw_cli_free (after every outcome). */
static int parse(gw_cli_t *cli, char **av) { return gw_cli_parse(cli, argc_of(av), av); }

static void test_listen(void) {
  char *host = (char *)"untouched";
  int port = -1;
  CHECK_EQ_INT(gw_cli_parse_listen("127.0.0.1:4003", &host, &port), 0);
  CHECK_STR(host, "127.0.0.1");
  CHECK_EQ_INT(port, 4003);
  free(host);

  host = (char *)"untouched";
  CHECK_EQ_INT(gw_cli_parse_listen(":80", &host, &port), 0);
  CHECK(host == NULL); /* all interfaces */
  CHECK_EQ_INT(port, 80);

  host = (char *)"untouched";
  CHECK_EQ_INT(gw_cli_parse_listen("4003", &host, &port), 0);
  CHECK(host == NULL);
  CHECK_EQ_INT(port, 4003);

  CHECK_EQ_INT(gw_cli_parse_listen("[::1]:9000", &host, &port), 0);
  CHECK_STR(host, "::1"); /* brackets stripped */
  CHECK_EQ_INT(port, 9000);
  free(host);

  CHECK_EQ_INT(gw_cli_parse_listen("localhost:65535", &host, &port), 0);
  CHECK_STR(host, "localhost");
  CHECK_EQ_INT(port, 65535);
  free(host);

  static const char *const bad[] = {"x:abc", "1.2.3.4:70000", "", ":", "host:", "-1",
                                    "80x",   "1.2.3.4:-5",    "65536", "a:80:x", NULL};
  for (const char *const *b = bad; *b; b++) {
    host = (char *)"untouched";
    port = -1;
    int rc = gw_cli_parse_listen(*b, &host, &port);
    if (!CHECK(rc != 0)) fprintf(stderr, "  accepted bad --listen '%s'\n", *b);
    /* nothing allocated or changed on failure */
    CHECK_STR(host, "untouched");
    CHECK_EQ_INT(port, -1);
  }
}

static void test_defaults(void) {
  gw_cli_t cli;
  unsetenv("PORT");
  CHECK_EQ_INT(gw_cli_parse(&cli, 1, (char *[]){"aivo-gw", NULL}), GW_CLI_RUN);
  CHECK(cli.policy_path == NULL); /* main.c finds the shipped default, whatever the cwd */
  CHECK(cli.listen_host == NULL);
  CHECK_EQ_INT(cli.port, 4003);
  CHECK_EQ_INT(cli.reuse_port, 0);
  CHECK_EQ_INT(cli.check, 0);
  CHECK_EQ_INT(cli.log_level, GW_LOG_INFO);
  CHECK_EQ_INT(cli.log_format, GW_LOG_TEXT);
  CHECK(cli.lua_dir == NULL);
  CHECK_EQ_INT(cli.n_plugin_dirs, 0);
  CHECK_EQ_INT(cli.n_overrides, 0);
  gw_cli_free(&cli);
}

static void test_flags(void) {
  gw_cli_t cli;
  unsetenv("PORT");
  char **av = ARGV("--policy", "p.lua", "--listen", "10.0.0.1:81", "--reuse-port", "--check",
                   "--lua-path", "/l", "--plugin-path", "/p1", "--plugin-path", "/p2",
                   "--log-level", "debug", "--log-format", "json");
  CHECK_EQ_INT(parse(&cli, av), GW_CLI_RUN);
  CHECK_STR(cli.policy_path, "p.lua");
  CHECK_STR(cli.listen_host, "10.0.0.1");
  CHECK_EQ_INT(cli.port, 81);
  CHECK_EQ_INT(cli.reuse_port, 1);
  CHECK_EQ_INT(cli.check, 1);
  CHECK_STR(cli.lua_dir, "/l");
  CHECK_EQ_INT(cli.n_plugin_dirs, 2);
  CHECK_STR(cli.plugin_dirs[0], "/p1"); /* search order is command-line order */
  CHECK_STR(cli.plugin_dirs[1], "/p2");
  CHECK_EQ_INT(cli.log_level, GW_LOG_DEBUG);
  CHECK_EQ_INT(cli.log_format, GW_LOG_JSON);
  gw_cli_free(&cli);

  /* the --flag=value form, the same flags */
  av = ARGV("--policy=q.lua", "--listen=:82", "--log-level=warn", "--log-format=text",
            "--plugin-path=/pp", "--lua-path=/ll");
  CHECK_EQ_INT(parse(&cli, av), GW_CLI_RUN);
  CHECK_STR(cli.policy_path, "q.lua");
  CHECK(cli.listen_host == NULL);
  CHECK_EQ_INT(cli.port, 82);
  CHECK_EQ_INT(cli.log_level, GW_LOG_WARN);
  CHECK_EQ_INT(cli.log_format, GW_LOG_TEXT);
  CHECK_STR(cli.plugin_dirs[0], "/pp");
  CHECK_STR(cli.lua_dir, "/ll");
  gw_cli_free(&cli);

  /* only the first '=' splits: the value may contain more */
  av = ARGV("--policy=a=b.lua");
  CHECK_EQ_INT(parse(&cli, av), GW_CLI_RUN);
  CHECK_STR(cli.policy_path, "a=b.lua");
  gw_cli_free(&cli);

  /* a later --listen replaces an earlier one (no leak: LSan checks) */
  av = ARGV("--listen", "1.1.1.1:1", "--listen", "[::]:2");
  CHECK_EQ_INT(parse(&cli, av), GW_CLI_RUN);
  CHECK_STR(cli.listen_host, "::");
  CHECK_EQ_INT(cli.port, 2);
  gw_cli_free(&cli);

  /* each log level by name */
  static const struct {
    const char *name;
    gw_log_level_t level;
  } levels[] = {{"debug", GW_LOG_DEBUG}, {"info", GW_LOG_INFO}, {"warn", GW_LOG_WARN},
                {"error", GW_LOG_ERROR}};
  for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
    av = ARGV("--log-level", (char *)levels[i].name);
    CHECK_EQ_INT(parse(&cli, av), GW_CLI_RUN);
    CHECK_EQ_INT(cli.log_level, levels[i].level);
    gw_cli_free(&cli);
  }
}

static void test_set(void) {
  gw_cli_t cli;
  char **av = ARGV("--set", "server.max_message_size=2048", "--set=rooms.max_per_conn=5",
                   "--set", "a.b=c=d", "--set", "empty=", "--set", "server.max_message_size=9");
  CHECK_EQ_INT(parse(&cli, av), GW_CLI_RUN);
  if (CHECK_EQ_INT(cli.n_overrides, 5)) {
    /* order kept: a later --set of the same key must win when applied in order */
    CHECK_STR(cli.overrides[0].key, "server.max_message_size");
    CHECK_STR(cli.overrides[0].value, "2048");
    CHECK_STR(cli.overrides[1].key, "rooms.max_per_conn");
    CHECK_STR(cli.overrides[1].value, "5");
    CHECK_STR(cli.overrides[2].key, "a.b");
    CHECK_STR(cli.overrides[2].value, "c=d");
    CHECK_STR(cli.overrides[3].key, "empty");
    CHECK_STR(cli.overrides[3].value, "");
    CHECK_STR(cli.overrides[4].key, "server.max_message_size");
    CHECK_STR(cli.overrides[4].value, "9");
  }
  /* copies, not pointers into argv */
  CHECK(cli.overrides[0].key != av[2]);
  gw_cli_free(&cli);
  CHECK_EQ_INT(cli.n_overrides, 0);

  /* the maximum number of --set, then one too many */
  enum { M = GW_CLI_MAX_OVERRIDES + 1 };
  char *many[1 + 2 * M + 1];
  char bufs[M][32];
  many[0] = (char *)"aivo-gw";
  for (int i = 0; i < M; i++) {
    snprintf(bufs[i], sizeof bufs[i], "k%d=%d", i, i);
    many[1 + 2 * i] = (char *)"--set";
    many[2 + 2 * i] = bufs[i];
  }
  many[1 + 2 * (M - 1)] = NULL;
  CHECK_EQ_INT(gw_cli_parse(&cli, 1 + 2 * (M - 1), many), GW_CLI_RUN);
  CHECK_EQ_INT(cli.n_overrides, GW_CLI_MAX_OVERRIDES);
  CHECK_STR(cli.overrides[GW_CLI_MAX_OVERRIDES - 1].key, "k127");
  gw_cli_free(&cli);
  many[1 + 2 * (M - 1)] = (char *)"--set";
  many[1 + 2 * M] = NULL;
  CHECK_EQ_INT(gw_cli_parse(&cli, 1 + 2 * M, many), GW_CLI_USAGE);
  gw_cli_free(&cli); /* what was parsed before the error is freed too */
}

static void test_usage_errors(void) {
  gw_cli_t cli;
  unsetenv("PORT");
  struct {
    char **av;
    const char *why;
  } cases[] = {
      {ARGV("--bogus"), "unknown flag"},
      {ARGV("--bogus=1"), "unknown flag with a value"},
      {ARGV("-x"), "unknown short flag"},
      {ARGV("stray"), "positional argument"},
      {ARGV("--policy"), "missing value at the end"},
      {ARGV("--listen"), "missing --listen value"},
      {ARGV("--set"), "missing --set value"},
      {ARGV("--log-level"), "missing --log-level value"},
      {ARGV("--plugin-path"), "missing --plugin-path value"},
      {ARGV("--lua-path"), "missing --lua-path value"},
      {ARGV("--log-level", "verbose"), "bad log level"},
      {ARGV("--log-level=loud"), "bad log level, = form"},
      {ARGV("--log-format", "xml"), "bad log format"},
      {ARGV("--listen", "x:abc"), "bad --listen"},
      {ARGV("--listen=1.2.3.4:70000"), "port out of range"},
      {ARGV("--set", "novalue"), "--set without ="},
      {ARGV("--set", "=v"), "--set without a key"},
      {ARGV("--set", "a=1", "--nope"), "error after a --set"},
      /* a flag that takes no value must not silently accept one: --reuse-port=false
       * would otherwise turn reuse-port ON */
      {ARGV("--reuse-port=false"), "value given to --reuse-port"},
      {ARGV("--check=no"), "value given to --check"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int rc = parse(&cli, cases[i].av);
    if (!CHECK_EQ_INT(rc, GW_CLI_USAGE)) fprintf(stderr, "  case: %s\n", cases[i].why);
    gw_cli_free(&cli);
  }

  /* too many plugin paths */
  char *many[2 * GW_CLI_MAX_PLUGIN_DIRS + 4];
  int n = 0;
  many[n++] = (char *)"aivo-gw";
  for (int i = 0; i <= GW_CLI_MAX_PLUGIN_DIRS; i++) {
    many[n++] = (char *)"--plugin-path";
    many[n++] = (char *)"/d";
  }
  many[n] = NULL;
  CHECK_EQ_INT(gw_cli_parse(&cli, n, many), GW_CLI_USAGE);
  gw_cli_free(&cli);

  /* --help and --version end the run successfully (they print to stdout) */
  CHECK_EQ_INT(parse(&cli, ARGV("--version")), GW_CLI_EXIT_OK);
  gw_cli_free(&cli);
}

/* A bad --listen after a good one: the usage error must leave the gw_cli_t freeable.
 * Run in a child, since a double free aborts the process. */
static void test_bad_listen_after_good(void) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    gw_cli_t cli;
    int rc = parse(&cli, ARGV("--listen", "127.0.0.1:1", "--listen", "x:abc"));
    gw_cli_free(&cli);
    _exit(rc == GW_CLI_USAGE ? 0 : 3);
  }
  int st = 0;
  CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
  if (!CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0))
    fprintf(stderr, "  --listen GOOD --listen BAD, then gw_cli_free: child %s %d\n",
            WIFSIGNALED(st) ? "killed by signal" : "exited with",
            WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
}

static void test_port_env(void) {
  gw_cli_t cli;
  /* PORT applies when --listen is absent */
  setenv("PORT", "5055", 1);
  CHECK_EQ_INT(parse(&cli, ARGV("--check")), GW_CLI_RUN);
  CHECK_EQ_INT(cli.port, 5055);
  CHECK(cli.listen_host == NULL);
  gw_cli_free(&cli);

  /* --listen wins over PORT */
  CHECK_EQ_INT(parse(&cli, ARGV("--listen", "127.0.0.1:6066")), GW_CLI_RUN);
  CHECK_EQ_INT(cli.port, 6066);
  CHECK_STR(cli.listen_host, "127.0.0.1");
  gw_cli_free(&cli);
  CHECK_EQ_INT(parse(&cli, ARGV("--listen=:7077")), GW_CLI_RUN);
  CHECK_EQ_INT(cli.port, 7077);
  gw_cli_free(&cli);

  /* a bad PORT is an error only when it is used */
  setenv("PORT", "abc", 1);
  CHECK_EQ_INT(parse(&cli, ARGV("--check")), GW_CLI_USAGE);
  gw_cli_free(&cli);
  CHECK_EQ_INT(parse(&cli, ARGV("--listen", ":8088")), GW_CLI_RUN);
  CHECK_EQ_INT(cli.port, 8088);
  gw_cli_free(&cli);
  setenv("PORT", "70000", 1);
  CHECK_EQ_INT(parse(&cli, ARGV("--check")), GW_CLI_USAGE);
  gw_cli_free(&cli);

  /* an empty PORT is ignored */
  setenv("PORT", "", 1);
  CHECK_EQ_INT(parse(&cli, ARGV("--check")), GW_CLI_RUN);
  CHECK_EQ_INT(cli.port, 4003);
  gw_cli_free(&cli);

  unsetenv("PORT");
  CHECK_EQ_INT(parse(&cli, ARGV("--check")), GW_CLI_RUN);
  CHECK_EQ_INT(cli.port, 4003);
  gw_cli_free(&cli);
}

/* The admin listener: beside the main port unless given, or off. */
static void test_admin(void) {
  gw_cli_t cli;
  unsetenv("PORT");
  unsetenv("AIVO_ADMIN_TOKEN");
  unsetenv("ADMIN_TOKEN");
  unsetenv("ADMIN_LISTEN");
  CHECK_EQ_INT(parse(&cli, ARGV("--check")), GW_CLI_RUN);
  CHECK_EQ_INT(cli.admin_port, 4004);
  CHECK(cli.admin_host == NULL);
  CHECK(cli.admin_token == NULL);
  gw_cli_free(&cli);
  CHECK_EQ_INT(parse(&cli, ARGV("--listen", ":9000")), GW_CLI_RUN);
  CHECK_EQ_INT(cli.admin_port, 9001);
  gw_cli_free(&cli);
  setenv("PORT", "5055", 1); /* follows the port from PORT too */
  CHECK_EQ_INT(parse(&cli, ARGV("--check")), GW_CLI_RUN);
  CHECK_EQ_INT(cli.admin_port, 5056);
  gw_cli_free(&cli);
  unsetenv("PORT");
  CHECK_EQ_INT(parse(&cli, ARGV("--listen", ":65535")), GW_CLI_RUN);
  CHECK_EQ_INT(cli.admin_port, -1); /* no port above it */
  gw_cli_free(&cli);
  CHECK_EQ_INT(parse(&cli, ARGV("--listen", ":0")), GW_CLI_RUN);
  CHECK_EQ_INT(cli.admin_port, 0); /* both ephemeral */
  gw_cli_free(&cli);

  CHECK_EQ_INT(parse(&cli, ARGV("--admin-listen", "off")), GW_CLI_RUN);
  CHECK_EQ_INT(cli.admin_port, -1);
  gw_cli_free(&cli);
  CHECK_EQ_INT(parse(&cli, ARGV("--admin-listen=127.0.0.1:7000", "--listen", ":9000")),
               GW_CLI_RUN);
  CHECK_STR(cli.admin_host, "127.0.0.1");
  CHECK_EQ_INT(cli.admin_port, 7000); /* explicit: not moved by --listen */
  gw_cli_free(&cli);
  CHECK_EQ_INT(parse(&cli, ARGV("--admin-listen", "127.0.0.1:7000", "--admin-listen", "off")),
               GW_CLI_RUN);
  CHECK(cli.admin_host == NULL);
  CHECK_EQ_INT(cli.admin_port, -1);
  gw_cli_free(&cli);
  /* a bad one after a good one: an error, and still freeable */
  CHECK_EQ_INT(parse(&cli, ARGV("--admin-listen", "127.0.0.1:7000", "--admin-listen", "x:y")),
               GW_CLI_USAGE);
  gw_cli_free(&cli);
  CHECK_EQ_INT(parse(&cli, ARGV("--admin-listen")), GW_CLI_USAGE);
  gw_cli_free(&cli);

  /* the token: flag, else AIVO_ADMIN_TOKEN */
  CHECK_EQ_INT(parse(&cli, ARGV("--admin-token", "s3cret")), GW_CLI_RUN);
  CHECK_STR(cli.admin_token, "s3cret");
  gw_cli_free(&cli);
  setenv("AIVO_ADMIN_TOKEN", "from-env", 1);
  CHECK_EQ_INT(parse(&cli, ARGV("--check")), GW_CLI_RUN);
  CHECK_STR(cli.admin_token, "from-env");
  gw_cli_free(&cli);
  CHECK_EQ_INT(parse(&cli, ARGV("--admin-token=flag")), GW_CLI_RUN);
  CHECK_STR(cli.admin_token, "flag");
  gw_cli_free(&cli);
  unsetenv("AIVO_ADMIN_TOKEN");
}

static void test_loopback(void) {
  CHECK_EQ_INT(gw_cli_host_is_loopback("127.0.0.1"), 1);
  CHECK_EQ_INT(gw_cli_host_is_loopback("127.1.2.3"), 1);
  CHECK_EQ_INT(gw_cli_host_is_loopback("::1"), 1);
  CHECK_EQ_INT(gw_cli_host_is_loopback("::ffff:127.0.0.1"), 1);
  CHECK_EQ_INT(gw_cli_host_is_loopback("LocalHost"), 1);
  CHECK_EQ_INT(gw_cli_host_is_loopback("0.0.0.0"), 0);
  CHECK_EQ_INT(gw_cli_host_is_loopback("::"), 0);
  CHECK_EQ_INT(gw_cli_host_is_loopback("10.0.0.1"), 0);
  CHECK_EQ_INT(gw_cli_host_is_loopback("128.0.0.1"), 0);
  CHECK_EQ_INT(gw_cli_host_is_loopback("admin.example.com"), 0); /* a name may resolve anywhere */
  CHECK_EQ_INT(gw_cli_host_is_loopback(NULL), 0);
}

/* Off loopback the admin API needs a non-empty token; flag > ADMIN_* > AIVO_*. The refusal
 * message goes to stderr (expected in this output). */
static void test_admin_exposed(void) {
  gw_cli_t cli;
  unsetenv("PORT");
  unsetenv("AIVO_ADMIN_TOKEN");
  unsetenv("ADMIN_TOKEN");
  unsetenv("ADMIN_LISTEN");
  CHECK_EQ_INT(parse(&cli, ARGV("--admin-listen", "0.0.0.0:4004")), GW_CLI_USAGE);
  gw_cli_free(&cli);
  CHECK_EQ_INT(parse(&cli, ARGV("--admin-listen", "0.0.0.0:4004", "--admin-token", "")), GW_CLI_USAGE);
  gw_cli_free(&cli);
  CHECK_EQ_INT(parse(&cli, ARGV("--admin-listen", "[::]:4004")), GW_CLI_USAGE);
  gw_cli_free(&cli);
  CHECK_EQ_INT(parse(&cli, ARGV("--admin-listen", "0.0.0.0:4004", "--admin-token", "t")), GW_CLI_RUN);
  CHECK_EQ_INT(cli.admin_exposed, 0);
  gw_cli_free(&cli);
  CHECK_EQ_INT(parse(&cli, ARGV("--admin-listen", "0.0.0.0:4004", "--admin-insecure")), GW_CLI_RUN);
  CHECK_EQ_INT(cli.admin_exposed, 1); /* main.c logs it loudly */
  gw_cli_free(&cli);
  CHECK_EQ_INT(parse(&cli, ARGV("--admin-insecure=yes")), GW_CLI_USAGE);
  gw_cli_free(&cli);
  /* loopback, a bare :PORT (the admin default host is 127.0.0.1) and off need no token */
  CHECK_EQ_INT(parse(&cli, ARGV("--admin-listen", "127.0.0.1:4004")), GW_CLI_RUN);
  gw_cli_free(&cli);
  CHECK_EQ_INT(parse(&cli, ARGV("--admin-listen", ":4004")), GW_CLI_RUN);
  gw_cli_free(&cli);
  CHECK_EQ_INT(parse(&cli, ARGV("--admin-listen", "off")), GW_CLI_RUN);
  gw_cli_free(&cli);

  setenv("ADMIN_LISTEN", "0.0.0.0:5005", 1);
  CHECK_EQ_INT(parse(&cli, ARGV("--check")), GW_CLI_USAGE);
  gw_cli_free(&cli);
  setenv("ADMIN_TOKEN", "", 1); /* empty is none */
  CHECK_EQ_INT(parse(&cli, ARGV("--check")), GW_CLI_USAGE);
  gw_cli_free(&cli);
  setenv("AIVO_ADMIN_TOKEN", "aivo", 1);
  CHECK_EQ_INT(parse(&cli, ARGV("--check")), GW_CLI_RUN);
  CHECK_STR(cli.admin_host, "0.0.0.0");
  CHECK_EQ_INT(cli.admin_port, 5005);
  CHECK_STR(cli.admin_token, "aivo");
  gw_cli_free(&cli);
  setenv("ADMIN_TOKEN", "admin", 1);
  CHECK_EQ_INT(parse(&cli, ARGV("--check")), GW_CLI_RUN);
  CHECK_STR(cli.admin_token, "admin");
  gw_cli_free(&cli);
  CHECK_EQ_INT(parse(&cli, ARGV("--admin-token", "flag", "--admin-listen", "127.0.0.1:6006")), GW_CLI_RUN);
  CHECK_STR(cli.admin_token, "flag");
  CHECK_STR(cli.admin_host, "127.0.0.1"); /* the flag beats ADMIN_LISTEN */
  CHECK_EQ_INT(cli.admin_port, 6006);
  gw_cli_free(&cli);
  setenv("ADMIN_LISTEN", "nonsense", 1);
  CHECK_EQ_INT(parse(&cli, ARGV("--check")), GW_CLI_USAGE);
  gw_cli_free(&cli);
  setenv("ADMIN_LISTEN", "off", 1);
  CHECK_EQ_INT(parse(&cli, ARGV("--check")), GW_CLI_RUN);
  CHECK_EQ_INT(cli.admin_port, -1);
  gw_cli_free(&cli);
  unsetenv("ADMIN_LISTEN");
  unsetenv("ADMIN_TOKEN");
  unsetenv("AIVO_ADMIN_TOKEN");
}

int main(void) {
  test_loopback();
  test_admin_exposed();
  test_listen();
  test_defaults();
  test_flags();
  test_set();
  test_usage_errors();
  test_bad_listen_after_good();
  test_port_env();
  test_admin();
  return check_done();
}
