/* The policy Lua state: sandbox, read-only globals, source-only loading, instruction budget,
 * memory cap, error messages, require, JSON helpers and plugin lookup.
 * Chunks are written to a temp dir and compiled with gw_lua_vm_load_file, as policies are. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <luajit-2.1/lauxlib.h>
#include <luajit-2.1/lualib.h>

#include "check.h"
#include "lua_api.h"
#include "lua_pattern.h"
#include "lua_vm.h"

#define BUDGET 10000000ull /* plenty for every chunk here but the endless ones */

static char g_tmp[64];
static char g_src[1024];

static const char *source_dir(void) {
  const char *s = getenv("AIVO_SOURCE_DIR");
  return s && *s ? s : AIVO_SOURCE_DIR;
}

static void write_file(const char *path, const char *data, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f) {
    fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
    exit(2);
  }
  fwrite(data, 1, len, f);
  fclose(f);
}

/* Writes src to <tmp>/<name> and returns the path (static buffer). */
static const char *tmp_file(const char *name, const char *src) {
  static char path[512];
  snprintf(path, sizeof path, "%s/%s", g_tmp, name);
  char dir[512];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash && slash > dir + strlen(g_tmp)) { /* one level of subfolder is enough here */
    *slash = 0;
    mkdir(dir, 0700);
  }
  write_file(path, src, strlen(src));
  return path;
}

static void rm_rf(const char *dir) {
  char cmd[600];
  /* g_tmp came from mkdtemp under /tmp: nothing else can be named here */
  if (strncmp(dir, "/tmp/aivo-unit-", 15) != 0) return;
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
}

typedef struct {
  int loaded;       /* gw_lua_vm_load_file compiled it */
  gw_lua_err_t err; /* the call's outcome */
  char out[4096];   /* the first result as text, or the error message */
} result_t;

static void to_text(lua_State *L, int idx, char *out, size_t cap) {
  switch (lua_type(L, idx)) {
    case LUA_TNIL: snprintf(out, cap, "nil"); break;
    case LUA_TBOOLEAN: snprintf(out, cap, "%s", lua_toboolean(L, idx) ? "true" : "false"); break;
    case LUA_TNUMBER:
    case LUA_TSTRING: snprintf(out, cap, "%s", lua_tostring(L, idx)); break;
    default: snprintf(out, cap, "<%s>", lua_typename(L, lua_type(L, idx)));
  }
}

static int g_nchunk;

/* Compiles src from a temp file and calls it with one optional string argument. */
static result_t run_arg(gw_lua_vm_t *vm, const char *src, uint64_t budget, const char *arg,
                        size_t arglen) {
  result_t r = {0, GW_LUA_ERR_NONE, ""};
  lua_State *L = vm->L;
  int top = lua_gettop(L);
  char name[32];
  snprintf(name, sizeof name, "chunk%d.lua", ++g_nchunk);
  const char *path = tmp_file(name, src);
  if (gw_lua_vm_load_file(L, path) != 1) {
    to_text(L, -1, r.out, sizeof r.out);
    lua_settop(L, top);
    return r;
  }
  r.loaded = 1;
  int nargs = 0;
  if (arg) {
    lua_pushlstring(L, arg, arglen);
    nargs = 1;
  }
  r.err = gw_lua_vm_call(vm, nargs, 1, budget);
  /* one result or one error message: the stack is balanced either way */
  if (lua_gettop(L) != top + 1) {
    snprintf(r.out, sizeof r.out, "stack: %d values, want 1", lua_gettop(L) - top);
    r.err = (gw_lua_err_t)-1;
  } else {
    to_text(L, -1, r.out, sizeof r.out);
  }
  lua_settop(L, top);
  return r;
}

static result_t run(gw_lua_vm_t *vm, const char *src) { return run_arg(vm, src, BUDGET, NULL, 0); }

/* The chunk runs without error and returns (as text) want. */
#define CHECK_LUA(vm, src, want)                                                  \
  do {                                                                            \
    result_t r_ = run((vm), (src));                                               \
    if (!CHECK(r_.loaded && r_.err == GW_LUA_ERR_NONE))                           \
      fprintf(stderr, "  chunk: %s\n  error: %s\n", (src), r_.out);               \
    else if (!CHECK_STR(r_.out, (want)))                                          \
      fprintf(stderr, "  chunk: %s\n", (src));                                    \
  } while (0)

/* The chunk raises a run-time error whose message contains want. */
#define CHECK_LUA_RAISES(vm, src, want)                                           \
  do {                                                                            \
    result_t r_ = run((vm), (src));                                               \
    if (!CHECK(r_.loaded && r_.err == GW_LUA_ERR_RUN))                            \
      fprintf(stderr, "  chunk: %s\n  got: %d %s\n", (src), (int)r_.err, r_.out); \
    else                                                                          \
      CHECK_CONTAINS(r_.out, (want));                                             \
  } while (0)

static gw_lua_vm_t *new_vm(void) {
  static char plugins[1024];
  snprintf(plugins, sizeof plugins, "%s/plugins", source_dir());
  const char *const plugin_dirs[] = {plugins, NULL};
  gw_lua_paths_t paths = {g_src, g_tmp, plugin_dirs, gw_lua_api_open, gw_lua_pattern_install};
  char err[256] = "";
  gw_lua_vm_t *vm = gw_lua_vm_new(&paths, err, sizeof err);
  if (!CHECK(vm != NULL)) {
    fprintf(stderr, "gw_lua_vm_new: %s\n", err);
    exit(1);
  }
  return vm;
}

