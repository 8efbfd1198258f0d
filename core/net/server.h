/* The network side: libwebsockets on the gateway's libev loop. The only file that includes
 * libwebsockets. HTTP endpoints (/healthz, /readyz), the WebSocket upgrade at /ws, framing,
 * per-connection send queues, keepalive pings and closes. */
#ifndef GW_SERVER_H
#define GW_SERVER_H

#include <stddef.h>

#include "close_codes.h"
#include "conn.h"
#include "loop.h"
#include "msgbuf.h"
#include "rxbuf.h"
#include "strbuf.h"

typedef struct gw_server gw_server_t;

/* The admin API's requests, parsed by the server on the admin listener and answered by the
 * handler the gateway registered (admin.c), so this layer never calls the one above it. */
#define GW_ADMIN_MAX_BODY (1u << 20)

typedef struct gw_admin_request {
  const char *method; /* "GET", "POST", ... */
  const char *path;
  const char *query; /* "limit=2&cursor=5" (arguments as lws decoded them), or "" / NULL */
  const char *authorization; /* the Authorization header, or NULL */
  const char *body;
  size_t body_len;
  /* for an answer that comes later (deferred below): hand it to gw_server_admin_complete */
  struct gw_admin_waiter *waiter;
} gw_admin_request_t;

typedef struct gw_admin_response {
  int status;
  gw_strbuf_t body; /* JSON; freed by the caller */
  int deferred;     /* 1: no answer now; gw_server_admin_complete(req->waiter, ...) follows */
} gw_admin_response_t;

/* The answer of a deferred admin request (exactly once per deferral): written when the
 * client is still there, dropped otherwise. The waiter is freed. */
void gw_server_admin_complete(struct gw_admin_waiter *w, int status, const char *body, size_t len);

typedef void (*gw_admin_handler_t)(const gw_admin_request_t *req, gw_admin_response_t *res);

typedef struct gw_server_opts {
  const char *host; /* NULL or "0.0.0.0": every interface */
  int port;         /* 0: the kernel picks */
  int reuse_port;
  const char *admin_host; /* NULL: 127.0.0.1 */
  int admin_port;         /* -1: no admin listener; 0: the kernel picks */
  int admin_required;     /* failing to bind the admin listener is fatal (else a warning) */
  const char *tls_cert, *tls_key; /* both set: https/wss on the port (the admin API stays plain) */
  gw_admin_handler_t admin_handler; /* answers the admin listener's requests */
  /* /readyz beyond draining (optional): 1 when not ready; note: a line for the body */
  int (*not_ready)(char *note, size_t cap);
} gw_server_opts_t;

gw_server_t *gw_server_new(gw_loop_t *loop, const gw_server_opts_t *o, char *err, size_t errlen);
int gw_server_port(const gw_server_t *s);
/* -1 when the admin API is off. */
int gw_server_admin_port(const gw_server_t *s);
/* SIGHUP: reads the TLS certificate and key again; a bad pair keeps the old one (logged).
 * Live connections are untouched. No-op without TLS. */
void gw_server_reload_tls(gw_server_t *s);
/* Stops accepting: the listening socket is closed; live connections go on. */
void gw_server_stop_accepting(gw_server_t *s);
/* Two-step destroy on a foreign loop: begin, let the loop run until lws's handles are
 * closed, then finish (which frees s). */
void gw_server_destroy_begin(gw_server_t *s);
void gw_server_destroy_finish(gw_server_t *s);

/* A /ws connection (the native table; others go through their own, conn.h): queues b (a new reference is taken). Past the queue limits the connection is closed as a
 * slow consumer (4008) and GW_ELIMIT returned; GW_ECLOSED when it is already closing. */
int gw_server_send(gw_conn_t *c, gw_msgbuf_t *b);
/* Closes after the queue is flushed (close frame with code and reason). */
void gw_server_close(gw_conn_t *c, int code, const char *reason);

/* A request's line and headers, in bytes (docs/protocol.md "Limits"): an 8 KiB token in a
 * header or in ?token= with room for the rest; a larger head gets 431 (headread.h). */
#define GW_HTTP_HEADER_MAX 16384

#endif
