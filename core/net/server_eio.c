/* The libwebsockets side of Engine.IO (docs/socketio.md). Like server.c, this file includes
 * libwebsockets; engineio.c and socketio.c never do. Each HTTP request and each WebSocket at
 * /socket.io/ is a link (gw_eio_link_t) attached to its session; engineio.c decides what
 * is said, this file moves the bytes:
 *   GET  without sid      handshake: a new polling session, the open packet
 *   GET  with sid         a poll: parked until the session has packets (or a noop/close)
 *   POST with sid         a payload of packets from the client, answered "ok"
 *   OPTIONS               CORS preflight
 *   WebSocket             without sid: a new session on the websocket transport;
 *                         with sid: the upgrade probe of a polling session
 * Origins: a request whose Origin is not in origins.allowed (CORS_ORIGIN) is refused with 403;
 * an allowed one gets Access-Control-Allow-Origin (itself) and -Credentials on every answer.
 * Connection limits per address (ratelimit.c): a handshake that would open a new session (the
 * first polling GET, or a websocket without sid) over them is refused with HTTP 429. */
#define _GNU_SOURCE /* strcasestr */
#include "server_eio.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "auth.h"
#include "close_codes.h"
#include "engineio.h"
#include "log.h"
#include "lws_common.h"
#include "policy.h"
#include "ratelimit.h"
#include "rxbuf.h"
#include "socketio.h"
#include "stats.h"

enum { LINK_HTTP = 0, LINK_GET, LINK_POST, LINK_WS };

struct gw_eio_link {
  struct lws *wsi;
  gw_eio_t *s; /* NULL when not attached */
  int kind;
  int woken;   /* GET: the session has something for it */
  int close_sent; /* WS: the close was handed to lws */
  /* the HTTP answer, once decided */
  int have_response;
  unsigned status;
  const char *ctype;
  char retry_after[16]; /* a 429's Retry-After ("": none) */
  gw_strbuf_t body;
  char origin[256];
  int cors;
  /* POST body */
  gw_strbuf_t rx;
  size_t rx_counted; /* of server.max_inflight_bytes (rxbuf.h) */
  int too_big, over_budget;
  gw_rxbuf_t wrx; /* WebSocket message assembly */
  int refuse_code; /* WS: a message refused (1009, 1013): closing with it, reading nothing */
  const char *refuse_why;
};

static int is_eio_path(const char *uri) {
  return uri && (strcmp(uri, "/socket.io/") == 0 || strcmp(uri, "/socket.io") == 0);
}

static void header_copy(struct lws *wsi, enum lws_token_indexes tok, char *buf, size_t cap) {
  buf[0] = 0;
  if (lws_hdr_total_length(wsi, tok) > 0 && lws_hdr_copy(wsi, buf, (int)cap, tok) < 0) buf[0] = 0;
}

/* The query string, fragments joined with '&' (lws has %-decoded them). */
static void query_copy(struct lws *wsi, char *buf, size_t cap) {
  size_t o = 0;
  buf[0] = 0;
  char frag[1024];
  for (int i = 0; lws_hdr_copy_fragment(wsi, frag, sizeof frag, WSI_TOKEN_HTTP_URI_ARGS, i) > 0; i++) {
    size_t n = strlen(frag);
    if (o + n + 2 > cap) break;
    if (o) buf[o++] = '&';
    memcpy(buf + o, frag, n);
    o += n;
    buf[o] = 0;
  }
}

static int sb_set(gw_strbuf_t *b, const char *s, size_t n) {
  if (n + 1 > b->cap) {
    char *p = realloc(b->p, n + 1);
    if (!p) return -1;
    b->p = p;
    b->cap = n + 1;
  }
  memcpy(b->p, s, n);
  b->len = n;
  return 0;
}

static gw_eio_link_t *link_new(struct lws *wsi, int kind) {
  gw_eio_link_t *l = calloc(1, sizeof *l);
  if (!l) return NULL;
  l->wsi = wsi;
  l->kind = kind;
  return l;
}

static void link_detach(gw_eio_link_t *l, int premature) {
  if (!l->s) return;
  gw_eio_t *s = l->s;
  l->s = NULL;
  gw_eio_detach(s, l, premature);
}

