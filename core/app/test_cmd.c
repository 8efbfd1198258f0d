#include "test_cmd.h"

#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "strbuf.h"

#define MAX_PLUGIN_DIRS 32

static const char usage[] =
    "usage: aivo-gw test [--plugin-path DIR]... [busted options] [SPEC_DIR_OR_FILE...]\n"
    "\n"
    "Runs busted specs of plugins and policies under LuaJIT (the gateway's interpreter),\n"
    "from the current folder. Modules found by require: the aivo runtime (aivo,\n"
    "aivo.runtime), the test helpers (helpers.fake_core), ./plugins/, every --plugin-path\n"
    "DIR and ./. Specs are read from ./spec unless named. Other options go to busted,\n"
    "e.g. aivo-gw test -o TAP, aivo-gw test --filter greet spec/greet_spec.lua.\n"
    "Exits with busted's status: 0 when every spec passed.\n";

static int is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The installed share folder next to the binary (share/aivo-gw/<installed>), else the
 * source tree it was built from (<source>), as the gateway finds lua/ and plugins/. */
static void data_dir(const char *installed, const char *source, char *buf, size_t cap) {
  char exe[PATH_MAX - 64];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) {
      *slash = 0;
      snprintf(buf, cap, "%s/../share/aivo-gw/%s", exe, installed);
      if (is_dir(buf)) return;
    }
  }
  snprintf(buf, cap, "%s/%s", AIVO_SOURCE_DIR, source);
}

/* The busted script on $PATH (NULL: none). */
static const char *find_busted(char *buf, size_t cap) {
  const char *path = getenv("PATH");
  if (!path || !*path) path = "/usr/local/bin:/usr/bin:/bin";
  while (*path) {
    const char *colon = strchr(path, ':');
    size_t n = colon ? (size_t)(colon - path) : strlen(path);
    if (n && (size_t)snprintf(buf, cap, "%.*s/busted", (int)n, path) < cap && access(buf, X_OK) == 0) return buf;
    path += n + (colon ? 1 : 0);
  }
  return NULL;
}

/* Appends dir/?.lua;dir/?/init.lua; with dir made absolute (specs may chdir). */
static void add_lua_dir(gw_strbuf_t *b, const char *dir) {
  char real[PATH_MAX];
  const char *d = realpath(dir, real) ? real : dir;
  gw_strbuf_appendf(b, "%s/?.lua;%s/?/init.lua;", d, d);
}

/* Folders holding lua-cjson for Lua 5.1 / LuaJIT (Debian: /usr/lib/<triplet>/lua/5.1). */
static void add_cjson_dirs(gw_strbuf_t *b) {
  glob_t g;
  if (glob("/usr/lib/*/lua/5.1/cjson.so", 0, NULL, &g) == 0) {
    for (size_t i = 0; i < g.gl_pathc; i++) {
      char *slash = strrchr(g.gl_pathv[i], '/');
      if (slash) gw_strbuf_appendf(b, "%.*s/?.so;", (int)(slash - g.gl_pathv[i]), g.gl_pathv[i]);
    }
    globfree(&g);
  }
  gw_strbuf_appendf(b, "/usr/local/lib/lua/5.1/?.so;/usr/lib/lua/5.1/?.so");
}

