/* Fuzz target: the Socket.IO v5 packet decoder with binary attachments (core/proto/socketio.c).
 * Input: the Socket.IO packet (what follows Engine.IO's "4"), then each attachment, split on
 * 0x1e. A packet is refused, or parsed; an EVENT or BINARY_EVENT with its attachments is
 * decoded into the msg a policy sees (placeholders replaced by the attachments), and that msg
 * sent back as an event (args encoded, attachments split out again) must parse and decode
 * again: what a client sends can always be echoed. */
#include <string.h>

#include <luajit-2.1/lauxlib.h>

#include "fuzz_common.h"
#include "json_lua.h"
#include "msgbuf.h"
#include "socketio.h"

#define MAX_PARTS (GW_SIO_MAX_ATTACHMENTS + 1)
#define MAX_MESSAGE 1048576 /* server.max_message_size's default */

static int decode_built(gw_lua_vm_t *vm, gw_sio_pkts_t *pk) {
  FUZZ_ASSERT(pk->n >= 1, "no header packet");
  gw_msgbuf_t *h = pk->v[0];
  const char *text = (const char *)gw_msgbuf_payload(h);
  FUZZ_ASSERT(h->len >= 2 && text[0] == '4' && !h->binary, "the header is not an Engine.IO message");
  gw_sio_packet_t p;
  FUZZ_ASSERT(gw_sio_parse(text + 1, h->len - 1, &p) == 0, "an event we built does not parse");
  FUZZ_ASSERT(p.attachments == pk->n - 1, "attachment count differs from the packets built");
  const unsigned char *att[MAX_PARTS];
  size_t lens[MAX_PARTS];
  for (size_t i = 1; i < pk->n && i < MAX_PARTS; i++) {
    FUZZ_ASSERT(pk->v[i]->binary, "an attachment is not binary");
    att[i - 1] = gw_msgbuf_payload(pk->v[i]);
    lens[i - 1] = pk->v[i]->len;
  }
  return gw_sio_decode_event(vm->L, vm, &p, att, lens, pk->n - 1, MAX_MESSAGE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  gw_lua_vm_t *vm = fuzz_vm();
  lua_State *L = vm->L;
  const unsigned char *part[MAX_PARTS];
  size_t plen[MAX_PARTS], nparts = 0;
  const unsigned char *p = data, *end = data + size;
  while (nparts < MAX_PARTS) {
    const unsigned char *sep = memchr(p, 0x1e, (size_t)(end - p));
    part[nparts] = p;
    plen[nparts++] = (size_t)((sep ? sep : end) - p);
    if (!sep) break;
    p = sep + 1;
  }
  gw_sio_packet_t pkt;
  if (gw_sio_parse((const char *)part[0], plen[0], &pkt)) return 0;
  FUZZ_ASSERT(pkt.attachments <= GW_SIO_MAX_ATTACHMENTS, "too many attachments accepted");
  if (pkt.type != GW_SIO_EVENT && pkt.type != GW_SIO_BINARY_EVENT) return 0;
  /* a session dispatches once every announced attachment came */
  if (nparts - 1 < pkt.attachments) return 0;
  if (gw_sio_decode_event(L, vm, &pkt, part + 1, plen + 1, pkt.attachments, MAX_MESSAGE)) {
    FUZZ_ASSERT(lua_gettop(L) == 0, "a refused event left values on the stack");
    gw_json_lua_binset_clear(L);
    return 0;
  }
  int msg = lua_gettop(L);
  FUZZ_ASSERT(msg == 1 && lua_istable(L, msg), "no msg table");
  lua_getfield(L, msg, "event");
  size_t evlen = 0;
  const char *ev = lua_tolstring(L, -1, &evlen);
  FUZZ_ASSERT(ev && evlen >= 1 && evlen <= 200, "an accepted event name is not 1..200 bytes");
  lua_getfield(L, msg, "namespace");
  size_t nsp_len = 0;
  const char *nsp = lua_tolstring(L, -1, &nsp_len);
  FUZZ_ASSERT(nsp && nsp_len >= 1 && nsp[0] == '/', "a namespace without '/'");
  lua_getfield(L, msg, "args");
  FUZZ_ASSERT(lua_istable(L, -1), "no args list");

  /* echo it: the args spread again, binary values split out again */
  size_t jlen = 0;
  const char *json = gw_lua_json_encode(vm, lua_gettop(L), &jlen);
  if (json) {
    FUZZ_ASSERT(gw_json_is_args(json, jlen), "args do not encode as an argument list");
    gw_sio_pkts_t out = {0};
    if (gw_sio_build_event(&out, nsp, nsp_len, ev, evlen, json, jlen) == 0) {
      FUZZ_ASSERT(decode_built(vm, &out) == 0, "an event we built does not decode");
      gw_sio_pkts_clear(&out);
    }
    gw_sio_pkts_t ack = {0};
    if (gw_sio_build_ack(&ack, nsp, nsp_len, pkt.has_id ? pkt.id : 0, json, jlen) == 0) gw_sio_pkts_clear(&ack);
  } else {
    FUZZ_ASSERT(lua_type(L, -1) == LUA_TSTRING, "an encode error without a message");
  }
  lua_settop(L, 0);
  gw_json_lua_binset_clear(L);
  return 0;
}