static void link_free(gw_eio_link_t *l) {
  if (!l) return;
  link_detach(l, 0);
  gw_strbuf_free(&l->body);
  gw_strbuf_free(&l->rx);
  gw_rxbuf_charge(&l->rx_counted, 0);
  gw_rxbuf_free(&l->wrx);
  free(l);
}

static void link_attach(gw_eio_link_t *l, gw_eio_t *s) {
  l->s = s;
  gw_eio_attach(s);
}

static void gw_server_eio_wake(gw_eio_link_t *l) {
  l->woken = 1;
  lws_callback_on_writable(l->wsi);
}

static int gw_server_eio_write_now(gw_eio_link_t *l, gw_msgbuf_t *b) {
  if (l->kind != LINK_WS) return 1;
  int rc = gw_lws_write_now(l->wsi, b);
  if (rc < 0) lws_set_timeout(l->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
  return rc;
}

/* ---- HTTP -------------------------------------------------------------------------------- */

static int respond(gw_eio_link_t *l, unsigned status, const char *ctype, const char *body, size_t len) {
  if (sb_set(&l->body, body, len)) return -1;
  l->status = status;
  l->ctype = ctype;
  l->have_response = 1;
  lws_callback_on_writable(l->wsi);
  return 0;
}

static int respond_error(gw_eio_link_t *l, int code) {
  const char *b = gw_eio_error_body(code);
  return respond(l, gw_eio_error_status(code), "application/json", b, strlen(b));
}

static int respond_limited(gw_eio_link_t *l, double retry_after_ms, const char *why) {
  char body[200];
  int n = gw_lws_limited_body(retry_after_ms, why, body, sizeof body, l->retry_after);
  if (n < 0) return -1;
  return respond(l, 429, "application/json", body, (size_t)n);
}

static int add_header(struct lws *wsi, const char *name, const char *value, unsigned char **p,
                      unsigned char *end) {
  return lws_add_http_header_by_name(wsi, (const unsigned char *)name, (const unsigned char *)value,
                                     (int)strlen(value), p, end);
}

/* Writes the decided answer: headers (CORS included) and body. */
static int write_response(struct lws *wsi, gw_eio_link_t *l, int preflight) {
  unsigned char hdr[LWS_PRE + 2048], *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof hdr - 1;
  if (lws_add_http_common_headers(wsi, l->status, l->ctype, (lws_filepos_t)l->body.len, &p, end) ||
      add_header(wsi, "cache-control:", "no-store", &p, end))
    return -1;
  /* lws closes after answering a "Connection: close" request without saying so; clients
   * that pool sockets (Node's keep-alive agent) must be told, or they reuse a dead one */
  char conn[64];
  header_copy(wsi, WSI_TOKEN_CONNECTION, conn, sizeof conn);
  if (strcasestr(conn, "close") && add_header(wsi, "connection:", "close", &p, end)) return -1;
  if (l->retry_after[0] && add_header(wsi, "retry-after:", l->retry_after, &p, end)) return -1;
  if (l->cors && (add_header(wsi, "access-control-allow-origin:", l->origin, &p, end) ||
                  add_header(wsi, "access-control-allow-credentials:", "true", &p, end) ||
                  add_header(wsi, "vary:", "Origin", &p, end)))
    return -1;
  if (preflight) {
    char reqh[512];
    header_copy(wsi, WSI_TOKEN_HTTP_AC_REQUEST_HEADERS, reqh, sizeof reqh);
    if (add_header(wsi, "access-control-allow-methods:", "GET,HEAD,PUT,PATCH,POST,DELETE", &p, end) ||
        (reqh[0] && add_header(wsi, "access-control-allow-headers:", reqh, &p, end)))
      return -1;
  }
  if (lws_finalize_write_http_header(wsi, start, &p, end)) return -1;
  if (l->body.len) {
    unsigned char *buf = malloc(LWS_PRE + l->body.len);
    if (!buf) return -1;
    memcpy(buf + LWS_PRE, l->body.p, l->body.len);
    int n = lws_write(wsi, buf + LWS_PRE, l->body.len, LWS_WRITE_HTTP_FINAL);
    free(buf);
    if (n < 0) return -1;
  }
  return 0;
}

static int http_request(struct lws *wsi, void **slot) {
  gw_eio_link_t *l = link_new(wsi, LINK_HTTP);
  if (!l) return -1;
  *slot = l;
  char *uri;
  int ulen;
  int method = lws_http_get_uri_and_method(wsi, &uri, &ulen);
  header_copy(wsi, WSI_TOKEN_ORIGIN, l->origin, sizeof l->origin);
  if (!gw_auth_origin_allowed(gw_policy_current()->auth, l->origin[0] ? l->origin : NULL)) {
    gw_log(GW_LOG_INFO, 0, "socket.io: refusing a request from origin '%s' (not in origins.allowed)",
           l->origin[0] ? l->origin : "(none)");
    gw_series_add(gw_metric_series1(gw_stats.auth_refusals, "origin_not_allowed"), 1);
    return respond_error(l, GW_EIO_ERR_FORBIDDEN);
  }
  l->cors = l->origin[0] != 0;
  if (method == LWSHUMETH_OPTIONS) return respond(l, 204, "text/plain", "", 0);

  char query[2048], sid[64];
  query_copy(wsi, query, sizeof query);
  gw_eio_transport_t t;
  int err = gw_eio_check_query(query, &t, sid, sizeof sid);
  if (err >= 0) return respond_error(l, err);
  if (t != GW_EIO_POLLING) return respond_error(l, GW_EIO_ERR_BAD_REQUEST); /* no upgrade header */

  if (!sid[0]) { /* the handshake */
    if (method != LWSHUMETH_GET) return respond_error(l, GW_EIO_ERR_METHOD);
    if (gw_loop_draining()) return respond(l, 503, "text/plain", "draining\n", 9);
    char ua[256], remote[48];
    header_copy(wsi, WSI_TOKEN_HTTP_USER_AGENT, ua, sizeof ua);
    lws_get_peer_simple(wsi, remote, sizeof remote);
    double retry = 0;
    const char *why = NULL;
    if (gw_ratelimit_admit_now(remote, &retry, &why)) return respond_limited(l, retry, why);
    gw_eio_req_t req = {query, l->origin[0] ? l->origin : NULL, ua[0] ? ua : NULL, remote};
    gw_eio_t *s = gw_eio_new(GW_EIO_POLLING, &req);
    if (!s) return -1;
    char open[256];
    size_t n = gw_eio_handshake(s, open, sizeof open);
    return respond(l, 200, "text/plain; charset=UTF-8", open, n);
  }

  gw_eio_t *s = gw_eio_find(sid);
  if (!s) return respond_error(l, GW_EIO_ERR_SID);
  if (method == LWSHUMETH_GET) {
    l->kind = LINK_GET;
    link_attach(l, s);
    int rc = gw_eio_poll_begin(s, l);
    if (rc) {
      link_detach(l, 0);
      return respond_error(l, rc);
    }
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0); /* parked: the heartbeat bounds it */
    return 0;
  }
  if (method == LWSHUMETH_POST) {
    int rc = gw_eio_post_begin(s, l);
    if (rc) return respond_error(l, rc);
    l->kind = LINK_POST;
    link_attach(l, s);
    char clen[24];
    header_copy(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, clen, sizeof clen);
    long long n = atoll(clen);
    if (n > (long long)s->cfg.max_payload) {
      gw_log(GW_LOG_INFO, 0, "socket.io session %s: a POST of %lld bytes is over maxPayload, closing", s->sid, n);
      gw_eio_close(s, "payload too large", 0, GW_CLOSE_TOO_BIG);
      link_detach(l, 0);
      return respond(l, 413, "text/plain", "payload too large\n", 18);
    }
    if (n <= 0 && lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) <= 0) {
      link_detach(l, 0);
      return respond_error(l, GW_EIO_ERR_BAD_REQUEST);
    }
    return 0; /* the body follows */
  }
  return respond_error(l, GW_EIO_ERR_BAD_REQUEST);
}