static void test_sandbox(gw_lua_vm_t *vm) {
  /* what policy code must not reach */
  static const char *const absent[] = {
      "io", "os.execute", "os.exit", "os.getenv", "os.remove", "os.rename", "os.tmpname",
      "debug", "ffi", "jit", "package", "dofile", "loadfile", "getfenv", "setfenv",
      "string.dump", "module", "collectgarbage", "newproxy", "rawlen", NULL};
  for (const char *const *a = absent; *a; a++) {
    char src[128];
    snprintf(src, sizeof src, "return %s == nil", *a);
    CHECK_LUA(vm, src, "true");
  }
  /* ... not even by a way around the globals */
  CHECK_LUA(vm, "return getmetatable('').__index.dump == nil", "true");
  CHECK_LUA(vm, "return rawget(_G, 'io') == nil", "true");
  CHECK_LUA(vm, "return getmetatable(_G)", "false"); /* the env's metatable is hidden */
  CHECK_LUA_RAISES(vm, "setmetatable(_G, nil)", "protected metatable");
  CHECK_LUA(vm, "return _G == _G._G", "true");

  /* require cannot open native modules */
  static const char *const mods[] = {"ffi", "jit", "io", "os", "debug", "package", "jit.util",
                                     NULL};
  for (const char *const *m = mods; *m; m++) {
    char src[160];
    snprintf(src, sizeof src, "local ok, err = pcall(require, '%s') return ok", *m);
    CHECK_LUA(vm, src, "false");
  }
  CHECK_LUA_RAISES(vm, "require 'ffi'", "module 'ffi' not found");
  CHECK_LUA_RAISES(vm, "require 'aivo/../../../etc/passwd'", "bad module name");

  /* what policy code can use */
  CHECK_LUA(vm, "return type(os.time())", "number");
  CHECK_LUA(vm, "return os.time() > 1600000000", "true");
  CHECK_LUA(vm, "return type(os.clock()) .. type(os.date('!%Y')) .. type(os.difftime(2, 1))",
            "numberstringnumber");
  CHECK_LUA(vm, "return string.format('%d-%s', 7, ('x'):rep(3))", "7-xxx");
  CHECK_LUA(vm, "return table.concat({1, 2, 3}, ',') .. math.floor(2.5) .. bit.band(6, 3)",
            "1,2,322");
  CHECK_LUA(vm, "local t = setmetatable({}, {__index = function() return 5 end}) return t.x",
            "5");
  CHECK_LUA(vm, "return select('#', unpack({1, 2, 3}))", "3");
  CHECK_LUA(vm, "local ok = pcall(error, 'x') return ok", "false");
  CHECK_LUA(vm, "return _VERSION", "Lua 5.1");
  CHECK_LUA(vm, "local t = {} rawset(t, 'k', 1) return t.k", "1"); /* rawset on other tables */
}

static void test_readonly_globals(gw_lua_vm_t *vm) {
  CHECK_LUA_RAISES(vm, "x = 1", "read-only");
  CHECK_LUA_RAISES(vm, "x = 1", "'x'"); /* names the global */
  CHECK_LUA_RAISES(vm, "_G.y = 1", "read-only");
  CHECK_LUA_RAISES(vm, "_G['z'] = 1", "read-only");
  CHECK_LUA_RAISES(vm, "function f() end", "read-only");
  CHECK_LUA_RAISES(vm, "string = nil", "read-only"); /* existing names too */
  CHECK_LUA_RAISES(vm, "rawset(_G, 'x', 1)", "read-only");
  CHECK_LUA(vm, "local ok = pcall(rawset, _G, 'x', 1) return ok", "false");
  /* nothing was written by any of the attempts above */
  CHECK_LUA(vm, "return tostring(x) .. tostring(y) .. tostring(z) .. tostring(f)",
            "nilnilnilnil");
  CHECK_LUA(vm, "return type(string)", "table");
  /* locals are fine */
  CHECK_LUA(vm, "local x = 1 x = x + 1 return x", "2");
}

/* Bytecode from a plain LuaJIT state (the sandbox has no string.dump). */
static size_t make_bytecode(char *out, size_t cap) {
  lua_State *P = luaL_newstate();
  luaL_openlibs(P);
  size_t n = 0;
  if (luaL_dostring(P, "return string.dump(function() return 'from bytecode' end)") == 0) {
    const char *bc = lua_tolstring(P, -1, &n);
    if (n > cap) n = 0;
    else memcpy(out, bc, n);
  }
  lua_close(P);
  return n;
}

static void test_loading(gw_lua_vm_t *vm) {
  /* loadstring/load of source work, and the chunk gets the sandbox env */
  CHECK_LUA(vm, "return loadstring('return 1 + 1')()", "2");
  CHECK_LUA(vm, "return load('return 40 + 2')()", "42");
  CHECK_LUA(vm, "return loadstring('return io')() == nil", "true");
  CHECK_LUA_RAISES(vm, "loadstring('leak = 1')()", "read-only");
  CHECK_LUA(vm, "local f, err = loadstring('return +') return f == nil and type(err)",
            "string");

  /* bytecode never loads: a real dump, and a forged header */
  char bc[4096];
  size_t bclen = make_bytecode(bc, sizeof bc);
  if (CHECK(bclen > 4 && memcmp(bc, "\033LJ", 3) == 0)) {
    result_t r = run_arg(vm, "local bc = ... local f, err = loadstring(bc) return tostring(f) .. '|' .. tostring(err)",
                         BUDGET, bc, bclen);
    CHECK(r.err == GW_LUA_ERR_NONE);
    CHECK(strncmp(r.out, "nil|", 4) == 0);
    CHECK_CONTAINS(r.out, "mode");
    r = run_arg(vm, "local f = load(...) return f == nil", BUDGET, bc, bclen);
    CHECK_STR(r.out, "true");

    /* a bytecode file is refused by gw_lua_vm_load_file too */
    char path[512];
    snprintf(path, sizeof path, "%s/bytecode.lua", g_tmp);
    write_file(path, bc, bclen);
    lua_State *L = vm->L;
    CHECK_EQ_INT(gw_lua_vm_load_file(L, path), 2);
    CHECK(lua_isnil(L, -2));
    CHECK_CONTAINS(lua_tostring(L, -1), "mode");
    lua_settop(L, 0);
  }
  CHECK_LUA(vm, "local f = loadstring('\\27LJ\\2\\0garbage') return f == nil", "true");

  /* load_file: a missing file and a syntax error give nil and a message with file:line */
  lua_State *L = vm->L;
  char missing[512];
  snprintf(missing, sizeof missing, "%s/nonexistent.lua", g_tmp);
  CHECK_EQ_INT(gw_lua_vm_load_file(L, missing), 2);
  CHECK(lua_isnil(L, -2));
  CHECK_CONTAINS(lua_tostring(L, -1), "nonexistent.lua: cannot open");
  lua_settop(L, 0);
  const char *bad = tmp_file("syntax.lua", "local a = 1\nlocal b = = 2\n");
  CHECK_EQ_INT(gw_lua_vm_load_file(L, bad), 2);
  CHECK(lua_isnil(L, -2));
  CHECK_CONTAINS(lua_tostring(L, -1), "syntax.lua:2:");
  lua_settop(L, 0);
}

