/* The native protocol at /ws: one JSON object per text frame (docs/protocol.md).
 * In:  {"event": "...", "data": ..., "id": 7}
 * Out: {"ack": 7, "data": ...} | {"ack": 7, "error": {"code", "message"}} | {"event", "data"} */
#ifndef GW_PROTO_NATIVE_H
#define GW_PROTO_NATIVE_H

#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "msgbuf.h"

void gw_native_on_message(gw_conn_t *c, const unsigned char *data, size_t len, int binary, const void *decoded);

gw_msgbuf_t *gw_native_event(const char *ev, size_t evlen, const char *json, size_t jlen);
/* The same with the stream position when the event was kept for replay:
 * {"event":E,"data":D,"channel":C,"offset":N,"epoch":"X"} (+ "ackRequired":true). */
gw_msgbuf_t *gw_native_event_at(const gw_event_t *e);
gw_msgbuf_t *gw_native_ack(uint64_t id, const char *json, size_t jlen);
/* The native table's answers (conn.h ack, refuse): an ack; a refusal as an ack error or an
 * `error` event (bad_request counted and logged at debug: the client's mistake). */
void gw_native_send_ack(gw_conn_t *c, uint64_t id, const char *json, size_t jlen);
void gw_native_refuse(gw_conn_t *c, int has_id, uint64_t id, const char *code, const char *msg);
gw_msgbuf_t *gw_native_ack_error(uint64_t id, const char *code, const char *message);
/* {"ack": id, "error": <err_json>}: an error object built by the caller (a rate-limit refusal). */
gw_msgbuf_t *gw_native_ack_error_json(uint64_t id, const char *err_json, size_t elen);
gw_msgbuf_t *gw_native_error_event(const char *code, const char *message);

/* The envelope check of a decoded message at idx (tests/fuzz): NULL when good, else the
 * reason; *has_id set when an ack id could be read. */
struct lua_State;
const char *gw_native_check_envelope(struct lua_State *L, int idx, int *has_id, uint64_t *id);

#endif
