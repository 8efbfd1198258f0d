/* Fuzz target: the native /ws protocol's inbound envelope (core/proto/proto_native.c), from a text
 * frame's bytes to what the gateway would answer, without a connection: JSON decode into the
 * policy's Lua state, the envelope check (object, "id", "event"), then the replies the path
 * builds (the ack with the data encoded again, the error ack or event with the reason, the
 * event echoed with its escaped name). Any input gets an answer or a reason; nothing crashes,
 * every reply is one JSON object. */
#include <stdio.h>
#include <string.h>

#include "fuzz_common.h"
#include "msgbuf.h"
#include "proto_native.h"

/* A reply must at least look like a JSON object (the codec's own target checks JSON). */
static void check_reply(gw_msgbuf_t *b) {
  FUZZ_ASSERT(b != NULL, "no reply built");
  const unsigned char *p = gw_msgbuf_payload(b);
  FUZZ_ASSERT(b->len >= 2 && p[0] == '{' && p[b->len - 1] == '}', "a reply is not a JSON object");
  FUZZ_ASSERT(memchr(p, 0, b->len) == NULL, "a reply holds a NUL byte");
  gw_msgbuf_unref(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  gw_lua_vm_t *vm = fuzz_vm();
  lua_State *L = vm->L;
  int has_id = 0;
  uint64_t id = 0;
  if (gw_lua_json_decode(vm, (const char *)data, size)) {
    char msg[300];
    snprintf(msg, sizeof msg, "invalid JSON: %s", lua_tostring(L, -1));
    check_reply(gw_native_error_event("bad_request", msg));
    lua_settop(L, 0);
    return 0;
  }
  const char *why = gw_native_check_envelope(L, -1, &has_id, &id);
  if (why) {
    FUZZ_ASSERT(*why, "an empty refusal reason");
    check_reply(has_id ? gw_native_ack_error(id, "bad_request", why) : gw_native_error_event("bad_request", why));
    lua_settop(L, 0);
    return 0;
  }
  FUZZ_ASSERT(lua_istable(L, -1), "an accepted envelope is not an object");
  FUZZ_ASSERT(!has_id || id <= 9007199254740991ull, "an ack id above 2^53 - 1");
  lua_getfield(L, -1, "event");
  size_t evlen = 0;
  const char *ev = lua_tolstring(L, -1, &evlen);
  FUZZ_ASSERT(ev && evlen >= 1 && evlen <= 200, "an accepted event name is not 1..200 bytes");
  int msg = lua_gettop(L) - 1;
  /* what the echo plugin does with it: the data back in an ack, or as an event */
  lua_getfield(L, msg, "data");
  int data_idx = lua_gettop(L);
  size_t jlen = 0;
  const char *json = lua_isnil(L, data_idx) ? NULL : gw_lua_json_encode(vm, data_idx, &jlen);
  if (!lua_isnil(L, data_idx) && !json) {
    /* the path answers internal_error (logged); the reason must still be a string */
    FUZZ_ASSERT(lua_type(L, -1) == LUA_TSTRING, "an encode error without a message");
    check_reply(gw_native_ack_error(has_id ? id : 0, "internal_error", "internal error"));
  } else if (has_id) {
    check_reply(gw_native_ack(id, json, jlen));
  } else {
    check_reply(gw_native_event(ev, evlen, json, jlen));
  }
  /* a handler's refusal quoting the event name (an unknown event) */
  char reason[300];
  snprintf(reason, sizeof reason, "no handler for event '%.*s'", (int)evlen, ev);
  check_reply(gw_native_ack_error(id, "unknown_event", reason));
  lua_settop(L, 0);
  return 0;
}