static void test_budget(gw_lua_vm_t *vm) {
  result_t r = run_arg(vm, "while true do end", 1000000, NULL, 0);
  CHECK(r.loaded);
  CHECK_EQ_INT(r.err, GW_LUA_ERR_BUDGET);
  CHECK_CONTAINS(r.out, "instruction budget exceeded");
  CHECK_CONTAINS(r.out, ".lua:1: instruction budget"); /* names the looping line */
  /* the state is still usable, and the next call has a fresh budget */
  CHECK_LUA(vm, "return 6 * 7", "42");
  r = run_arg(vm, "local n = 0 for i = 1, 100000 do n = n + i end return n", 1000000, NULL, 0);
  CHECK_EQ_INT(r.err, GW_LUA_ERR_NONE);
  CHECK_STR(r.out, "5000050000");
  r = run_arg(vm, "local n = 0 for i = 1, 100000 do n = n + i end return n", 1000000, NULL, 0);
  CHECK_EQ_INT(r.err, GW_LUA_ERR_NONE);

  /* a recursive loop through function calls */
  r = run_arg(vm, "local function f(n) return f(n + 1) end return f(1)", 1000000, NULL, 0);
  CHECK_EQ_INT(r.err, GW_LUA_ERR_BUDGET);

  /* a pcall inside Lua cannot swallow the budget error: neither by retrying ... */
  r = run_arg(vm,
              "local n = 0\n"
              "while true do\n"
              "  pcall(function() while true do end end)\n"
              "  n = n + 1\n"
              "  if n > 1000 then return 'swallowed ' .. n .. ' budget errors' end\n"
              "end\n",
              1000000, NULL, 0);
  if (!CHECK_EQ_INT(r.err, GW_LUA_ERR_BUDGET)) fprintf(stderr, "  retry loop: %s\n", r.out);
  /* ... nor by catching once and returning at once */
  r = run_arg(vm,
              "local ok, err = pcall(function() while true do end end)\n"
              "return 'caught: ' .. tostring(err)\n",
              1000000, NULL, 0);
  if (!CHECK_EQ_INT(r.err, GW_LUA_ERR_BUDGET)) fprintf(stderr, "  catch once: %s\n", r.out);
  r = run_arg(vm,
              "local ok, err = xpcall(function() while true do end end, function(e) return e end)\n"
              "return 'caught: ' .. tostring(err)\n",
              1000000, NULL, 0);
  if (!CHECK_EQ_INT(r.err, GW_LUA_ERR_BUDGET)) fprintf(stderr, "  xpcall: %s\n", r.out);
  /* and after all that the state still works */
  CHECK_LUA(vm, "return 'alive'", "alive");

  /* budget 0: no limit */
  r = run_arg(vm, "local n = 0 for i = 1, 3000000 do n = n + 1 end return n", 0, NULL, 0);
  CHECK_EQ_INT(r.err, GW_LUA_ERR_NONE);
  CHECK_STR(r.out, "3000000");
}

static void test_memory(gw_lua_vm_t *vm) {
  size_t before = vm->mem_used;
  CHECK(before > 0 && before < 8u << 20);
  vm->mem_limit = 8u << 20;
  result_t r = run_arg(vm,
                       "local t = {}\n"
                       "for i = 1, 100000 do t[i] = string.rep('x', 4096) .. i end\n"
                       "return #t\n",
                       0, NULL, 0);
  CHECK(r.loaded);
  if (!CHECK_EQ_INT(r.err, GW_LUA_ERR_MEMORY)) fprintf(stderr, "  got: %s\n", r.out);
  CHECK(vm->mem_used <= vm->mem_limit);
  /* usable afterwards, memory given back */
  CHECK_LUA(vm, "return 'still here'", "still here");
  lua_gc(vm->L, LUA_GCCOLLECT, 0);
  CHECK(vm->mem_used < (4u << 20));
  /* one allocation larger than the cap */
  r = run_arg(vm, "return #string.rep('y', 16 * 1024 * 1024)", BUDGET, NULL, 0);
  CHECK_EQ_INT(r.err, GW_LUA_ERR_MEMORY);
  /* smaller work under the same cap is fine */
  CHECK_LUA(vm, "local t = {} for i = 1, 100 do t[i] = string.rep('x', 1024) end return #t",
            "100");
  vm->mem_limit = 0;
  CHECK_LUA(vm, "return #string.rep('y', 16 * 1024 * 1024)", "16777216");
  lua_gc(vm->L, LUA_GCCOLLECT, 0);
}

static void test_errors(gw_lua_vm_t *vm) {
  const char *path = tmp_file("boom.lua",
                              "local function inner()\n"
                              "  error('boom')\n"
                              "end\n"
                              "local function outer() inner() end\n"
                              "outer()\n");
  lua_State *L = vm->L;
  CHECK_EQ_INT(gw_lua_vm_load_file(L, path), 1);
  CHECK_EQ_INT(gw_lua_vm_call(vm, 0, 0, BUDGET), GW_LUA_ERR_RUN);
  const char *msg = lua_tostring(L, -1);
  CHECK_CONTAINS(msg, "boom.lua:2: boom"); /* where it was raised */
  CHECK_CONTAINS(msg, "stack traceback:");
  CHECK_CONTAINS(msg, "boom.lua:4"); /* and how it got there */
  CHECK_CONTAINS(msg, "boom.lua:5");
  CHECK_EQ_INT(lua_gettop(L), 1);
  lua_settop(L, 0);

  /* a run-time error of Lua itself */
  CHECK_LUA_RAISES(vm, "local t = nil\nreturn t.x", ":2: attempt to index");
  /* a non-string error value still gives a message */
  CHECK_LUA_RAISES(vm, "error({})", "error object is not a string");

  /* results and arguments pass through the call */
  CHECK_EQ_INT(gw_lua_vm_load_file(L, tmp_file("args.lua", "local a, b = ... return a + b, a * b")), 1);
  lua_pushnumber(L, 3);
  lua_pushnumber(L, 4);
  CHECK_EQ_INT(gw_lua_vm_call(vm, 2, 2, BUDGET), GW_LUA_ERR_NONE);
  CHECK_EQ_INT(lua_gettop(L), 2);
  CHECK_EQ_INT(lua_tointeger(L, 1), 7);
  CHECK_EQ_INT(lua_tointeger(L, 2), 12);
  lua_settop(L, 0);
}

