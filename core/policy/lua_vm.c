#include "lua_vm.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <luajit-2.1/lauxlib.h>
#include <luajit-2.1/luajit.h>
#include <luajit-2.1/lualib.h>

#include "errors.h"
#include "json_lua.h"
#include "log.h"

extern int luaopen_cjson(lua_State *L);

#define HOOK_EVERY 1000              /* instructions between budget checks */
#define MAX_SOURCE_BYTES (8u << 20)  /* a policy source file larger than this is refused */

/* ---- allocation with a cap ------------------------------------------------------------ */

/* Counts and caps every allocation of the state, and passes it to LuaJIT's own allocator
 * (taken from luaL_newstate): a dlmalloc arena of the state's own, so the GC's many small
 * objects neither share glibc's heap with libwebsockets nor pay its slow paths (with
 * 10,000 connections held, glibc's _int_malloc was 5 % of the echo path). */
static void *vm_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  gw_lua_vm_t *vm = ud;
  size_t old = ptr ? osize : 0;
  if (nsize > old && vm->mem_limit && vm->mem_used - old + nsize > vm->mem_limit) {
    vm->over_memory = 1;
    return NULL;
  }
  void *n = vm->base_alloc(vm->base_ud, ptr, osize, nsize);
  if (!n && nsize) return NULL;
  vm->mem_used = vm->mem_used - old + nsize;
  return n;
}

gw_lua_vm_t *gw_lua_vm_of(lua_State *L) {
  void *ud = NULL;
  lua_getallocf(L, &ud);
  return ud;
}

/* ---- instruction budget and wall clock ------------------------------------------------- */

uint64_t gw_lua_vm_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void budget_hook(lua_State *L, lua_Debug *ar);

/* Raises the budget error naming the running Lua line. From now on every instruction
 * raises too, so no pcall loop in the policy can outrun it. */
static void raise_limit(lua_State *L, gw_lua_vm_t *vm, int timed_out) {
  if (!vm->over_budget && !vm->over_time) lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
  if (timed_out) vm->over_time = 1;
  else vm->over_budget = 1;
  char what[96];
  if (vm->over_time && vm->load_deadline_ns)
    snprintf(what, sizeof what, "time limit of the policy load exceeded");
  else if (vm->over_time)
    snprintf(what, sizeof what, "time limit exceeded (%llu ms)", (unsigned long long)vm->call_timeout_ms);
  else
    snprintf(what, sizeof what, "instruction budget exceeded (%llu instructions)",
             (unsigned long long)vm->budget);
  char msg[512];
  lua_Debug where;
  /* name the running Lua line: that is the loop an operator has to look at (level 0 is
   * the C function when the matcher raises, so look one level further then) */
  int lv = 0, found = 0;
  for (; lv < 2 && !found; lv++)
    found = lua_getstack(L, lv, &where) && lua_getinfo(L, "Sl", &where) && where.currentline > 0;
  if (found) snprintf(msg, sizeof msg, "%s:%d: %s", where.short_src, where.currentline, what);
  else snprintf(msg, sizeof msg, "%s", what);
  snprintf(vm->limit_msg, sizeof vm->limit_msg, "%s", msg);
  lua_pushstring(L, msg);
  lua_error(L);
}

static void check_limits(lua_State *L, gw_lua_vm_t *vm) {
  if (vm->over_budget || vm->over_time) raise_limit(L, vm, vm->over_time);
  if (vm->budget && vm->counted > vm->budget) raise_limit(L, vm, 0);
  if (vm->deadline_ns && gw_lua_vm_now_ns() > vm->deadline_ns) raise_limit(L, vm, 1);
}

static void budget_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  gw_lua_vm_t *vm = gw_lua_vm_of(L);
  vm->counted += HOOK_EVERY;
  check_limits(L, vm);
}

void gw_lua_vm_charge(lua_State *L, uint64_t steps) {
  gw_lua_vm_t *vm = gw_lua_vm_of(L);
  vm->counted += steps;
  check_limits(L, vm);
}

static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (!msg) msg = "(error object is not a string)";
  luaL_traceback(L, L, msg, 1);
  return 1;
}