static int http_body(gw_eio_link_t *l, const void *in, size_t len) {
  /* lws also calls with no bytes (in NULL) for a "Content-Length: 0" POST, already refused */
  if (l->kind != LINK_POST || l->too_big || l->over_budget || l->have_response || len == 0) return 0;
  size_t max = l->s ? l->s->cfg.max_payload : 0;
  if (l->rx.len + len > max) {
    l->too_big = 1;
    return 0;
  }
  if (l->rx.len + len > l->rx.cap) {
    size_t ncap = l->rx.cap ? l->rx.cap : 1024;
    while (ncap < l->rx.len + len) ncap *= 2;
    gw_rxbuf_set_budget(gw_settings()->max_inflight_bytes);
    if (gw_rxbuf_charge(&l->rx_counted, ncap)) { /* a body being read is a message in flight */
      l->over_budget = 1;
      return 0;
    }
    char *p = realloc(l->rx.p, ncap);
    if (!p) return -1;
    l->rx.p = p;
    l->rx.cap = ncap;
  }
  memcpy(l->rx.p + l->rx.len, in, len);
  l->rx.len += len;
  return 0;
}

static int http_body_done(gw_eio_link_t *l) {
  if (l->kind != LINK_POST || l->have_response) return 0;
  gw_eio_t *s = l->s;
  if (!s) return respond_error(l, GW_EIO_ERR_SID);
  if (l->too_big) {
    gw_eio_close(s, "payload too large", 0, GW_CLOSE_TOO_BIG);
    link_detach(l, 0);
    return respond(l, 413, "text/plain", "payload too large\n", 18);
  }
  if (l->over_budget) {
    gw_log(GW_LOG_WARN, 0, "socket.io session %s: closing, server.max_inflight_bytes spent by messages being received", s->sid);
    gw_stats_budget_refusal("max_inflight_bytes");
    gw_strbuf_free(&l->rx);
    gw_rxbuf_charge(&l->rx_counted, 0);
    gw_eio_close(s, "try again later: too many partial messages", 0, GW_CLOSE_TRY_AGAIN_LATER);
    link_detach(l, 0);
    static const char busy[] = "try again later: too many partial messages\n";
    return respond(l, 503, "text/plain", busy, sizeof busy - 1);
  }
  int rc = gw_eio_post_body(s, l, l->rx.p ? l->rx.p : "", l->rx.len);
  link_detach(l, 0);
  gw_strbuf_free(&l->rx);
  gw_rxbuf_charge(&l->rx_counted, 0);
  if (rc) return respond_error(l, GW_EIO_ERR_BAD_REQUEST);
  return respond(l, 200, "text/html", "ok", 2);
}

