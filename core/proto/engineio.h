/* Engine.IO v4, the transport under Socket.IO v5 (docs/socketio.md): packets, HTTP
 * long-polling payloads, the open packet and HTTP error bodies (pure functions, unit-tested),
 * and sessions by sid: the send queue, the heartbeat, the connect timeout and the
 * polling -> websocket upgrade.
 *
 * No libwebsockets here. server_eio.c owns the HTTP requests and WebSocket connections (each
 * one a gw_eio_link_t, opaque here), attaches them to sessions and asks the session what to
 * write; the session wakes a link through the links table (gw_eio_set_links) when it has something for it.
 * What the packets mean to Socket.IO is socketio.c's business. */
#ifndef GW_ENGINEIO_H
#define GW_ENGINEIO_H

#include <stddef.h>
#include <stdint.h>

#include <uthash.h>

#include "loop.h"
#include "msgbuf.h"
#include "sendq.h"
#include "settings.h"
#include "strbuf.h"

/* ---- packets and payloads (pure) ------------------------------------------------------- */

enum {
  GW_EIO_OPEN = 0,
  GW_EIO_CLOSE = 1,
  GW_EIO_PING = 2,
  GW_EIO_PONG = 3,
  GW_EIO_MESSAGE = 4,
  GW_EIO_UPGRADE = 5,
  GW_EIO_NOOP = 6,
};

#define GW_EIO_SEPARATOR '\x1e' /* between the packets of a polling payload */

typedef enum { GW_EIO_POLLING = 0, GW_EIO_WEBSOCKET = 1 } gw_eio_transport_t;

/* Engine.IO's HTTP errors: the JSON body {"code":N,"message":"..."} and its status. */
enum {
  GW_EIO_ERR_TRANSPORT = 0,   /* Transport unknown */
  GW_EIO_ERR_SID = 1,         /* Session ID unknown */
  GW_EIO_ERR_METHOD = 2,      /* Bad handshake method */
  GW_EIO_ERR_BAD_REQUEST = 3, /* Bad request */
  GW_EIO_ERR_FORBIDDEN = 4,   /* Forbidden */
  GW_EIO_ERR_VERSION = 5,     /* Unsupported protocol version */
};
const char *gw_eio_error_body(int code);
unsigned gw_eio_error_status(int code); /* 400, or 403 for Forbidden */

/* The value of name in a query string "a=1&b=2" (lws has already %-decoded it) into out;
 * 0 when present, -1 when absent or longer than cap - 1. */
int gw_eio_query_get(const char *query, const char *name, char *out, size_t cap);

/* Checks EIO=4 and transport=polling|websocket; fills *t and sid ("" when absent).
 * Returns -1 when good, else the GW_EIO_ERR_* to answer with. */
int gw_eio_check_query(const char *query, gw_eio_transport_t *t, char *sid, size_t sidcap);

/* The open packet: 0{"sid","upgrades","pingInterval","pingTimeout","maxPayload"}. */
size_t gw_eio_open_packet(char *out, size_t cap, const char *sid, int can_upgrade,
                          unsigned ping_interval_ms, unsigned ping_timeout_ms, size_t max_payload);

/* Appends one packet to a polling payload: a separator first unless out is empty; a binary
 * packet as "b" + base64. -1 when out of memory. */
int gw_eio_payload_append(gw_strbuf_t *out, const unsigned char *data, size_t len, int binary);

/* Splits a polling payload into packets (binary ones decoded into scratch) and calls cb for
 * each; stops when cb returns non-zero and returns that. -1: malformed (an empty packet or
 * bad base64). */
typedef int (*gw_eio_packet_cb)(void *ud, const unsigned char *data, size_t len, int binary);
int gw_eio_payload_decode(const char *body, size_t len, gw_strbuf_t *scratch, gw_eio_packet_cb cb,
                          void *ud);

/* ---- configuration ---------------------------------------------------------------------- */

typedef gw_socketio_settings_t gw_eio_cfg_t; /* settings.h: socketio.* */
/* lua/aivo/defaults.lua's socketio.*, for a process without a policy (unit tests) */
#define GW_EIO_CFG_DEFAULTS {25000, 20000, 45000, 10000, 1000000, "token", 0}

/* The running generation's socketio.* settings; the defaults before the first one. */
const gw_eio_cfg_t *gw_eio_cfg(void);

/* ---- sessions ---------------------------------------------------------------------------- */

typedef struct gw_eio_link gw_eio_link_t; /* server_eio.c */
typedef struct gw_sio_session gw_sio_session_t; /* socketio.c */

typedef enum { GW_EIO_S_OPEN = 0, GW_EIO_S_CLOSING, GW_EIO_S_CLOSED } gw_eio_state_t;

typedef struct gw_eio {
  char sid[24];
  gw_eio_transport_t transport;
  gw_eio_state_t state;
  gw_eio_link_t *ws;    /* the WebSocket transport */
  gw_eio_link_t *probe; /* a WebSocket probing for the upgrade */
  gw_eio_link_t *poll;  /* the pending GET */
  gw_eio_link_t *post;  /* the POST being read */
  int probe_answered;   /* "3probe" sent: waiting for "5" */
  int probe_reply_due;  /* "3probe" to write on the probe */
  unsigned links;       /* links attached; the session is freed once closed and at 0 */

  gw_sendq_t q; /* Engine.IO packets to send, text or binary */
  ev_timer heartbeat, connect_timer, upgrade_timer, close_timer;
  int awaiting_pong;
  double ping_sent_ms;
  gw_eio_cfg_t cfg; /* as when the session opened */

  /* the handshake request, for the policy's connect hook */
  char *query, *origin, *user_agent;
  char remote[48];
  int ip_counted; /* one of remote's open connections (connections.max_per_ip) until closed */

  gw_sio_session_t *sio;

  /* a close asked for (done by the reaper, never inside a hook) */
  int close_asked, close_graceful, close_noop;
  int ws_close_code;
  const char *close_reason;
  struct gw_eio *reap_next;
  int reap_queued, reap_sockets;

  UT_hash_handle hh;
} gw_eio_t;

