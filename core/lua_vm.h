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
} gw_lua_paths_t;

typedef enum { GW_LUA_ERR_NONE = 0, GW_LUA_ERR_RUN, GW_LUA_ERR_BUDGET, GW_LUA_ERR_MEMORY } gw_lua_err_t;

typedef struct gw_lua_vm {
  lua_State *L;
  size_t mem_used, mem_limit;
  lua_Alloc base_alloc; /* LuaJIT's own allocator, under the counting one */
  void *base_ud;
  uint64_t budget, counted;
  int over_budget, over_memory;
  int env_ref;       /* the read-only global environment of policy code */
  int loaded_ref;    /* require's cache */
  int conns_ref;     /* id -> conn userdata, so a connection has one object per state */
  int traceback_ref; /* the message handler of every call: made once, not per call */
  gw_strbuf_t enc_buf, dec_scratch; /* reused by every encode/decode: no per-message malloc */
  char *lua_dir, *policy_dir;
  char **plugin_dirs;
  char *policy_file;
  /* real folders of every plugin and module file found for this state, NULL-terminated:
   * what the gateway watches for edits (watch.c) */
  char **loaded_dirs;
  size_t n_loaded_dirs;
} gw_lua_vm_t;

gw_lua_vm_t *gw_lua_vm_new(const gw_lua_paths_t *paths, char *err, size_t errlen);
void gw_lua_vm_free(gw_lua_vm_t *vm);
gw_lua_vm_t *gw_lua_vm_of(lua_State *L);
void gw_lua_vm_set_jit(gw_lua_vm_t *vm, int on);

/* Calls the function below nargs arguments under pcall with a traceback, the instruction
 * budget reset to `budget`. On error, returns the kind and leaves the message (with
 * traceback) on the stack instead of the results. */
gw_lua_err_t gw_lua_vm_call(gw_lua_vm_t *vm, int nargs, int nresults, uint64_t budget);

/* Compiles a source file with the sandbox env; pushes the function, or nil and a message. */
int gw_lua_vm_load_file(lua_State *L, const char *path);
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