static int http_writeable(struct lws *wsi, void **slot, gw_eio_link_t *l) {
  if (!l->have_response) {
    if (l->kind != LINK_GET || !l->woken || !l->s) return 0;
    gw_strbuf_t body = {0};
    int rc = gw_eio_poll_take(l->s, l, &body);
    link_detach(l, 0);
    if (rc) {
      gw_strbuf_free(&body);
      return -1;
    }
    gw_strbuf_free(&l->body);
    l->body = body;
    l->status = 200;
    l->ctype = "text/plain; charset=UTF-8";
    l->have_response = 1;
  }
  char *uri;
  int ulen;
  int preflight = lws_http_get_uri_and_method(wsi, &uri, &ulen) == LWSHUMETH_OPTIONS;
  int rc = write_response(wsi, l, preflight);
  link_free(l);
  *slot = NULL;
  if (rc) return -1;
  return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* ---- WebSocket ------------------------------------------------------------------------------ */

static int refuse_upgrade(struct lws *wsi, int code) {
  const char *b = gw_eio_error_body(code);
  lws_return_http_status(wsi, gw_eio_error_status(code), b);
  return -1;
}

static int ws_filter(struct lws *wsi) {
  char origin[256], query[2048], sid[64];
  header_copy(wsi, WSI_TOKEN_ORIGIN, origin, sizeof origin);
  if (!gw_auth_origin_allowed(gw_policy_current()->auth, origin[0] ? origin : NULL)) {
    gw_log(GW_LOG_INFO, 0, "socket.io: refusing a websocket from origin '%s' (not in origins.allowed)",
           origin[0] ? origin : "(none)");
    gw_series_add(gw_metric_series1(gw_stats.auth_refusals, "origin_not_allowed"), 1);
    return refuse_upgrade(wsi, GW_EIO_ERR_FORBIDDEN);
  }
  query_copy(wsi, query, sizeof query);
  gw_eio_transport_t t;
  int err = gw_eio_check_query(query, &t, sid, sizeof sid);
  if (err >= 0) return refuse_upgrade(wsi, err);
  if (t != GW_EIO_WEBSOCKET) return refuse_upgrade(wsi, GW_EIO_ERR_BAD_REQUEST);
  if (sid[0]) {
    /* an unknown sid is refused here; a session that cannot take this websocket (already
     * upgraded, probing) gets it opened and closed at once, as Engine.IO does */
    if (!gw_eio_find(sid)) return refuse_upgrade(wsi, GW_EIO_ERR_SID);
  } else if (gw_loop_draining()) {
    lws_return_http_status(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, NULL);
    return -1;
  } else { /* a new session: the connection limits per address (an upgrade probe is none) */
    char remote[48];
    double retry = 0;
    const char *why = NULL;
    lws_get_peer_simple(wsi, remote, sizeof remote);
    if (gw_ratelimit_admit_now(remote, &retry, &why)) return gw_lws_refuse_limited(wsi, retry, why);
  }
  return 0;
}

static int ws_established(struct lws *wsi, void **slot) {
  char query[2048], sid[64];
  query_copy(wsi, query, sizeof query);
  gw_eio_transport_t t;
  if (gw_eio_check_query(query, &t, sid, sizeof sid) >= 0) return -1;
  gw_eio_link_t *l = link_new(wsi, LINK_WS);
  if (!l) return -1;
  *slot = l;
  gw_eio_t *s;
  if (sid[0]) {
    s = gw_eio_find(sid);
    if (!s || gw_eio_ws_check(s)) { /* no session for it: closed at the first writable */
      lws_callback_on_writable(wsi);
      return 0;
    }
  } else {
    char origin[256], ua[256], remote[48];
    header_copy(wsi, WSI_TOKEN_ORIGIN, origin, sizeof origin);
    header_copy(wsi, WSI_TOKEN_HTTP_USER_AGENT, ua, sizeof ua);
    lws_get_peer_simple(wsi, remote, sizeof remote);
    gw_eio_req_t req = {query, origin[0] ? origin : NULL, ua[0] ? ua : NULL, remote};
    if (!(s = gw_eio_new(GW_EIO_WEBSOCKET, &req))) return -1;
    char open[256];
    size_t n = gw_eio_handshake(s, open, sizeof open);
    gw_msgbuf_t *b = gw_msgbuf_from(open, n, 0);
    if (b) gw_eio_send(s, b);
    gw_msgbuf_unref(b);
  }
  link_attach(l, s);
  return gw_eio_ws_begin(s, l) ? -1 : 0;
}

/* As server.c's ws_refuse: the close goes out from WRITEABLE, with lws's frame parser
 * intact while the rest of the refused frame still arrives (a -1 here reset the connection). */
static int ws_refuse(struct lws *wsi, gw_eio_link_t *l, int code, const char *why) {
  l->refuse_code = code;
  l->refuse_why = why;
  gw_rxbuf_free(&l->wrx);
  lws_callback_on_writable(wsi);
  lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, 5);
  return 0;
}