gw_lua_err_t gw_lua_vm_call(gw_lua_vm_t *vm, int nargs, int nresults, uint64_t budget) {
  lua_State *L = vm->L;
  int base = lua_gettop(L) - nargs;
  lua_rawgeti(L, LUA_REGISTRYINDEX, vm->traceback_ref); /* pushcfunction would allocate */
  lua_insert(L, base);
  vm->budget = budget;
  vm->counted = 0;
  vm->over_budget = vm->over_memory = vm->over_time = 0;
  vm->deadline_ns = vm->load_deadline_ns      ? vm->load_deadline_ns
                    : vm->call_timeout_ms ? gw_lua_vm_now_ns() + vm->call_timeout_ms * 1000000u
                                          : 0;
  int rc = lua_pcall(L, nargs, nresults, base);
  lua_remove(L, base);
  vm->budget = 0;
  vm->deadline_ns = 0;
  int over = vm->over_budget || vm->over_time;
  if (over) lua_sethook(L, budget_hook, LUA_MASKCOUNT, HOOK_EVERY);
  if (rc == 0 && over) {
    /* the policy caught the budget error with pcall and returned: still a failure */
    lua_pop(L, nresults == LUA_MULTRET ? 0 : nresults);
    lua_pushfstring(L, "%s (the error was caught by pcall in the policy)", vm->limit_msg);
    return GW_LUA_ERR_BUDGET;
  }
  if (rc == 0) return GW_LUA_ERR_NONE;
  if (rc == LUA_ERRMEM || vm->over_memory) {
    lua_gc(L, LUA_GCCOLLECT, 0); /* give the memory of the failed call back */
    return GW_LUA_ERR_MEMORY;
  }
  return over ? GW_LUA_ERR_BUDGET : GW_LUA_ERR_RUN;
}

/* ---- loading source, never bytecode --------------------------------------------------- */

static int file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int push_env_and_setfenv(lua_State *L) {
  gw_lua_vm_t *vm = gw_lua_vm_of(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, vm->env_ref);
  return lua_setfenv(L, -2);
}

/* The real path of `path` lies under one of the roots (also real paths): symlinks and ".."
 * are resolved first, so neither leads out of the folders. */
int gw_lua_vm_path_allowed(const gw_lua_vm_t *vm, const char *path) {
  char real[PATH_MAX];
  if (!path) return 0;
  if (!realpath(path, real)) {
    /* a missing file: judge its folder, so the error can say "cannot open" */
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash || (size_t)(slash - path) >= sizeof dir) snprintf(dir, sizeof dir, ".");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    if (!*dir) snprintf(dir, sizeof dir, "/");
    if (!realpath(dir, real) || strlen(real) + 2 >= sizeof real) return 0;
    strcat(real, "/");
  }
  for (char **r = vm->roots; r && *r; r++) {
    size_t n = strlen(*r);
    if (strncmp(real, *r, n) == 0 && (real[n] == '/' || (n == 1 && **r == '/'))) return 1;
  }
  return 0;
}

int gw_lua_vm_load_file(lua_State *L, const char *path) {
  if (!gw_lua_vm_path_allowed(gw_lua_vm_of(L), path)) {
    /* refused before it is opened: nothing of the file, not even whether it exists */
    lua_pushnil(L);
    lua_pushfstring(L, "%s: refused: policy code loads files only from the policy, runtime and "
                       "plugin folders", path);
    return 2;
  }
  FILE *f = fopen(path, "rb");
  if (!f) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s: cannot open: %s", path, strerror(errno));
    return 2;
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  char chunk[8192];
  size_t n, total = 0;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    total += n;
    if (total > MAX_SOURCE_BYTES) break;
    luaL_addlstring(&b, chunk, n);
  }
  fclose(f);
  luaL_pushresult(&b);
  if (total > MAX_SOURCE_BYTES) {
    lua_pop(L, 1);
    lua_pushnil(L);
    lua_pushfstring(L, "%s: file too large for a policy source", path);
    return 2;
  }
  size_t len;
  const char *src = lua_tolstring(L, -1, &len);
  lua_pushfstring(L, "@%s", path);
  int rc = luaL_loadbufferx(L, src, len, lua_tostring(L, -1), "t");
  lua_remove(L, -2); /* chunk name */
  lua_remove(L, -2); /* source */
  if (rc != 0) {
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
  }
  push_env_and_setfenv(L);
  return 1;
}

