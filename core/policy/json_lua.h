/* JSON <-> Lua values for the message path. Debian's lua-cjson 2.1.0 rounds numbers to 14
 * digits and turns [] into {}, which would alter clients' payloads on echo, so the core has
 * its own codec: numbers round-trip exactly (shortest form that reads back the same),
 * decoded arrays carry a marker metatable so an empty array stays an array, strings must be
 * valid UTF-8 (a text frame must be). Also `require "aivo.json"` for policies. */
#ifndef GW_JSON_LUA_H
#define GW_JSON_LUA_H

#include <stddef.h>

#include <luajit-2.1/lua.h>

#include "strbuf.h"

#define GW_JSON_MAX_DEPTH 200

/* Pushes the decoded value; on error pushes a message and returns -1. */
int gw_json_lua_decode(lua_State *L, const char *s, size_t len, gw_strbuf_t *scratch);
/* Encodes the value at idx into out (reset first). On error pushes a message, returns -1. */
int gw_json_lua_encode(lua_State *L, int idx, gw_strbuf_t *out);

/* Binary values and argument lists, for Socket.IO (docs/socketio.md):
 * - a binary value is a table made by gw.binary(bytes) (the bytes at [1]), or a string put
 *   in the state's binary set by gw_json_lua_binset_add() (a Socket.IO attachment, while its
 *   message is handled). It is encoded as {"_binary":"<base64>"}, which the Socket.IO
 *   encoder turns back into an attachment;
 * - an argument list is a table made by gw.args(...): an array, which at the top level is
 *   encoded with one leading space (" [...]"); the Socket.IO encoder spreads such a list
 *   into separate arguments, every other reader sees a plain JSON array. */
int gw_json_is_args(const char *json, size_t len);
/* Pushes the argument-list metatable. */
void gw_json_lua_push_args_mt(lua_State *L);
void gw_json_lua_binset_add(lua_State *L, int idx);
void gw_json_lua_binset_clear(lua_State *L);

/* Creates the marker metatables and the binary set in the registry (once per state). */
void gw_json_lua_setup(lua_State *L);
/* The `aivo.json` module: encode, decode, null, array_mt, empty_array, args, binary. */
int gw_json_lua_open(lua_State *L);

#endif