static int ws_receive(struct lws *wsi, gw_eio_link_t *l, const unsigned char *in, size_t len) {
  if (!l->s || l->refuse_code) return 0;
  size_t max = l->s->cfg.max_payload;
  const unsigned char *msg;
  size_t mlen;
  int rc = gw_lws_rx_feed(wsi, &l->wrx, in, len, max, &msg, &mlen);
  if (rc == GW_RX_BUDGET) {
    gw_log(GW_LOG_WARN, 0, "socket.io session %s: closing 1013, server.max_inflight_bytes spent", l->s->sid);
    gw_stats_budget_refusal("max_inflight_bytes");
    return ws_refuse(wsi, l, GW_CLOSE_TRY_AGAIN_LATER, "try again later: too many partial messages");
  }
  if (rc == GW_RX_TOO_BIG) {
    gw_log(GW_LOG_INFO, 0, "socket.io session %s: closing 1009, a message over maxPayload (%zu bytes)",
           l->s->sid, max);
    return ws_refuse(wsi, l, GW_CLOSE_TOO_BIG, "message too big");
  }
  if (rc == GW_RX_NOMEM) return -1;
  if (rc == GW_RX_MESSAGE) {
    gw_lws_direct_writes(1);
    gw_eio_ws_message(l->s, l, msg, mlen, l->wrx.binary);
    gw_lws_direct_writes(0);
    gw_rxbuf_done(&l->wrx);
  }
  return 0;
}

static int gw_server_eio_frame_too_big(gw_eio_link_t *l) {
  if (l->kind != LINK_WS || !l->s || l->refuse_code ||
      !gw_lws_frame_too_big(l->wsi, l->wrx.len, l->s->cfg.max_payload))
    return 0;
  gw_log(GW_LOG_INFO, 0, "socket.io session %s: closing 1009, a frame announces more than maxPayload (%zu bytes)",
         l->s->sid, l->s->cfg.max_payload);
  ws_refuse(l->wsi, l, GW_CLOSE_TOO_BIG, "message too big");
  return 1;
}