typedef struct gw_eio_req {
  const char *query, *origin, *user_agent, *remote;
} gw_eio_req_t;

/* A new session with a fresh sid, registered, its timers started. NULL when out of memory. */
gw_eio_t *gw_eio_new(gw_eio_transport_t t, const gw_eio_req_t *req);
/* An open session (NULL for an unknown or closing sid). */
gw_eio_t *gw_eio_find(const char *sid);
size_t gw_eio_count(void);
/* The open packet for s. */
size_t gw_eio_handshake(gw_eio_t *s, char *out, size_t cap);

/* Queues an Engine.IO packet (a new reference is taken) and wakes the transport. Past the
 * queue limits the session is closed as a slow consumer and GW_ELIMIT returned. */
int gw_eio_send(gw_eio_t *s, gw_msgbuf_t *b);
/* Asks for the session to close, after the current event: graceful flushes what is queued
 * first (and tells a polling client with a close packet); noop answers a pending poll with a
 * noop (the client closed). ws_code is the WebSocket close code. */
void gw_eio_close(gw_eio_t *s, const char *reason, int graceful, int ws_code);
/* The session has no namespace left: closed unless one connects within connect_timeout. */
void gw_eio_expect_connect(gw_eio_t *s);
/* Asks the reaper to call gw_sio_reap(s) after the current event. */
void gw_eio_reap_sockets(gw_eio_t *s);

/* Links (called by server_eio.c). */
void gw_eio_attach(gw_eio_t *s);
/* The link is gone (its request finished or its connection closed). */
void gw_eio_detach(gw_eio_t *s, gw_eio_link_t *l, int premature);

/* A GET on a polling session: 0 parked or ready (the link is woken when there is something
 * to write), else a GW_EIO_ERR_* (the session is closed when it was an overlap). */
int gw_eio_poll_begin(gw_eio_t *s, gw_eio_link_t *l);
/* The body of the pending poll's response: every queued packet (or a noop, or a close). */
int gw_eio_poll_take(gw_eio_t *s, gw_eio_link_t *l, gw_strbuf_t *out);
/* A POST: 0, or a GW_EIO_ERR_* (overlap: the session is closed). */
int gw_eio_post_begin(gw_eio_t *s, gw_eio_link_t *l);
/* The POST's body: each packet handled. 0, or -1 when it was malformed (session closed). */
int gw_eio_post_body(gw_eio_t *s, gw_eio_link_t *l, const char *body, size_t len);

/* A WebSocket: the transport of a new session (its first frame the open packet, queued), or
 * with a sid a probe for the upgrade. 0, or a GW_EIO_ERR_* to refuse the upgrade with. */
int gw_eio_ws_check(gw_eio_t *s);
int gw_eio_ws_begin(gw_eio_t *s, gw_eio_link_t *l);
/* One complete WebSocket message from l. */
void gw_eio_ws_message(gw_eio_t *s, gw_eio_link_t *l, const unsigned char *data, size_t len,
                       int binary);
/* What to write next on l: a buffer (the caller unrefs it after writing), or NULL; *close_code
 * is set when the link should now be closed. */
gw_msgbuf_t *gw_eio_ws_next(gw_eio_t *s, gw_eio_link_t *l, int *close_code);

/* Closes every session at shutdown. */
void gw_eio_shutdown(void);

/* What the network layer does for Engine.IO's links (server_eio.c registers it at start:
 * engineio.c never calls the layer above it). write_now: 0 written to the socket at once, 1
 * not now (the caller queues it and wakes the link), -1 the link failed (it is being
 * closed). frame_too_big: 1 when l (a WebSocket) is reading a frame whose header announced
 * more than maxPayload and is now closing 1009 for it (lws gives no callback for a header
 * alone: checked from the heartbeat). */
/* What the protocol carried over Engine.IO (Socket.IO: socketio.c's gw_sio_eio_upper) does
 * with a session's packets and lifecycle; registered at start (server_eio.c), so engineio.c
 * never includes the protocol above it. */
typedef struct gw_eio_upper {
  int (*on_packet)(gw_eio_t *s, const unsigned char *data, size_t len, int binary);
  void (*session_closed)(gw_eio_t *s, const char *reason);
  void (*mark_closing)(gw_eio_t *s, int code);
  void (*reap)(gw_eio_t *s);
  size_t (*socket_count)(const gw_eio_t *s);
  void (*on_ping)(gw_eio_t *s);
  void (*on_pong)(gw_eio_t *s, double rtt_ms);
} gw_eio_upper_t;
void gw_eio_set_upper(const gw_eio_upper_t *upper);

typedef struct gw_eio_links {
  void (*wake)(gw_eio_link_t *l);
  int (*frame_too_big)(gw_eio_link_t *l);
  int (*write_now)(gw_eio_link_t *l, gw_msgbuf_t *b);
} gw_eio_links_t;
void gw_eio_set_links(const gw_eio_links_t *links);

#endif
