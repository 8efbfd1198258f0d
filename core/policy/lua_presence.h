/* The policy's view of presence across gateways (docs/policy-api.md, gw.presence): the core
 * function `presence(room, fn[, limit])`, whose callback runs from the loop once the node
 * (node.h) has the answer. */
#ifndef GW_LUA_PRESENCE_H
#define GW_LUA_PRESENCE_H

#include <luajit-2.1/lua.h>

/* Sets `presence` in the table on top of the stack (the core module). */
void gw_lua_presence_register(lua_State *L);
/* A generation's VM is being freed: its pending callbacks are dropped. */
void gw_lua_presence_forget(lua_State *L);

#endif