static void test_require(gw_lua_vm_t *vm) {
  CHECK_LUA(vm,
            "local cjson = require 'cjson'\n"
            "local t = cjson.decode('{\"a\":[1,2,3],\"b\":\"x\\\\u00e9\",\"c\":{\"d\":true}}')\n"
            "return cjson.encode(t.a) .. t.b .. tostring(t.c.d)\n",
            "[1,2,3]x\xc3\xa9true");
  CHECK_LUA(vm,
            "local cjson = require 'cjson'\n"
            "local s = cjson.encode({k = 'v', n = 1.5, l = {1, 'two'}, q = 'a\"b'})\n"
            "local back = cjson.decode(s)\n"
            "return back.k .. back.n .. back.l[2] .. back.q .. #back.l\n",
            "v1.5twoa\"b2");
  CHECK_LUA(vm, "return require('cjson') == require('cjson')", "true"); /* cached */
  CHECK_LUA(vm, "return cjson == nil", "true"); /* no global leaks into the sandbox */

  /* the aivo runtime from lua_dir, and a module beside the policy */
  CHECK_LUA(vm, "return require('aivo.defaults').server.max_message_size", "1048576");
  tmp_file("mymod.lua", "return { v = 7 }");
  CHECK_LUA(vm, "return require('mymod').v", "7");
  tmp_file("sub/inner.lua", "return { w = 8 }");
  CHECK_LUA(vm, "return require('sub.inner').w", "8");
  /* a module runs in the sandbox too */
  tmp_file("evil.lua", "stolen = true return {}");
  CHECK_LUA_RAISES(vm, "require 'evil'", "read-only");
  /* a cycle is reported, not looped */
  tmp_file("cyc_a.lua", "return require 'cyc_b'");
  tmp_file("cyc_b.lua", "return require 'cyc_a'");
  CHECK_LUA_RAISES(vm, "require 'cyc_a'", "loop");
  tmp_file("cyc_c.lua", "return require 'cyc_d'");
  tmp_file("cyc_d.lua", "return require 'cyc_c'");
  CHECK_LUA_RAISES(vm, "return type(require 'cyc_c')", "loop"); /* never a raw pointer */
  CHECK_LUA_RAISES(vm, "require 'does_not_exist'", "module 'does_not_exist' not found");
}

/* gw_lua_json_encode's result is a (pointer, length) into the state's buffer, not a C string. */
static int json_is(const char *j, size_t len, const char *want) {
  return j && len == strlen(want) && memcmp(j, want, len) == 0;
}

#define CHECK_JSON(j, len, want)                                                  \
  do {                                                                            \
    if (!CHECK(json_is((j), (len), (want))))                                      \
      fprintf(stderr, "  got %.*s, want %s\n", (j) ? (int)(len) : 6,              \
              (j) ? (j) : "(null)", (want));                                      \
  } while (0)

/* Encodes the value a chunk returns. */
static const char *encode_of(gw_lua_vm_t *vm, const char *src, size_t *len) {
  lua_State *L = vm->L;
  lua_settop(L, 0);
  if (luaL_loadstring(L, src) || lua_pcall(L, 0, 1, 0)) return NULL;
  const char *j = gw_lua_json_encode(vm, -1, len);
  return j;
}