int gw_test_cmd(int argc, char **argv) {
  const char *plugin_dirs[MAX_PLUGIN_DIRS];
  size_t n_dirs = 0;
  char **pass = calloc((size_t)argc + 5, sizeof *pass);
  if (!pass) return 1;
  int np = 0;
  pass[np++] = "luajit";
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      fputs(usage, stdout);
      free(pass);
      return 0;
    }
    if (strcmp(argv[i], "--plugin-path") == 0 || strncmp(argv[i], "--plugin-path=", 14) == 0) {
      const char *dir = argv[i][13] == '=' ? argv[i] + 14 : (i + 1 < argc ? argv[++i] : NULL);
      if (!dir || !*dir || n_dirs == MAX_PLUGIN_DIRS) {
        fprintf(stderr, "aivo-gw test: --plugin-path needs a folder (at most %d)\n", MAX_PLUGIN_DIRS);
        free(pass);
        return 2;
      }
      if (!is_dir(dir)) {
        fprintf(stderr, "aivo-gw test: --plugin-path %s: not a folder\n", dir);
        free(pass);
        return 2;
      }
      plugin_dirs[n_dirs++] = dir;
      continue;
    }
    if (strncmp(argv[i], "--lua=", 6) == 0 || strcmp(argv[i], "--lua") == 0) {
      fprintf(stderr, "aivo-gw test: the interpreter is always LuaJIT, the gateway's\n");
      free(pass);
      return 2;
    }
    pass[np++] = argv[i];
  }

  char lua_dir[PATH_MAX], helpers_dir[PATH_MAX], cwd[PATH_MAX];
  data_dir("lua", "lua", lua_dir, sizeof lua_dir);
  data_dir("lua-test", "tests/lua", helpers_dir, sizeof helpers_dir);
  if (!getcwd(cwd, sizeof cwd)) snprintf(cwd, sizeof cwd, ".");

  /* the plugin path as the gateway searches it, also for helpers.fake_core's find_plugin */
  gw_strbuf_t lpath = {0}, cpath = {0}, ppath = {0};
  gw_strbuf_appendf(&lpath, "--lpath=");
  char plugins[PATH_MAX + 16];
  snprintf(plugins, sizeof plugins, "%s/plugins", cwd);
  add_lua_dir(&lpath, plugins);
  gw_strbuf_appendf(&ppath, "%s", plugins);
  for (size_t i = 0; i < n_dirs; i++) {
    add_lua_dir(&lpath, plugin_dirs[i]);
    char real[PATH_MAX];
    gw_strbuf_appendf(&ppath, ":%s", realpath(plugin_dirs[i], real) ? real : plugin_dirs[i]);
  }
  add_lua_dir(&lpath, lua_dir);
  gw_strbuf_appendf(&lpath, "%s/?.lua;", helpers_dir);
  add_lua_dir(&lpath, cwd);
  gw_strbuf_appendf(&cpath, "--cpath=");
  add_cjson_dirs(&cpath);
  if (!lpath.p || !cpath.p || !ppath.p || setenv("AIVO_TEST_PLUGIN_PATH", ppath.p, 1)) {
    fprintf(stderr, "aivo-gw test: out of memory\n");
    return 1;
  }

  /* luajit <busted> --lpath --cpath [author's options and spec folders]: busted's own
   * --lua re-runs itself through a shell without quoting, which breaks on these paths */
  char busted[PATH_MAX];
  if (!find_busted(busted, sizeof busted)) {
    fprintf(stderr, "aivo-gw test: busted not found on PATH (install it: apt-get install lua-busted)\n");
    gw_strbuf_free(&lpath);
    gw_strbuf_free(&cpath);
    gw_strbuf_free(&ppath);
    free(pass);
    return 127;
  }
  memmove(pass + 4, pass + 1, (size_t)(np - 1) * sizeof *pass);
  pass[0] = "luajit";
  pass[1] = busted;
  pass[2] = lpath.p;
  pass[3] = cpath.p;
  np += 3;
  pass[np] = NULL;
  if (!is_dir(lua_dir))
    fprintf(stderr, "aivo-gw test: warning: the aivo Lua runtime is not at %s\n", lua_dir);
  execvp("luajit", pass);
  int err = errno;
  fprintf(stderr, "aivo-gw test: cannot run luajit: %s%s\n", strerror(err),
          err == ENOENT ? " (install it: apt-get install luajit)" : "");
  gw_strbuf_free(&lpath);
  gw_strbuf_free(&cpath);
  gw_strbuf_free(&ppath);
  free(pass);
  return 127;
}
