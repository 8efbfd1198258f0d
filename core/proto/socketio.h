/* Socket.IO v5 over Engine.IO v4 (docs/socketio.md): packets (pure functions, unit-tested),
 * namespaces and their sockets, and the bridge to the gateway's message path.
 *
 * Every namespace a client connects to is one gateway connection (gw_conn_t, protocol
 * "socketio"): its own connect hook call (with the CONNECT packet's auth payload as
 * req.auth), identity, rooms and attributes. The sockets of one Engine.IO session share its
 * transport and send queue. An EVENT becomes the msg {event, data, args, id, namespace} and
 * goes through gw_gateway_conn_message() like a /ws message; the verdict becomes an ACK. */
#ifndef GW_SOCKETIO_H
#define GW_SOCKETIO_H

#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "engineio.h"
#include "msgbuf.h"

/* ---- packets (pure) ------------------------------------------------------------------- */

enum {
  GW_SIO_CONNECT = 0,
  GW_SIO_DISCONNECT = 1,
  GW_SIO_EVENT = 2,
  GW_SIO_ACK = 3,
  GW_SIO_CONNECT_ERROR = 4,
  GW_SIO_BINARY_EVENT = 5,
  GW_SIO_BINARY_ACK = 6,
};

#define GW_SIO_MAX_ATTACHMENTS 1000

/* <type>[<attachments>-][<namespace>,][<ack id>][<JSON payload>] */
typedef struct gw_sio_packet {
  int type;
  size_t attachments;
  const char *nsp; /* "/" when absent */
  size_t nsp_len;
  int has_id;
  uint64_t id;
  const char *data; /* the JSON payload (not checked here); len 0 when absent */
  size_t data_len;
} gw_sio_packet_t;

/* 0, or -1 when the header is malformed or the payload cannot be right for the type (an
 * EVENT or ACK without an array, a DISCONNECT with a payload, a CONNECT_ERROR from a client). */
int gw_sio_parse(const char *s, size_t len, gw_sio_packet_t *p);

/* One Engine.IO message packet ("4" + the Socket.IO packet). nsp NULL or "/" : none. */
gw_msgbuf_t *gw_sio_packet_new(int type, size_t attachments, const char *nsp, size_t nsp_len,
                               int has_id, uint64_t id, const char *payload, size_t plen);

/* The packets of one event or ack: the header packet, then one binary packet per attachment. */
typedef struct gw_sio_pkts {
  gw_msgbuf_t **v;
  size_t n, cap;
} gw_sio_pkts_t;
void gw_sio_pkts_clear(gw_sio_pkts_t *p);

/* Event ev with data json (NULL: no argument; an argument list " [...]" is spread; every
 * {"_binary":"<base64>"} object becomes an attachment). 0 or -1 (out of memory). */
int gw_sio_build_event(gw_sio_pkts_t *out, const char *nsp, size_t nsp_len, const char *ev,
                       size_t evlen, const char *json, size_t jlen);
/* The ack of id carrying json (NULL: no argument; an argument list is spread). */
int gw_sio_build_ack(gw_sio_pkts_t *out, const char *nsp, size_t nsp_len, uint64_t id,
                     const char *json, size_t jlen);

/* Decodes the EVENT or BINARY_EVENT p (from gw_sio_parse) with its attachments as a session
 * does, and pushes the msg table (tests/fuzz: no gateway runs there, so the message-size
 * limit is an argument, not gw_settings()). 0, or -1 (nothing pushed) when malformed.
 * The caller clears the binary set (gw_json_lua_binset_clear) when done with the msg. */
struct lua_State;
struct gw_lua_vm;
int gw_sio_decode_event(struct lua_State *L, struct gw_lua_vm *vm, const gw_sio_packet_t *p,
                        const unsigned char *const *att, const size_t *att_len, size_t natt,
                        size_t max_message_size);

/* ---- the session side (engineio.c) ----------------------------------------------------- */

/* One Engine.IO message: text (the Socket.IO packet, without the "4") or binary (an
 * attachment). 0, or -1 when it was malformed: the caller closes the session. */
int gw_sio_on_packet(gw_eio_t *s, const unsigned char *data, size_t len, int binary);
/* The session closes: every socket goes (disconnect hooks run). */
void gw_sio_session_closed(gw_eio_t *s, const char *reason);
/* Marks the sockets closed for Lua (conn methods answer nil, "closed"). */
void gw_sio_mark_closing(gw_eio_t *s, int code);
/* Sockets asked to disconnect (conn:close) are disconnected now. */
void gw_sio_reap(gw_eio_t *s);
size_t gw_sio_socket_count(const gw_eio_t *s);
void gw_sio_on_ping(gw_eio_t *s);
void gw_sio_on_pong(gw_eio_t *s, double rtt_ms);
/* The functions above as Engine.IO's upper table (engineio.h). */
extern const gw_eio_upper_t gw_sio_eio_upper;

/* ---- the gateway side ----------------------------------------------------------------- */

void gw_sio_on_message(gw_conn_t *c, const unsigned char *data, size_t len, int binary, const void *decoded);
/* Socket.IO's protocol table (conn.h), set on every namespace connection it creates. */
extern const gw_conn_ops_t gw_sio_conn_ops;
/* Queues an already encoded Engine.IO packet. */
int gw_sio_send(gw_conn_t *c, gw_msgbuf_t *b);
/* 1000 and 3000..4999 (conn:close): DISCONNECT for this namespace (the client does not
 * reconnect by itself), and the session closes with its last socket. Anything else (1001
 * drain, 1011): the whole Engine.IO connection closes after a flush, so the client
 * reconnects. */
void gw_sio_close(gw_conn_t *c, int code, const char *reason);
int gw_sio_emit(gw_conn_t *c, const char *ev, size_t evlen, const char *json, size_t jlen);
/* The bytes as event "binary" with one binary argument. */
int gw_sio_send_binary(gw_conn_t *c, const void *data, size_t len);

/* The Engine.IO session a Socket.IO connection (one namespace) rides on: the namespaces of
 * one client share it. NULL for a connection of another protocol. */
const void *gw_sio_session_of(const gw_conn_t *c);

/* Fan-out: one encoding per namespace present among the recipients (two with connection
 * state recovery turned on or off while sessions of both kinds are connected: one carries
 * an offset, the same for every recipient). */
#define GW_SIO_CACHE_NSPS 8
typedef struct gw_sio_cache {
  struct {
    const char *nsp;
    uint64_t off; /* 0: none */
    gw_sio_pkts_t pkts;
  } e[GW_SIO_CACHE_NSPS];
  size_t n;
} gw_sio_cache_t;
/* 0 when queued to c. */
int gw_sio_publish(gw_sio_cache_t *cache, gw_conn_t *c, const char *ev, size_t evlen,
                   const char *json, size_t jlen);
void gw_sio_cache_free(gw_sio_cache_t *cache);

/* A rate-limit refusal (its protocol table's rate_limited encodes both shapes): ack_json as the ack's
 * argument when the client asked for an ack, else error_json as an "error" event. */
void gw_sio_rate_limited(gw_conn_t *c, int has_id, uint64_t id, const char *ack_json, size_t ack_len,
                         const char *error_json, size_t error_len);

#endif