static void test_json_helpers(gw_lua_vm_t *vm) {
  lua_State *L = vm->L;
  lua_settop(L, 0);
  size_t len = 0;
  const char *j;

  /* a value from a policy chunk; key order is not defined, so decode it back */
  CHECK_EQ_INT(gw_lua_vm_load_file(L, tmp_file("val.lua", "return {a = {1, 2}, b = 'x'}")), 1);
  CHECK_EQ_INT(gw_lua_vm_call(vm, 0, 1, BUDGET), GW_LUA_ERR_NONE);
  j = gw_lua_json_encode(vm, -1, &len);
  if (CHECK(j != NULL)) {
    CHECK_EQ_INT(len, 19); /* {"a":[1,2],"b":"x"} */
    CHECK_EQ_INT(lua_gettop(L), 1); /* nothing left on the stack on success */
    CHECK_EQ_INT(gw_lua_json_decode(vm, j, len), 0);
    CHECK_EQ_INT(lua_gettop(L), 2);
    lua_getfield(L, -1, "b");
    CHECK_STR(lua_tostring(L, -1), "x");
    lua_pop(L, 1);
    lua_getfield(L, -1, "a");
    CHECK_EQ_INT(lua_objlen(L, -1), 2);
  }
  lua_settop(L, 0);

  /* scalars, escapes, arrays */
  j = encode_of(vm, "return 'q\"\\n'", &len);
  CHECK_JSON(j, len, "\"q\\\"\\n\"");
  j = encode_of(vm, "return {1, 'two', true, false}", &len);
  CHECK_JSON(j, len, "[1,\"two\",true,false]");
  j = encode_of(vm, "return {k = {}}", &len);
  CHECK_JSON(j, len, "{\"k\":{}}");
  j = encode_of(vm, "return 42", &len);
  CHECK_JSON(j, len, "42");
  /* numbers survive exactly (lua-cjson's 14 digits would not) */
  j = encode_of(vm, "return {0.1, 1/3, 2^53, -0.5, 1e300}", &len);
  CHECK_JSON(j, len, "[0.1,0.3333333333333333,9007199254740992,-0.5,1e+300]");
  /* a very sparse table is an object with number keys, not a refusal */
  j = encode_of(vm, "return {[1] = 1, [1000] = 2}", &len);
  CHECK(j != NULL);
  /* the buffer is reused: the next encode replaces the previous one */
  j = encode_of(vm, "return 'a'", &len);
  CHECK_JSON(j, len, "\"a\"");
  lua_settop(L, 0);

  /* values JSON cannot hold: NULL and a message on the stack */
  static const struct {
    const char *src, *msg;
  } bad_enc[] = {
      {"return print", "function"},
      {"return {f = print}", "function"},
      {"return 0/0", "NaN"},
      {"return 1/0", "infinity"},
      {"return '\\255\\254'", "UTF-8"},
      {"local t = {} t.self = t return t", "deep"},
      {"return {[{}] = 1}", "key"},
  };
  for (size_t i = 0; i < sizeof bad_enc / sizeof bad_enc[0]; i++) {
    j = encode_of(vm, bad_enc[i].src, &len);
    if (!CHECK(j == NULL)) fprintf(stderr, "  encoded: %s\n", bad_enc[i].src);
    CHECK_EQ_INT(lua_gettop(L), 2); /* the value and the message */
    CHECK_CONTAINS(lua_tostring(L, -1), bad_enc[i].msg);
    lua_settop(L, 0);
  }

  /* decode: a value, or -1 and a message */
  const char *arr = "[1,\"two\",null,{\"x\":false}]";
  CHECK_EQ_INT(gw_lua_json_decode(vm, arr, strlen(arr)), 0);
  CHECK_EQ_INT(lua_gettop(L), 1);
  CHECK(lua_istable(L, 1));
  lua_rawgeti(L, 1, 2);
  CHECK_STR(lua_tostring(L, -1), "two");
  lua_settop(L, 0);
  CHECK_EQ_INT(gw_lua_json_decode(vm, " 42 ", 4), 0);
  CHECK_EQ_INT(lua_tointeger(L, -1), 42);
  lua_settop(L, 0);
  /* numbers read back exactly, on both sides of the integer fast path (15 digits) and
   * through strtod: decode then encode gives the same text */
  static const char *const nums[] = {
      "[0,-0,7,-7,123456789012345,-123456789012345,999999999999999,1000000000000000]",
      "[9007199254740991,-9007199254740991,9007199254740992,12345678901234567890]",
      "[0.5,-0.25,1e+300,2.5e-8,100000000000000000000000]", NULL};
  static const char *const nums_back[] = {
      "[0,-0,7,-7,123456789012345,-123456789012345,999999999999999,1000000000000000]",
      "[9007199254740991,-9007199254740991,9007199254740992,1.2345678901234567e+19]",
      "[0.5,-0.25,1e+300,2.5e-08,1e+23]", NULL};
  for (int i = 0; nums[i]; i++) {
    CHECK_EQ_INT(gw_lua_json_decode(vm, nums[i], strlen(nums[i])), 0);
    j = gw_lua_json_encode(vm, -1, &len);
    CHECK_JSON(j, len, nums_back[i]);
    lua_settop(L, 0);
  }
  CHECK_EQ_INT(gw_lua_json_decode(vm, "-0", 2), 0);
  CHECK(lua_tonumber(L, -1) == 0 && signbit(lua_tonumber(L, -1)));
  lua_settop(L, 0);
  CHECK_EQ_INT(gw_lua_json_decode(vm, "123456789012345", 15), 0);
  CHECK(lua_tonumber(L, -1) == 123456789012345.0);
  lua_settop(L, 0);
  /* only len bytes are read */
  CHECK_EQ_INT(gw_lua_json_decode(vm, "[1]garbage", 3), 0);
  lua_settop(L, 0);
  /* [] decodes to an array that encodes back as [] */
  CHECK_EQ_INT(gw_lua_json_decode(vm, "{\"a\":[]}", 8), 0);
  j = gw_lua_json_encode(vm, -1, &len);
  CHECK_JSON(j, len, "{\"a\":[]}");
  lua_settop(L, 0);
  /* long strings: escapes and multi-byte characters at every offset of an 8-byte word read
   * back exactly */
  for (int at = 0; at < 20; at++) {
    char src[200], want[200];
    int n = 0, w = 0;
    src[n++] = '"';
    for (int i = 0; i < at; i++) src[n++] = want[w++] = 'a' + i;
    memcpy(src + n, "\\n\xc3\xa9\\u00e9\xe2\x82\xac", 13); /* \n é \u00e9 € */
    n += 13;
    memcpy(want + w, "\\n\xc3\xa9\xc3\xa9\xe2\x82\xac", 9);
    w += 9;
    for (int i = 0; i < 17; i++) src[n++] = want[w++] = 'z' - i;
    src[n++] = '"';
    want[w] = 0;
    CHECK_EQ_INT(gw_lua_json_decode(vm, src, (size_t)n), 0);
    j = gw_lua_json_encode(vm, -1, &len);
    char q[220];
    snprintf(q, sizeof q, "\"%s\"", want);
    CHECK_JSON(j, len, q);
    lua_settop(L, 0);
  }
  static const char *const bad[] = {"{bad", "[1,]", "", "[1] x", "\"unterminated",
                                    "\"\xff\"", "nul", "01", "[",
                                    /* invalid UTF-8 before an escape, or after one, in a long string */
                                    "\"\xff\\n\"", "\"abcdefghij\xc3\\n\"", "\"\\nabcdefghij\xe2\x82\"",
                                    "\"abcdefghijklmnop\xc0\xaf\"", NULL};
  for (const char *const *b = bad; *b; b++) {
    int rc = gw_lua_json_decode(vm, *b, strlen(*b));
    if (!CHECK_EQ_INT(rc, -1)) fprintf(stderr, "  decoded bad JSON '%s'\n", *b);
    CHECK(lua_isstring(L, -1));
    CHECK_EQ_INT(lua_gettop(L), 1);
    lua_settop(L, 0);
  }
  /* deep nesting is refused, not a C stack overflow */
  char deep[1000];
  memset(deep, '[', sizeof deep);
  CHECK_EQ_INT(gw_lua_json_decode(vm, deep, sizeof deep), -1);
  CHECK_CONTAINS(lua_tostring(L, -1), "deep");
  lua_settop(L, 0);

  /* the same codec for policies: require "aivo.json" */
  CHECK_LUA(vm,
            "local json = require 'aivo.json'\n"
            "local v = json.decode('{\"n\":0.1,\"l\":[],\"z\":null}')\n"
            "return json.encode(v.l) .. tostring(v.n) .. tostring(v.z == json.null)\n",
            "[]0.1true");
  CHECK_LUA(vm, "local v, err = require('aivo.json').decode('{') return tostring(v) .. ' ' .. type(err)",
            "nil string");
}

