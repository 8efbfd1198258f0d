/* A sandboxed LuaJIT state for one policy generation: a counting allocator with a cap, an
 * instruction budget per call (count hook), source-only loading, read-only globals and a
 * require that searches only the gateway's Lua folders. */
#ifndef GW_LUA_VM_H
#define GW_LUA_VM_H

#include <stddef.h>
#include <stdint.h>

#include <luajit-2.1/lua.h>

#include "json_lua.h"

typedef struct gw_lua_paths {
  const char *lua_dir;     /* the aivo runtime (lua/) */
  const char *policy_dir;  /* folder of the policy file */
  const char *const *plugin_dirs; /* NULL-terminated */
  /* given by the caller (policy.c), so the VM does not include the modules built on it:
   * require("aivo.core")'s opener (lua_api.c) and the installer of the bounded
   * find/match/gmatch/gsub into the string table (lua_pattern.c); NULL: none */
  lua_CFunction core_module;
  void (*string_install)(lua_State *L, int string_table_idx);
} gw_lua_paths_t;

typedef enum { GW_LUA_ERR_NONE = 0, GW_LUA_ERR_RUN, GW_LUA_ERR_BUDGET, GW_LUA_ERR_MEMORY } gw_lua_err_t;

typedef struct gw_lua_vm {
  lua_State *L;
  size_t mem_used, mem_limit;
  lua_Alloc base_alloc; /* LuaJIT's own allocator, under the counting one */
  void *base_ud;
  uint64_t budget, counted;
  /* wall clock: every call gets now + call_timeout_ms (0: none) unless a load has fixed
   * load_deadline_ns for all of its calls; checked by the count hook and by the bounded
   * string matcher (lua_pattern.c), so it holds inside C functions that match patterns */
  uint64_t call_timeout_ms, deadline_ns, load_deadline_ns;
  int over_budget, over_memory, over_time;
  char limit_msg[512]; /* the last budget/time error, kept for when a pcall swallowed it */
  int env_ref;       /* the read-only global environment of policy code */
  int loaded_ref;    /* require's cache */
  lua_CFunction core_module;                  /* gw_lua_paths_t's */
  void (*string_install)(lua_State *L, int idx);
  int conns_ref;     /* id -> conn userdata, so a connection has one object per state */
  int traceback_ref; /* the message handler of every call: made once, not per call */
  int decode_ref;    /* the protected JSON decoder (gw_lua_json_decode): made once */
  gw_strbuf_t enc_buf, dec_scratch; /* reused by every encode/decode: no per-message malloc */
  char *lua_dir, *policy_dir;
  char **plugin_dirs;
  char *policy_file;
  /* real folders of every plugin and module file found for this state, NULL-terminated:
   * what the gateway watches for edits (watch.c) */
  char **loaded_dirs;
  size_t n_loaded_dirs;
  char **roots; /* real paths of the folders above: the only files load_file reads */
} gw_lua_vm_t;

gw_lua_vm_t *gw_lua_vm_new(const gw_lua_paths_t *paths, char *err, size_t errlen);
void gw_lua_vm_free(gw_lua_vm_t *vm);
gw_lua_vm_t *gw_lua_vm_of(lua_State *L);
void gw_lua_vm_set_jit(gw_lua_vm_t *vm, int on);

/* Calls the function below nargs arguments under pcall with a traceback, the instruction
 * budget reset to `budget`. On error, returns the kind and leaves the message (with
 * traceback) on the stack instead of the results. */
gw_lua_err_t gw_lua_vm_call(gw_lua_vm_t *vm, int nargs, int nresults, uint64_t budget);

/* Charges `steps` units of C work (pattern matching) to the running call's instruction
 * budget and checks its deadline: raises the same budget error as the count hook. */
void gw_lua_vm_charge(lua_State *L, uint64_t steps);
/* Monotonic clock in ns (coarse: a few ms resolution, cheap enough for every check). */
uint64_t gw_lua_vm_now_ns(void);

/* Makes the module tables policy code shares (aivo, aivo.core, aivo.json, cjson, ...)
 * read-only in place, once the load has finished setting them up. */
void gw_lua_vm_freeze_modules(gw_lua_vm_t *vm);

/* Compiles a source file with the sandbox env; pushes the function, or nil and a message.
 * Only files under the runtime, policy and plugin folders (real paths, so no symlink leads
 * out) are read; anything else is refused before it is opened. */
int gw_lua_vm_load_file(lua_State *L, const char *path);
/* 1 when path (resolved with realpath) lies under one of the state's folders. */
int gw_lua_vm_path_allowed(const gw_lua_vm_t *vm, const char *path);
/* Pushes the path of plugin `name`, or nil and a message listing the folders searched.
 * The policy file itself is skipped: policies/chat.lua listing plugin "chat" never loads
 * itself as that plugin. */
int gw_lua_vm_find_plugin(lua_State *L, const char *name);
/* The policy's real path: find_plugin never resolves a plugin to it. 0 or GW_ENOMEM. */
int gw_lua_vm_set_policy_file(gw_lua_vm_t *vm, const char *real_path);
/* The folders plugins and modules were loaded from so far (NULL-terminated, never NULL). */
const char *const *gw_lua_vm_loaded_dirs(const gw_lua_vm_t *vm);

/* JSON for the message path (json_lua.c). encode: the value at idx -> a pointer into the
 * state's encode buffer, valid until the next encode (NULL + message pushed on failure). */
const char *gw_lua_json_encode(gw_lua_vm_t *vm, int idx, size_t *len);
/* decode: pushes the value (returns 0) or an error message (returns -1). */
int gw_lua_json_decode(gw_lua_vm_t *vm, const char *s, size_t len);

#endif