static int ws_writeable(struct lws *wsi, gw_eio_link_t *l) {
  gw_eio_t *s = l->s;
  if (l->close_sent) return 0; /* once only: a second -1 would kill the socket before lws's close frame */
  if (l->refuse_code) {
    l->close_sent = 1;
    lws_close_reason(wsi, (enum lws_close_status)l->refuse_code, (unsigned char *)l->refuse_why,
                     strlen(l->refuse_why));
    return -1;
  }
  if (!s) {
    l->close_sent = 1;
    lws_close_reason(wsi, GW_CLOSE_NORMAL, NULL, 0);
    return -1;
  }
  int code;
  gw_msgbuf_t *b = gw_eio_ws_next(s, l, &code);
  if (b) {
    int n = lws_write(wsi, gw_msgbuf_payload(b), b->len, b->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
    size_t len = b->len;
    gw_msgbuf_unref(b);
    if (n < (int)len) return -1;
    if ((l == s->ws && (gw_sendq_count(&s->q) || s->state != GW_EIO_S_OPEN)) || (l == s->probe && s->probe_reply_due))
      lws_callback_on_writable(wsi);
    return 0;
  }
  if (code) {
    l->close_sent = 1;
    static const char why[] = "";
    lws_close_reason(wsi, (enum lws_close_status)code, (unsigned char *)why, 0);
    return -1;
  }
  return 0;
}

/* ---- the hook ------------------------------------------------------------------------------ */

int gw_server_eio_callback(struct lws *wsi, int reason, void **slot, void *in, size_t len, int *rc) {
  gw_eio_link_t *l = slot ? *slot : NULL;
  switch (reason) {
    case LWS_CALLBACK_HTTP:
      if (!slot || !is_eio_path(in)) return 0;
      link_free(l); /* a previous request on this connection */
      *slot = NULL;
      *rc = http_request(wsi, slot);
      return 1;
    case LWS_CALLBACK_HTTP_BODY:
      if (!l) return 0;
      *rc = http_body(l, in, len);
      return 1;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
      if (!l) return 0;
      *rc = http_body_done(l);
      return 1;
    case LWS_CALLBACK_HTTP_WRITEABLE:
      if (!l) return 0;
      *rc = http_writeable(wsi, slot, l);
      return 1;
    case LWS_CALLBACK_CLOSED_HTTP:
      if (l) {
        link_detach(l, l->kind == LINK_GET && !l->have_response);
        link_free(l);
        *slot = NULL;
      }
      return 0;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
      char path[256];
      header_copy(wsi, WSI_TOKEN_GET_URI, path, sizeof path);
      if (!is_eio_path(path)) return 0;
      *rc = ws_filter(wsi);
      return 1;
    }
    case LWS_CALLBACK_ESTABLISHED: {
      char path[256];
      header_copy(wsi, WSI_TOKEN_GET_URI, path, sizeof path);
      if (!slot || !is_eio_path(path)) return 0;
      *rc = ws_established(wsi, slot);
      return 1;
    }
    case LWS_CALLBACK_RECEIVE:
      if (!l) return 0;
      *rc = ws_receive(wsi, l, in, len);
      return 1;
    case LWS_CALLBACK_RECEIVE_PONG:
      if (!l) return 0;
      *rc = 0;
      return 1;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
      if (!l) return 0;
      *rc = gw_lws_check_peer_close(wsi, in, len);
      return 1;
    case LWS_CALLBACK_SERVER_WRITEABLE:
      if (!l) return 0;
      *rc = ws_writeable(wsi, l);
      return 1;
    case LWS_CALLBACK_CLOSED:
    case LWS_CALLBACK_WSI_DESTROY:
      if (l) {
        link_free(l);
        *slot = NULL;
      }
      return 0;
    default:
      return 0;
  }
}

static const gw_eio_links_t eio_links = {gw_server_eio_wake, gw_server_eio_frame_too_big, gw_server_eio_write_now};

void gw_server_eio_register(void) {
  gw_eio_set_links(&eio_links);
  gw_eio_set_upper(&gw_sio_eio_upper);
}