static void test_find_plugin(gw_lua_vm_t *vm) {
  lua_State *L = vm->L;
  char want[1200];
  snprintf(want, sizeof want, "%s/plugins/echo.lua", source_dir());
  CHECK_EQ_INT(gw_lua_vm_find_plugin(L, "echo"), 1);
  CHECK_STR(lua_tostring(L, -1), want);
  lua_settop(L, 0);

  /* the policy's plugins/ folder, then the policy's folder, come before the shipped plugins */
  tmp_file("plugins/mine.lua", "return {}");
  CHECK_EQ_INT(gw_lua_vm_find_plugin(L, "mine"), 1);
  snprintf(want, sizeof want, "%s/plugins/mine.lua", g_tmp);
  CHECK_STR(lua_tostring(L, -1), want);
  lua_settop(L, 0);
  tmp_file("pkg/init.lua", "return {}");
  CHECK_EQ_INT(gw_lua_vm_find_plugin(L, "pkg"), 1);
  snprintf(want, sizeof want, "%s/pkg/init.lua", g_tmp);
  CHECK_STR(lua_tostring(L, -1), want);
  lua_settop(L, 0);
  tmp_file("echo.lua", "return {}");
  CHECK_EQ_INT(gw_lua_vm_find_plugin(L, "echo"), 1);
  snprintf(want, sizeof want, "%s/echo.lua", g_tmp);
  CHECK_STR(lua_tostring(L, -1), want);
  lua_settop(L, 0);

  /* a missing plugin: nil and every folder searched */
  CHECK_EQ_INT(gw_lua_vm_find_plugin(L, "nosuch"), 2);
  CHECK(lua_isnil(L, -2));
  const char *msg = lua_tostring(L, -1);
  CHECK_CONTAINS(msg, "plugin 'nosuch' not found");
  CHECK_CONTAINS(msg, g_tmp);
  snprintf(want, sizeof want, "%s/plugins", g_tmp);
  CHECK_CONTAINS(msg, want);
  snprintf(want, sizeof want, "%s/plugins", source_dir());
  CHECK_CONTAINS(msg, want);
  lua_settop(L, 0);

  /* names that could leave the plugin folders are refused before any lookup */
  static const char *const bad[] = {"a/b", "..", "../echo", "plugins/../echo", "/etc/passwd",
                                    "x..y", "", NULL};
  for (const char *const *b = bad; *b; b++) {
    CHECK_EQ_INT(gw_lua_vm_find_plugin(L, *b), 2);
    CHECK(lua_isnil(L, -2));
    CHECK_CONTAINS(lua_tostring(L, -1), "bad plugin name");
    lua_settop(L, 0);
  }
}


static char *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  static char buf[1 << 16];
  *len = fread(buf, 1, sizeof buf - 1, f);
  buf[*len] = 0;
  fclose(f);
  return buf;
}

/* The bounded matcher (core/policy/lua_pattern.c) against LuaJIT's own string library: the same
 * table of cases runs in a plain state and in the sandbox; every line must agree. */
static void test_pattern_matcher(gw_lua_vm_t *vm) {
  char path[1024];
  snprintf(path, sizeof path, "%s/tests/unit/lua_pattern_cases.lua", source_dir());
  size_t len;
  char *src = read_all(path, &len);
  if (!CHECK(src != NULL)) return;
  lua_State *stock = luaL_newstate();
  luaL_openlibs(stock);
  if (!CHECK(luaL_loadbuffer(stock, src, len, "=cases") == 0 && lua_pcall(stock, 0, 1, 0) == 0)) {
    fprintf(stderr, "  stock: %s\n", lua_tostring(stock, -1));
    lua_close(stock);
    return;
  }
  const char *want = lua_tostring(stock, -1);
  result_t r = run(vm, src);
  if (!CHECK(r.loaded && r.err == GW_LUA_ERR_NONE)) fprintf(stderr, "  sandbox: %s\n", r.out);
  else {
    /* r.out holds at most 4 KB: compare the full text through a second run */
    lua_State *L = vm->L;
    const char *p = tmp_file("cases.lua", src);
    CHECK_EQ_INT(gw_lua_vm_load_file(L, p), 1);
    CHECK_EQ_INT(gw_lua_vm_call(vm, 0, 1, BUDGET), GW_LUA_ERR_NONE);
    const char *got = lua_tostring(L, -1);
    int lines = 0, diffs = 0;
    const char *a = want, *b = got ? got : "";
    while (*a || *b) {
      const char *ea = strchr(a, '\n'), *eb = strchr(b, '\n');
      size_t la = ea ? (size_t)(ea - a) : strlen(a), lb = eb ? (size_t)(eb - b) : strlen(b);
      lines++;
      if (la != lb || memcmp(a, b, la) != 0) {
        if (diffs++ < 20) fprintf(stderr, "  stock:   %.*s\n  sandbox: %.*s\n", (int)la, a, (int)lb, b);
      }
      a = ea ? ea + 1 : a + la;
      b = eb ? eb + 1 : b + lb;
    }
    CHECK(lines > 800);
    CHECK_EQ_INT(diffs, 0);
    lua_settop(L, 0);
  }
  lua_close(stock);
}

/* A catastrophic pattern in C ends with the budget error, as a Lua loop does, and fast;
 * the wall clock stops it too when the budget is off; pcall in the policy cannot keep it. */
