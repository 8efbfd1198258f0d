/* string.find/match/gmatch/gsub for the policy sandbox with a Lua-pattern matcher that
 * counts its steps. LuaJIT's own matcher runs in C where the instruction-count hook never
 * fires: ("a"):rep(600):find(".-.-.-b") blocked the event loop 33 s. This one charges its
 * steps to the running call's instruction budget and checks the call's deadline
 * (gw_lua_vm_charge), so a catastrophic pattern ends with the same budget error as a
 * runaway Lua loop. Same semantics as LuaJIT 2.1's (Lua 5.1) patterns. */
#ifndef GW_LUA_PATTERN_H
#define GW_LUA_PATTERN_H

#include <luajit-2.1/lua.h>

/* Replaces find, match, gmatch and gsub in the string table at idx. */
void gw_lua_pattern_install(lua_State *L, int idx);

#endif
