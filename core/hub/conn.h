/* The connection table: every live client connection, keyed by a 64-bit id that is never
 * reused while the process runs. Lua only ever holds these ids. */
#ifndef GW_CONN_H
#define GW_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <uthash.h>

#include "loop.h"
#include "msgbuf.h"
#include "history.h"
#include "quality.h"

typedef enum { GW_PROTO_WS = 0, GW_PROTO_SOCKETIO = 1, GW_PROTO_COUNT } gw_proto_t;

typedef struct gw_room gw_room_t;
typedef struct gw_conn gw_conn_t;

/* One outbound event, the same for every recipient of a fan-out. */
typedef struct gw_event {
  const char *ev;
  size_t evlen;
  const char *json; /* JSON text of the data; NULL: none */
  size_t jlen;
  /* when the event was kept for offline replay (docs/offline-replay.md): its stream (the
   * room) and its position there; NULL: not kept */
  const char *channel;
  const gw_stream_pos_t *pos;
  int ack; /* kept with `ack = true`: the recipient must acknowledge it (replay.h) */
} gw_event_t;

/* What a protocol does for its connections (docs/architecture.md): the protocol that creates
 * a connection sets c->ops, and every layer calls through the gw_conn_* functions below, so
 * nothing switches on the protocol. Native /ws: net/server.c; Socket.IO: proto/socketio.c. */
typedef struct gw_conn_ops {
  gw_proto_t proto;
  /* a frame already encoded for this protocol */
  int (*send)(gw_conn_t *c, gw_msgbuf_t *b);
  /* an event with JSON data (json NULL: none) */
  int (*emit)(gw_conn_t *c, const char *ev, size_t evlen, const char *json, size_t jlen);
  int (*send_binary)(gw_conn_t *c, const void *data, size_t len);
  /* close after what is queued has gone out */
  void (*close)(gw_conn_t *c, int code, const char *reason);
  /* the answers to a message (proto/pipeline.c turns a verdict into one of these): an ack
   * with JSON data (NULL: none), a refusal {code, message} as an ack error when it asked for
   * an ack (has_id) or as an `error` event */
  void (*ack)(gw_conn_t *c, uint64_t id, const char *json, size_t jlen);
  void (*refuse)(gw_conn_t *c, int has_id, uint64_t id, const char *code, const char *message);
  /* a message refused by a rate limit (has_id: it asked for an ack) */
  void (*rate_limited)(gw_conn_t *c, int has_id, uint64_t id, double retry_after_ms, const char *message);
  /* a whole inbound message, after the pipeline's accounting; decoded: what the protocol
   * already decoded of it when it called the pipeline (its own type; NULL: nothing) */
  void (*on_message)(gw_conn_t *c, const unsigned char *data, size_t len, int binary, const void *decoded);
  /* fan-out: one event to many connections, encoded once per protocol (Socket.IO: once per
   * namespace). *cache starts NULL and belongs to the protocol; fanout_end frees it. 0 when
   * queued for c. */
  int (*fanout)(void **cache, gw_conn_t *c, const gw_event_t *e);
  void (*fanout_end)(void *cache);
  /* the client a connection belongs to (Socket.IO: its Engine.IO session, which every
   * namespace of that client shares); NULL: the connection itself */
  const void *(*client)(const gw_conn_t *c);
} gw_conn_ops_t;

typedef struct gw_membership {
  gw_room_t *room;
  size_t pos; /* this connection's index in room->members */
} gw_membership_t;

typedef struct gw_attr {
  char *key, *value;
  UT_hash_handle hh;
} gw_attr_t;

struct gw_conn {
  uint64_t id;
  const gw_conn_ops_t *ops; /* the protocol's table (set at creation) */
  /* the protocol's handle: a struct lws * for /ws (server.c), the Socket.IO namespace
   * session for Socket.IO (socketio.c); opaque to everyone else */
  void *transport;
  gw_proto_t proto;
  char *user;      /* identity decided by the policy; NULL until connected */
  char remote[48]; /* peer address */
  double connected_at_ms;

  gw_attr_t *attrs;
  gw_membership_t *rooms;
  size_t nrooms, rooms_cap;

  /* keepalive and link measurements */
  double last_rx_ms, last_ping_ms, ping_sent_ms, rtt_ms;
  unsigned pings_sent, pongs_received;
  gw_quality_t quality; /* quality.c: RTT samples, loss, class */

  /* ratelimit.c */
  unsigned rl_refused; /* messages refused by a rate limit in a row */
  int ip_counted;      /* counted in the open connections of its address */

  /* auth_session.c: the token's expiry (Unix seconds, 0: none) and the refresh watch */
  double auth_exp;
  ev_timer auth_timer;
  int auth_asked; /* auth:refresh sent; closing 4401 when the grace period ends */

  /* close requested: sent after the queue drains (or at once for a slow consumer) */
  int close_code;
  char close_reason[100];
  int ready; /* connect hook accepted it */

  struct gw_hold *hold; /* hold.h: live events held while it resumes a stream (NULL: none; its
                           rooms' holds end when it leaves them) */
  int resume_intent;    /* said at connect it will resume (/ws?resume=1): kept rooms hold at join */

  UT_hash_handle hh;
};

gw_conn_t *gw_conn_new(void);       /* allocates, assigns the next id, adds to the table */
void gw_conn_free(gw_conn_t *c);    /* removes from the table; rooms must be left first */
gw_conn_t *gw_conn_find(uint64_t id);
size_t gw_conn_count(void);
gw_conn_t *gw_conn_first(void);      /* iteration: for (c = first; c; c = c->hh.next) */
const char *gw_proto_name(gw_proto_t p);

int gw_conn_set_user(gw_conn_t *c, const char *user);
const char *gw_conn_attr_get(gw_conn_t *c, const char *key);
/* value NULL removes the attribute. */
int gw_conn_attr_set(gw_conn_t *c, const char *key, const char *value);

/* Through the connection's protocol table (GW_ECLOSED when it has none). */
int gw_conn_send(gw_conn_t *c, gw_msgbuf_t *b);
int gw_conn_emit(gw_conn_t *c, const char *ev, size_t evlen, const char *json, size_t jlen);
int gw_conn_send_binary(gw_conn_t *c, const void *data, size_t len);
void gw_conn_close(gw_conn_t *c, int code, const char *reason);
/* Counts websocket_rate_limited_total and answers in the connection's protocol. */
void gw_conn_rate_limited(gw_conn_t *c, int has_id, uint64_t id, double retry_after_ms, const char *message);
const void *gw_conn_client(const gw_conn_t *c);

#endif