static void test_pattern_budget(gw_lua_vm_t *vm) {
  static const char *const slow[] = {
      "return string.rep('a', 600):find('.-.-.-b')",
      "return string.rep('a', 900):match('.-.-.-.-b')",
      "local n = 0 for _ in string.rep('a', 600):gmatch('.-.-.-b') do n = n + 1 end return n",
      "return (string.gsub(string.rep('a', 600), '.-.-.-b', 'x'))",
      "return string.rep('a', 300):find('a*a*a*a*b')",
      "local ok = pcall(string.find, string.rep('a', 600), '.-.-.-b') return 'swallowed'",
      NULL};
  for (const char *const *c = slow; *c; c++) {
    uint64_t t0 = gw_lua_vm_now_ns();
    result_t r = run_arg(vm, *c, BUDGET, NULL, 0);
    double ms = (gw_lua_vm_now_ns() - t0) / 1e6;
    if (!CHECK(r.err == GW_LUA_ERR_BUDGET)) fprintf(stderr, "  chunk: %s\n  got %d: %s\n", *c, r.err, r.out);
    CHECK_CONTAINS(r.out, "instruction budget exceeded");
    if (!CHECK(ms < 1500)) fprintf(stderr, "  chunk: %s took %.0f ms\n", *c, ms);
  }
  /* no instruction budget (0): the wall clock of the call still ends it */
  vm->call_timeout_ms = 100;
  uint64_t t0 = gw_lua_vm_now_ns();
  result_t r = run_arg(vm, "return string.rep('a', 600):find('.-.-.-b')", 0, NULL, 0);
  double ms = (gw_lua_vm_now_ns() - t0) / 1e6;
  CHECK_EQ_INT(r.err, GW_LUA_ERR_BUDGET);
  CHECK_CONTAINS(r.out, "time limit exceeded (100 ms)");
  if (!CHECK(ms < 1000)) fprintf(stderr, "  took %.0f ms\n", ms);
  /* and a plain Lua loop with no budget */
  r = run_arg(vm, "while true do end", 0, NULL, 0);
  CHECK_EQ_INT(r.err, GW_LUA_ERR_BUDGET);
  CHECK_CONTAINS(r.out, "time limit exceeded");
  vm->call_timeout_ms = 0;
  /* C functions that build big strings are bounded by the memory cap (or, for gsub, the
   * budget first), in time too */
  size_t old_limit = vm->mem_limit;
  vm->mem_limit = 64u << 20;
  static const char *const big[] = {
      "return #string.rep('x', 1e9)",
      "return #string.rep('abc', 1e8, ',')",
      "local t = {} for i = 1, 100 do t[i] = string.rep('x', 1e6) .. i end return #table.concat(t)",
      "return #(string.rep('ab', 1e6):gsub('.', string.rep('y', 100)))",
      "return #string.format('%s%s', string.rep('x', 4e7), string.rep('y', 4e7))",
      NULL};
  for (const char *const *c = big; *c; c++) {
    uint64_t b0 = gw_lua_vm_now_ns();
    result_t rb = run_arg(vm, *c, BUDGET, NULL, 0);
    double bms = (gw_lua_vm_now_ns() - b0) / 1e6;
    if (!CHECK(rb.err == GW_LUA_ERR_MEMORY || rb.err == GW_LUA_ERR_BUDGET)) fprintf(stderr, "  chunk: %s\n  got %d: %s\n", *c, rb.err, rb.out);
    if (!CHECK(bms < 2000)) fprintf(stderr, "  chunk: %s took %.0f ms\n", *c, bms);
  }
  vm->mem_limit = old_limit;
  /* the state is usable afterwards: matching works, within the budget */
  CHECK_LUA(vm, "return ('key = value'):match('(%w+)%s*=%s*(%w+)')", "key");
  /* a plain search is linear (memmem), not quadratic: a long needle of 'a's in 'a's */
  CHECK_LUA(vm, "local s = string.rep('a', 4000000) return s:find(string.rep('a', 2000000) .. 'b', 1, true) == nil",
            "true");
}

/* Shared modules and the string metatable are read-only to policy code; an attempt
 * leaves them working for everyone. */
static void test_shared_readonly(gw_lua_vm_t *vm) {
  static const char *const writes[] = {
      "string.find = function() return 1 end",
      "string.upper = nil",
      "string.newfield = 1",
      "table.insert = nil",
      "math.floor = function() return 0 end",
      "os.time = function() return 0 end",
      "bit.band = nil",
      "getmetatable('').__index = {}",
      "getmetatable('').__index.upper = function() return 'pwned' end",
      "getmetatable('').__index.find = nil",
      "rawset(string, 'upper', function() return 'pwned' end)",
      "rawset(getmetatable(''), '__index', {})",
      NULL};
  for (const char *const *w = writes; *w; w++) CHECK_LUA_RAISES(vm, *w, "read-only");
  CHECK_LUA_RAISES(vm, "setmetatable(string, {})", "protected metatable");
  CHECK_LUA_RAISES(vm, "setmetatable(getmetatable(''), {})", "protected metatable");
  CHECK_LUA(vm, "return ('abc'):upper() .. string.upper('d') .. tostring(('abc'):find('b'))", "ABCD2");
  CHECK_LUA(vm, "return type(getmetatable('').__index.format)", "function");
  CHECK_LUA(vm, "return math.floor(2.5) + #table.concat({'a', 'b'})", "4");
}