static int l_loadstring(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  const char *name = luaL_optstring(L, 2, "=(load)");
  if (luaL_loadbufferx(L, s, len, name, "t") != 0) {
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
  }
  push_env_and_setfenv(L);
  return 1;
}

/* Remembers the real folder of a file this state loads (for the policy watch); no-op on
 * failure: watching is best effort, loading is not affected. */
static void note_loaded_dir(gw_lua_vm_t *vm, const char *path) {
  char real[PATH_MAX];
  if (!realpath(path, real)) return;
  char *slash = strrchr(real, '/');
  if (!slash) return;
  if (slash == real) slash[1] = 0; /* a file in / */
  else *slash = 0;
  for (size_t i = 0; i < vm->n_loaded_dirs; i++)
    if (strcmp(vm->loaded_dirs[i], real) == 0) return;
  char **n = realloc(vm->loaded_dirs, (vm->n_loaded_dirs + 2) * sizeof *n);
  if (!n) return;
  vm->loaded_dirs = n;
  if (!(n[vm->n_loaded_dirs] = strdup(real))) {
    n[vm->n_loaded_dirs] = NULL;
    return;
  }
  n[++vm->n_loaded_dirs] = NULL;
}

int gw_lua_vm_set_policy_file(gw_lua_vm_t *vm, const char *real_path) {
  free(vm->policy_file);
  vm->policy_file = real_path ? strdup(real_path) : NULL;
  return real_path && !vm->policy_file ? GW_ENOMEM : 0;
}

const char *const *gw_lua_vm_loaded_dirs(const gw_lua_vm_t *vm) {
  static const char *const none[] = {NULL};
  return vm->loaded_dirs ? (const char *const *)vm->loaded_dirs : none;
}

/* Whether path is the policy file itself (compared by real path: ./x and x are one file). */
static int is_policy_file(const gw_lua_vm_t *vm, const char *path) {
  char real[PATH_MAX];
  return vm->policy_file && realpath(path, real) && strcmp(real, vm->policy_file) == 0;
}

/* Tries dir/<name with dots as slashes>.lua then .../init.lua, skipping `skip` (the policy
 * file when looking for a plugin, else NULL); pushes the path found. *skipped is set when
 * a candidate was passed over for being the policy. */
static int search_dir_except(lua_State *L, const char *dir, const char *name, const gw_lua_vm_t *skip,
                             int *skipped) {
  if (!dir) return 0;
  char rel[512];
  snprintf(rel, sizeof rel, "%s", name);
  for (char *p = rel; *p; p++)
    if (*p == '.') *p = '/';
  static const char *const forms[] = {"%s/%s.lua", "%s/%s/init.lua"};
  char path[1024];
  for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
    snprintf(path, sizeof path, forms[i], dir, rel);
    if (!file_exists(path)) continue;
    if (skip && is_policy_file(skip, path)) {
      if (skipped) *skipped = 1;
      continue;
    }
    lua_pushstring(L, path);
    return 1;
  }
  return 0;
}

static int search_dir(lua_State *L, const char *dir, const char *name) {
  return search_dir_except(L, dir, name, NULL, NULL);
}

