/* `aivo.core`: the C functions policy code calls, and the `conn` object. Every function
 * takes connection ids and looks them up, so a stale handle answers nil, "closed". */
#ifndef GW_LUA_API_H
#define GW_LUA_API_H

#include <stdint.h>

#include <luajit-2.1/lua.h>

#include "conn.h"

int gw_lua_api_open(lua_State *L);
/* Pushes the state's object for connection c (created once per state and reused). */
void gw_lua_push_conn(lua_State *L, const gw_conn_t *c);
/* Drops the state's object for a connection that is gone. */
void gw_lua_forget_conn(lua_State *L, uint64_t id);
/* Pushes the connection's quality report as a table {quality, latency, jitter, packetLoss,
 * stability}: what conn.quality_info and the connection:quality event carry. */
void gw_lua_push_quality(lua_State *L, const gw_conn_t *c);

#endif
