/* Fuzz target: the JSON codec of the message path (core/policy/json_lua.c, core/base/json.c).
 * Any text either fails to decode with a message, or decodes to a value that encodes, and
 * whose encoding decodes again to an equal value that encodes to as many bytes (key order
 * may differ: Lua tables have none). The C escaper is checked on the same bytes. */
#include <math.h>
#include <string.h>

#include "fuzz_common.h"
#include "json.h"
#include "json_lua.h"

/* Deep equality of two decoded values (tables: same keys, equal values, same kind). */
static int equal(lua_State *L, int a, int b, int depth) {
  if (depth > GW_JSON_MAX_DEPTH + 2) return 0;
  int ta = lua_type(L, a), tb = lua_type(L, b);
  if (ta != tb) return 0;
  if (ta == LUA_TNUMBER) {
    double x = lua_tonumber(L, a), y = lua_tonumber(L, b);
    return x == y && signbit(x) == signbit(y);
  }
  if (ta != LUA_TTABLE) return lua_rawequal(L, a, b);
  if (!lua_checkstack(L, 8)) return 0;
  /* same marker metatable (array vs object) */
  int ma = lua_getmetatable(L, a), mb = lua_getmetatable(L, b);
  int same_mt = ma == mb && (!ma || lua_rawequal(L, -1, -2));
  lua_pop(L, ma + mb);
  if (!same_mt) return 0;
  size_t na = 0, nb = 0;
  lua_pushnil(L);
  while (lua_next(L, a)) {
    na++;
    lua_pushvalue(L, -2);
    lua_rawget(L, b);
    int ok = equal(L, lua_gettop(L) - 1, lua_gettop(L), depth + 1);
    lua_pop(L, 2);
    if (!ok) {
      lua_pop(L, 1);
      return 0;
    }
  }
  lua_pushnil(L);
  while (lua_next(L, b)) {
    nb++;
    lua_pop(L, 1);
  }
  return na == nb;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  gw_lua_vm_t *vm = fuzz_vm();
  lua_State *L = vm->L;
  const char *s = (const char *)data;

  /* the C escaper: never past cap, always NUL-terminated, plain runs really plain */
  char esc[GW_JSON_ESCAPED_MAX(256)];
  size_t n = size < 256 ? size : 256;
  size_t elen = gw_json_escape(s, n, esc, sizeof esc);
  FUZZ_ASSERT(elen < sizeof esc && esc[elen] == 0, "escape overran its buffer");
  size_t run = gw_json_plain_run(s, size);
  FUZZ_ASSERT(run <= size, "plain run longer than the input");
  for (size_t i = 0; i < run; i++)
    FUZZ_ASSERT(s[i] != '"' && s[i] != '\\' && (unsigned char)s[i] >= 0x20, "plain run holds a special byte");

  if (gw_lua_json_decode(vm, s, size)) {
    FUZZ_ASSERT(lua_type(L, -1) == LUA_TSTRING, "a decode error without a message");
    lua_settop(L, 0);
    return 0;
  }
  int v1 = lua_gettop(L);
  size_t len1 = 0;
  const char *e1 = gw_lua_json_encode(vm, v1, &len1);
  FUZZ_ASSERT(e1 != NULL, "a decoded value does not encode");
  lua_pushlstring(L, e1, len1); /* the encode buffer is reused below */
  int enc1 = lua_gettop(L);

  FUZZ_ASSERT(gw_lua_json_decode(vm, lua_tostring(L, enc1), len1) == 0, "the encoder's output does not decode");
  int v2 = lua_gettop(L);
  FUZZ_ASSERT(equal(L, v1, v2, 0), "decode(encode(v)) differs from v");
  size_t len2 = 0;
  const char *e2 = gw_lua_json_encode(vm, v2, &len2);
  FUZZ_ASSERT(e2 != NULL, "a re-decoded value does not encode");
  FUZZ_ASSERT(len2 == len1, "encode(decode(encode(v))) differs in length from encode(v)");
  lua_settop(L, 0);
  return 0;
}