/* aivo.core's getenv never hands out a secret. */
static void test_getenv(gw_lua_vm_t *vm) {
  setenv("AIVO_ADMIN_TOKEN", "admintok", 1);
  setenv("ADMIN_TOKEN", "admintok", 1);
  setenv("JWT_SECRET", "jwtsecret", 1);
  setenv("AIVO_REDIS_PASSWORD", "pw", 1);
  setenv("AIVO_MYPLUGIN_API_KEY", "k", 1);
  setenv("AIVO_DEV_SECRET_FILE", "/x", 1);
  setenv("AIVO_SOCKETIO_TOKEN_FIELD", "jwt", 1);
  setenv("AIVO_RATELIMIT_PER_MINUTE", "500", 1);
  static const char *const hidden[] = {"AIVO_ADMIN_TOKEN", "ADMIN_TOKEN", "JWT_SECRET", "AIVO_REDIS_PASSWORD",
                                       "AIVO_MYPLUGIN_API_KEY", "AIVO_DEV_SECRET_FILE", "HOME", NULL};
  for (const char *const *h = hidden; *h; h++) {
    char src[160];
    snprintf(src, sizeof src, "return tostring(require('aivo.core').getenv('%s'))", *h);
    CHECK_LUA(vm, src, "nil");
  }
  CHECK_LUA(vm, "return require('aivo.core').getenv('AIVO_SOCKETIO_TOKEN_FIELD')", "jwt");
  CHECK_LUA(vm, "return require('aivo.core').getenv('AIVO_RATELIMIT_PER_MINUTE')", "500");
  CHECK_LUA(vm, "return select(2, require('aivo.core').getenv('AIVO_ADMIN_TOKEN'))", "secret");
  unsetenv("AIVO_ADMIN_TOKEN");
  unsetenv("ADMIN_TOKEN");
  unsetenv("JWT_SECRET");
  unsetenv("AIVO_REDIS_PASSWORD");
  unsetenv("AIVO_MYPLUGIN_API_KEY");
  unsetenv("AIVO_DEV_SECRET_FILE");
  unsetenv("AIVO_SOCKETIO_TOKEN_FIELD");
  unsetenv("AIVO_RATELIMIT_PER_MINUTE");
}

/* load_file and key_line read only under the policy, runtime and plugin folders: a file
 * elsewhere (directly, by "..", or through a symlink) is refused unread. */
static void test_file_confinement(gw_lua_vm_t *vm) {
  char outside[64] = "/tmp/aivo-unit-out-XXXXXX";
  if (!CHECK(mkdtemp(outside) != NULL)) return;
  char secret[128], link[600], src[1024];
  snprintf(secret, sizeof secret, "%s/secret.lua", outside);
  const char *body = "TOPSECRETVALUE = = 1\n";
  write_file(secret, body, strlen(body));
  snprintf(link, sizeof link, "%s/escape.lua", g_tmp);
  unlink(link);
  CHECK_EQ_INT(symlink(secret, link), 0);
  const char *paths[] = {secret, link, "/etc/passwd", NULL};
  char dotdot[600];
  snprintf(dotdot, sizeof dotdot, "%s/../%s/secret.lua", g_tmp, outside + 5);
  paths[3] = dotdot;
  for (int i = 0; i < 4; i++) {
    snprintf(src, sizeof src,
             "local f, err = require('aivo.core').load_file('%s') return tostring(f) .. ' ' .. err", paths[i]);
    result_t r = run(vm, src);
    CHECK(r.err == GW_LUA_ERR_NONE);
    CHECK_CONTAINS(r.out, "nil ");
    CHECK_CONTAINS(r.out, "refused");
    if (!CHECK(strstr(r.out, "TOPSECRET") == NULL && strstr(r.out, "root:") == NULL))
      fprintf(stderr, "  leaked: %s\n", r.out);
    snprintf(src, sizeof src, "return tostring((require('aivo.core').key_line('%s', 'TOPSECRETVALUE')))", paths[i]);
    CHECK_LUA(vm, src, "nil");
  }
  /* inside the policy folder: loads, and a syntax error names file:line */
  tmp_file("inside.lua", "return 42\n");
  snprintf(src, sizeof src, "return require('aivo.core').load_file('%s/inside.lua')()", g_tmp);
  CHECK_LUA(vm, src, "42");
  unlink(link);
  unlink(secret);
  rmdir(outside);
}

/* After a load the shared module tables are frozen in place. */
static void test_frozen_modules(gw_lua_vm_t *vm) {
  CHECK_LUA(vm, "require('aivo') return 'ok'", "ok");
  gw_lua_vm_freeze_modules(vm);
  static const char *const writes[] = {
      "require('aivo').publish = function() end",
      "require('aivo').log.info = function() end",
      "require('aivo').metrics.counter = nil",
      "require('aivo.core').getenv = function() return 'x' end",
      "require('aivo.core').emit = nil",
      "rawset(require('aivo'), 'publish', print)",
      "require('aivo.json').encode = nil",
      NULL};
  for (const char *const *w = writes; *w; w++) CHECK_LUA_RAISES(vm, *w, "read-only");
  CHECK_LUA(vm, "return type(require('aivo').publish) .. type(require('aivo').log.info)", "functionfunction");
  CHECK_LUA(vm, "return tostring(getmetatable(require('aivo')))", "false");
  CHECK_LUA(vm, "return tostring(getmetatable(require('aivo').DONE))", "false");
}

int main(void) {
  snprintf(g_tmp, sizeof g_tmp, "/tmp/aivo-unit-XXXXXX");
  if (!mkdtemp(g_tmp)) {
    perror("mkdtemp");
    return 2;
  }
  snprintf(g_src, sizeof g_src, "%s/lua", source_dir());

  gw_lua_vm_t *vm = new_vm();
  CHECK(vm->L != NULL);
  CHECK(gw_lua_vm_of(vm->L) == vm);
  test_sandbox(vm);
  test_readonly_globals(vm);
  test_loading(vm);
  test_budget(vm);
  test_memory(vm);
  test_errors(vm);
  test_require(vm);
  test_json_helpers(vm);
  test_find_plugin(vm);
  test_pattern_matcher(vm);
  test_pattern_budget(vm);
  test_shared_readonly(vm);
  test_getenv(vm);
  test_file_confinement(vm);
  test_frozen_modules(vm); /* last: it freezes the modules of this state */
  CHECK_EQ_INT(lua_gettop(vm->L), 0);
  gw_lua_vm_free(vm);

  /* a state with no policy folder and no plugin folders still answers */
  gw_lua_paths_t bare = {g_src, NULL, NULL, gw_lua_api_open, gw_lua_pattern_install};
  char err[256];
  gw_lua_vm_t *v2 = gw_lua_vm_new(&bare, err, sizeof err);
  if (CHECK(v2 != NULL)) {
    CHECK_EQ_INT(gw_lua_vm_find_plugin(v2->L, "echo"), 2);
    CHECK_CONTAINS(lua_tostring(v2->L, -1), "not found");
    lua_settop(v2->L, 0);
    gw_lua_vm_free(v2);
  }

  rm_rf(g_tmp);
  return check_done();
}