int gw_lua_vm_find_plugin(lua_State *L, const char *name) {
  gw_lua_vm_t *vm = gw_lua_vm_of(L);
  if (!*name || strstr(name, "..") || strchr(name, '/')) {
    lua_pushnil(L);
    lua_pushfstring(L, "bad plugin name '%s'", name);
    return 2;
  }
  /* <policy dir>/plugins first, so a plugin never resolves to a policy file of its name;
   * and in the policy's own folder the policy file itself is skipped */
  char sub[1024];
  int skipped = 0;
  if (vm->policy_dir) {
    snprintf(sub, sizeof sub, "%s/plugins", vm->policy_dir);
    if (search_dir_except(L, sub, name, vm, &skipped)) goto found;
  }
  if (search_dir_except(L, vm->policy_dir, name, vm, &skipped)) goto found;
  for (char **d = vm->plugin_dirs; d && *d; d++)
    if (search_dir_except(L, *d, name, vm, &skipped)) goto found;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  lua_pushfstring(L, "plugin '%s' not found in: %s/plugins, %s", name,
                  vm->policy_dir ? vm->policy_dir : ".", vm->policy_dir ? vm->policy_dir : ".");
  luaL_addvalue(&b);
  for (char **d = vm->plugin_dirs; d && *d; d++) {
    luaL_addstring(&b, ", ");
    luaL_addstring(&b, *d);
  }
  if (skipped) luaL_addstring(&b, " (the policy file itself is never loaded as a plugin)");
  luaL_pushresult(&b);
  lua_pushnil(L);
  lua_insert(L, -2);
  return 2;
found:
  note_loaded_dir(vm, lua_tostring(L, -1));
  return 1;
}

static int l_require(lua_State *L) {
  gw_lua_vm_t *vm = gw_lua_vm_of(L);
  const char *name = luaL_checkstring(L, 1);
  lua_settop(L, 1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, vm->loaded_ref); /* 2 */
  lua_getfield(L, 2, name);
  /* the loading marker first: a light userdata also counts as true */
  if (lua_islightuserdata(L, -1)) return luaL_error(L, "loop while loading module '%s'", name);
  if (lua_toboolean(L, -1)) return 1;
  lua_pop(L, 1);

  lua_CFunction opener = NULL;
  if (strcmp(name, "cjson") == 0) opener = luaopen_cjson;
  else if (strcmp(name, "aivo.core") == 0) opener = vm->core_module;
  else if (strcmp(name, "aivo.json") == 0) opener = gw_json_lua_open;
  if (opener) {
    lua_pushcfunction(L, opener);
    lua_call(L, 0, 1);
  } else {
    if (strstr(name, "..")) return luaL_error(L, "bad module name '%s'", name);
    if (!search_dir(L, vm->lua_dir, name) && !search_dir(L, vm->policy_dir, name))
      return luaL_error(L, "module '%s' not found in %s or %s", name,
                        vm->lua_dir ? vm->lua_dir : "-", vm->policy_dir ? vm->policy_dir : "-");
    const char *path = lua_tostring(L, -1);
    note_loaded_dir(vm, path);
    lua_pushlightuserdata(L, vm); /* marks "loading" to catch cycles */
    lua_setfield(L, 2, name);
    if (gw_lua_vm_load_file(L, path) != 1) {
      lua_pushnil(L);
      lua_setfield(L, 2, name);
      return lua_error(L);
    }
    lua_pushstring(L, name);
    lua_call(L, 1, 1);
  }
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_pushboolean(L, 1);
  }
  lua_pushvalue(L, -1);
  lua_setfield(L, 2, name);
  return 1;
}

/* ---- read-only sharing ----------------------------------------------------------------- */

static int l_readonly_field(lua_State *L) {
  const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "?";
  return luaL_error(L, "attempt to modify field '%s' of a read-only table: shared modules and "
                       "metatables are read-only in policies", k);
}

/* A table whose __newindex is l_readonly_field (a proxy or a frozen module). */
static int is_readonly(lua_State *L, int idx) {
  if (!lua_getmetatable(L, idx)) return 0;
  lua_getfield(L, -1, "__newindex");
  int ro = lua_tocfunction(L, -1) == l_readonly_field;
  lua_pop(L, 2);
  return ro;
}

/* Pushes the metatable of every read-only table: reads go to `backing`, writes raise,
 * and getmetatable() gives false, so the backing table is never reachable. */
static void push_readonly_mt(lua_State *L, int backing) {
  lua_createtable(L, 0, 3);
  lua_pushvalue(L, backing);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_readonly_field);
  lua_setfield(L, -2, "__newindex");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
}

/* Pushes an empty proxy of the table at idx. Every key stays absent in the proxy, so every
 * write reaches __newindex (a plain copy with a metatable would let existing keys change). */
static void push_readonly(lua_State *L, int idx) {
  idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
  lua_newtable(L);
  push_readonly_mt(L, idx);
  lua_setmetatable(L, -2);
}

/* Makes the table at idx read-only in place (its identity stays, so every module that holds
 * it sees the frozen one): its fields move to a hidden table. A table that has a metatable
 * of its own is left alone. pairs() over a frozen table sees nothing (LuaJIT has no __pairs). */
static void freeze_in_place(lua_State *L, int idx) {
  idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
  if (!lua_istable(L, idx)) return;
  if (lua_getmetatable(L, idx)) {
    lua_pop(L, 1);
    return;
  }
  lua_newtable(L);
  int back = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, back);
  }
  lua_pushnil(L);
  while (lua_next(L, back)) {
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_pushnil(L);
    lua_rawset(L, idx);
  }
  push_readonly_mt(L, back);
  lua_setmetatable(L, idx);
  lua_pop(L, 1); /* back */
}

void gw_lua_vm_freeze_modules(gw_lua_vm_t *vm) {
  /* aivo.defaults is only read while loading (copied into the config), so it stays as is */
  static const char *const modules[] = {"aivo", "aivo.core", "aivo.json", "cjson",
                                        "aivo.runtime", "aivo.traffic", "aivo.replay", NULL};
  static const char *const gw_subtables[] = {"log", "metrics", "store", NULL};
  lua_State *L = vm->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, vm->loaded_ref);
  lua_getfield(L, -1, "aivo");
  if (lua_istable(L, -1))
    for (const char *const *f = gw_subtables; *f; f++) {
      lua_getfield(L, -1, *f);
      freeze_in_place(L, -1);
      lua_pop(L, 1);
    }
  lua_pop(L, 1);
  for (const char *const *m = modules; *m; m++) {
    lua_getfield(L, -1, *m);
    freeze_in_place(L, -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* ---- the sandbox --------------------------------------------------------------------- */

static int l_readonly_newindex(lua_State *L) {
  return luaL_error(L, "assignment to global '%s': globals are read-only in policies (use local)",
                    lua_tostring(L, 2) ? lua_tostring(L, 2) : "?");
}

static int l_rawset(lua_State *L) {
  gw_lua_vm_t *vm = gw_lua_vm_of(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_rawgeti(L, LUA_REGISTRYINDEX, vm->env_ref);
  if (lua_rawequal(L, 1, -1)) return luaL_error(L, "globals are read-only in policies");
  lua_pop(L, 1);
  if (is_readonly(L, 1)) return luaL_error(L, "rawset on a read-only table: shared modules are read-only in policies");
  luaL_checkany(L, 3);
  lua_settop(L, 3);
  lua_rawset(L, 1);
  lua_settop(L, 1);
  return 1;
}

static int l_print(lua_State *L) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  int n = lua_gettop(L);
  lua_getglobal(L, "tostring");
  for (int i = 1; i <= n; i++) {
    lua_pushvalue(L, -1);
    lua_pushvalue(L, i);
    lua_call(L, 1, 1);
    if (i > 1) luaL_addchar(&b, '\t');
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  gw_log(GW_LOG_INFO, 0, "[lua] %s", lua_tostring(L, -1));
  return 0;
}

static void copy_fields(lua_State *L, int from, int to, const char *const *names) {
  for (; *names; names++) {
    lua_getfield(L, from, *names);
    lua_setfield(L, to, *names);
  }
}

static void build_sandbox(gw_lua_vm_t *vm) {
  lua_State *L = vm->L;
  static const char *const base[] = {"assert", "error", "ipairs", "next", "pairs", "pcall",
                                     "select", "tonumber", "tostring", "type", "unpack",
                                     "xpcall", "rawequal", "rawget", "setmetatable",
                                     "getmetatable", "_VERSION", NULL};
  /* shared by every plugin and connection: seen through read-only proxies */
  static const char *const shared[] = {"string", "table", "math", "bit", NULL};
  static const char *const os_ok[] = {"time", "clock", "date", "difftime", NULL};

  /* bytecode can be produced but never loaded; drop the producer anyway */
  lua_getglobal(L, "string");
  lua_pushnil(L);
  lua_setfield(L, -2, "dump");
  /* find/match/gmatch/gsub with a matcher that counts its steps (lua_pattern.c): the
   * string methods of every string use this same table */
  if (vm->string_install) vm->string_install(L, lua_gettop(L));
  lua_pop(L, 1);

  lua_newtable(L); /* S: what policy code can see */
  int S = lua_gettop(L);
  lua_pushvalue(L, LUA_GLOBALSINDEX);
  copy_fields(L, -1, S, base);
  for (const char *const *m = shared; *m; m++) {
    lua_getfield(L, -1, *m);
    push_readonly(L, -1);
    lua_setfield(L, S, *m);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  lua_newtable(L);
  int safe_os = lua_gettop(L);
  lua_getglobal(L, "os");
  copy_fields(L, lua_gettop(L), safe_os, os_ok);
  lua_pop(L, 1);
  push_readonly(L, safe_os);
  lua_setfield(L, S, "os");
  lua_pop(L, 1); /* safe_os */

  /* the string metatable is shared by every string of the state: getmetatable("") gives a
   * read-only stand-in ({__index = the read-only string}), never the real one */
  lua_pushliteral(L, "");
  if (lua_getmetatable(L, -1)) {
    lua_createtable(L, 0, 1);
    lua_getfield(L, S, "string");
    lua_setfield(L, -2, "__index");
    push_readonly(L, -1);
    lua_setfield(L, -3, "__metatable");
    lua_pop(L, 2);
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_require);
  lua_setfield(L, S, "require");
  lua_pushcfunction(L, l_loadstring);
  lua_setfield(L, S, "loadstring");
  lua_pushcfunction(L, l_loadstring);
  lua_setfield(L, S, "load");
  lua_pushcfunction(L, l_rawset);
  lua_setfield(L, S, "rawset");
  lua_pushcfunction(L, l_print);
  lua_setfield(L, S, "print");

  lua_newtable(L); /* the env proxy: reads fall through to S, writes raise */
  lua_newtable(L);
  lua_pushvalue(L, S);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_readonly_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_setfield(L, S, "_G");
  vm->env_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pop(L, 1); /* S */
}

const char *gw_lua_json_encode(gw_lua_vm_t *vm, int idx, size_t *len) {
  if (gw_json_lua_encode(vm->L, idx, &vm->enc_buf)) return NULL;
  *len = vm->enc_buf.len;
  return vm->enc_buf.p ? vm->enc_buf.p : "";
}

/* An error outside every protected call: LuaJIT ends the process after this returns. The
 * gateway's own calls are all protected; this says so in the log if one is not. */
static int on_panic(lua_State *L) {
  const char *m = lua_tostring(L, -1);
  gw_log(GW_LOG_ERROR, 0, "Lua panic (an error outside a protected call): %s; exiting", m ? m : "?");
  return 0;
}

typedef struct decode_args {
  const char *s;
  size_t len;
  gw_strbuf_t *scratch;
  int rc;
} decode_args_t;

/* Runs under lua_pcall: a client's JSON that reaches the Lua memory limit while its tables
 * are built raises a memory error here instead of a panic outside any protected call. */
static int decode_protected(lua_State *L) {
  decode_args_t *a = lua_touserdata(L, 1);
  lua_settop(L, 0);
  a->rc = gw_json_lua_decode(L, a->s, a->len, a->scratch);
  return 1; /* the value, or the parse error's message */
}

int gw_lua_json_decode(gw_lua_vm_t *vm, const char *s, size_t len) {
  lua_State *L = vm->L;
  decode_args_t a = {s, len, &vm->dec_scratch, -1};
  if (!lua_checkstack(L, 3)) {
    lua_pushliteral(L, "nesting too deep");
    return -1;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, vm->decode_ref); /* pushcfunction would allocate */
  lua_pushlightuserdata(L, &a);
  int st = lua_pcall(L, 1, 1, 0);
  if (st == 0) return a.rc;
  lua_pop(L, 1);
  lua_gc(L, LUA_GCCOLLECT, 0); /* the half-built tables go now, before the message is pushed */
  if (st == LUA_ERRMEM) {
    gw_log(GW_LOG_WARN, 0, "a JSON value of %zu bytes did not fit in the policy's Lua memory (lua.memory_limit_mb): refused", len);
    lua_pushliteral(L, "too large for the policy's memory (lua.memory_limit_mb)");
  } else {
    lua_pushliteral(L, "could not be decoded");
  }
  return -1;
}

void gw_lua_vm_set_jit(gw_lua_vm_t *vm, int on) {
  luaJIT_setmode(vm->L, 0, LUAJIT_MODE_ENGINE | (on ? LUAJIT_MODE_ON : LUAJIT_MODE_OFF));
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

gw_lua_vm_t *gw_lua_vm_new(const gw_lua_paths_t *paths, char *err, size_t errlen) {
  gw_lua_vm_t *vm = calloc(1, sizeof *vm);
  if (!vm) goto nomem;
  vm->lua_dir = dup_or_null(paths->lua_dir);
  vm->policy_dir = dup_or_null(paths->policy_dir);
  size_t n = 0;
  while (paths->plugin_dirs && paths->plugin_dirs[n]) n++;
  vm->plugin_dirs = calloc(n + 1, sizeof *vm->plugin_dirs);
  if (!vm->plugin_dirs) goto nomem;
  for (size_t i = 0; i < n; i++) vm->plugin_dirs[i] = strdup(paths->plugin_dirs[i]);
  vm->roots = calloc(n + 3, sizeof *vm->roots);
  if (!vm->roots) goto nomem;
  size_t nr = 0;
  const char *dirs[2] = {paths->lua_dir, paths->policy_dir};
  char real[PATH_MAX];
  for (size_t i = 0; i < n + 2; i++) {
    const char *d = i < 2 ? dirs[i] : paths->plugin_dirs[i - 2];
    if (d && realpath(d, real) && (vm->roots[nr] = strdup(real))) nr++;
  }

  vm->core_module = paths->core_module;
  vm->string_install = paths->string_install;
  vm->L = luaL_newstate();
  if (!vm->L) goto nomem;
  lua_State *L = vm->L;
  lua_atpanic(L, on_panic);
  vm->base_alloc = lua_getallocf(L, &vm->base_ud);
  /* what the new state holds already, so the count never goes below zero */
  vm->mem_used = (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB, 0);
  lua_setallocf(L, vm_alloc, vm);
  luaL_openlibs(L);
  gw_lua_vm_set_jit(vm, 0);
  build_sandbox(vm);
  lua_newtable(L);
  vm->loaded_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_newtable(L);
  vm->conns_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushcfunction(L, traceback);
  vm->traceback_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushcfunction(L, decode_protected);
  vm->decode_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  gw_json_lua_setup(L);
  lua_sethook(L, budget_hook, LUA_MASKCOUNT, HOOK_EVERY);
  return vm;
nomem:
  snprintf(err, errlen, "out of memory creating the Lua state");
  gw_lua_vm_free(vm);
  return NULL;
}

void gw_lua_vm_free(gw_lua_vm_t *vm) {
  if (!vm) return;
  if (vm->L) {
    /* LuaJIT destroys its own allocator's arena in lua_close only when that allocator is
     * still the state's (lj_state.c close_state); through ours it would free the objects
     * but keep the arena's segments mapped: ~212 KB lost per reload. Hand it back first:
     * the counting is over anyway. */
    lua_setallocf(vm->L, vm->base_alloc, vm->base_ud);
    lua_close(vm->L);
  }
  gw_strbuf_free(&vm->enc_buf);
  gw_strbuf_free(&vm->dec_scratch);
  for (char **d = vm->plugin_dirs; d && *d; d++) free(*d);
  free(vm->plugin_dirs);
  for (size_t i = 0; i < vm->n_loaded_dirs; i++) free(vm->loaded_dirs[i]);
  free(vm->loaded_dirs);
  free(vm->policy_file);
  for (char **d = vm->roots; d && *d; d++) free(*d);
  free(vm->roots);
  free(vm->lua_dir);
  free(vm->policy_dir);
  free(vm);
}
