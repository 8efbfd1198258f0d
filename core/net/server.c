#include "server.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "ack_track.h"
#include "auth.h"
#include "clock.h"
#include "conn_quality.h"
#include "errors.h"
#include "frame_guard.h"
#include "headread.h"
#include "json.h"
#include "listener.h"
#include "log.h"
#include "lws_common.h"
#include "metrics.h"
#include "pipeline.h"
#include "proto_native.h"
#include "query.h"
#include "ratelimit.h"
#include "rxbuf.h"
#include "server_eio.h"
#include "socketio.h"
#include "stats.h"
#include "tls.h"

_Static_assert(GW_MSGBUF_PRE >= LWS_PRE, "message buffer headroom must cover LWS_PRE");

/* lws delivers frames in pieces of at most this, and allocates it for every connection:
 * 64 KiB cost about 3 KiB of RSS per idle connection (see docs/benchmarks.md); the rxbuf
 * assembles the pieces either way */
#define RX_CHUNK 1024
/* lws limits one send() to tx_packet_size, and with 0 to rx_buffer_size: with 1 KiB, a
 * 64 KiB message went out in 64 sends, each after a loop pass, with the rest copied into
 * lws's buffer list (1.4 ms of CPU per 64 KiB echo). No limit of our own: the kernel takes
 * what fits, and lws keeps the rest (gw_lws_write_now then queues). */
#define TX_CHUNK (64u << 20)
/* lws keeps header values (and unknown headers' names, with 8 bytes each of its own) in
 * this much space per request being parsed or served: room for any head of at most
 * GW_HTTP_HEADER_MAX bytes, which headread.c lets through */
#define LWS_HEADER_SPACE (GW_HTTP_HEADER_MAX + 4096)
/* a new connection's first request head: as lws's own timeout for it (vinfo.timeout_secs) */
#define HEAD_TIMEOUT_S 10

struct gw_server {
  struct lws_context *ctx;
  gw_admin_handler_t admin_handler;
  int (*not_ready)(char *note, size_t cap);
  struct lws_vhost *vh;
  gw_loop_t *loop;
  void *foreign_loops[1];
  int port;
  gw_listener_t *listener;
  gw_listener_t *admin_listener; /* the admin API's */
  struct lws_vhost *admin_vh;     /* plain HTTP even when the port serves TLS */
  gw_tls_t *tls;                  /* tls.c: the certificate and key (NULL: plain) */
  void *ssl_ctx;                  /* the TLS vhost's SSL_CTX, handed over by lws */
};

/* Per-wsi data: a WebSocket's connection, or an HTTP response being written. */
typedef struct pss {
  gw_conn_t *conn;
  /* the /ws connection's own state (conn.h keeps only what every protocol has) */
  gw_sendq_t sendq;   /* frames waiting for WRITEABLE */
  ev_timer keepalive; /* pings, quality checks, idle timeout, frame-header check */
  int ping_due;       /* a ping goes out at the next WRITEABLE */
  int established;    /* the handshake is done: frames may be written directly */
  gw_rxbuf_t rx;      /* inbound message assembly across fragments */
  int close_sent;     /* the close was handed to lws: never twice */
  char *body; /* HTTP: LWS_PRE + body */
  size_t body_len;
  struct admin_req *admin; /* an admin API request being read */
  struct gw_admin_waiter *waiter; /* an admin request answered later (server.h) */
  void *eio; /* server_eio.c: a Socket.IO request or connection at /socket.io/ */
} pss_t;

static gw_server_t *g_server;

/* ---- lws's log through ours ---------------------------------------------------------- */

static void lws_log_emit(int level, const char *line) {
  size_t n = strlen(line);
  while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
  gw_log(level == LLL_ERR ? GW_LOG_WARN : GW_LOG_DEBUG, 0, "lws: %.*s", (int)n, line);
}

/* ---- HTTP ---------------------------------------------------------------------------- */

static int http_respond_n(struct lws *wsi, pss_t *pss, unsigned status, const char *ctype,
                          const char *body, size_t blen) {
  unsigned char hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof hdr - 1;
  if (lws_add_http_common_headers(wsi, status, ctype, (lws_filepos_t)blen, &p, end) ||
      lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                   (const unsigned char *)"no-store", 8, &p, end) ||
      /* lws 4.1 may close after the response without saying so; a keep-alive client
       * (Node's agent) would then reuse a dead socket */
      lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION, (const unsigned char *)"close", 5, &p, end) ||
      lws_finalize_write_http_header(wsi, start, &p, end))
    return 1;
  free(pss->body);
  pss->body = malloc(LWS_PRE + blen + 1);
  if (!pss->body) return 1;
  memcpy(pss->body + LWS_PRE, body, blen);
  pss->body_len = blen;
  lws_callback_on_writable(wsi);
  return 0;
}

static int http_respond(struct lws *wsi, pss_t *pss, unsigned status, const char *ctype, const char *body) {
  return http_respond_n(wsi, pss, status, ctype, body, strlen(body));
}

static int metrics_respond(struct lws *wsi, pss_t *pss) {
  gw_stats_refresh();
  gw_strbuf_t b = {0};
  int rc = gw_metrics_render(&b) ? http_respond(wsi, pss, 500, "text/plain", "out of memory\n")
                                 : http_respond_n(wsi, pss, 200, "text/plain; version=0.0.4; charset=utf-8",
                                                  b.p, b.len);
  gw_strbuf_free(&b);
  return rc;
}

/* 503 while draining or while the app says so (Redis down with redis.required); 200 with the
 * app's note otherwise ("ready (redis down: ...)"). */
static int readyz_respond(struct lws *wsi, pss_t *pss) {
  if (gw_loop_draining()) return http_respond(wsi, pss, 503, "text/plain", "draining\n");
  char note[160] = "", body[200];
  int down = g_server->not_ready && g_server->not_ready(note, sizeof note);
  snprintf(body, sizeof body, "%s%s%s%s\n", down ? "not ready" : "ready", note[0] ? " (" : "", note, note[0] ? ")" : "");
  return http_respond(wsi, pss, down ? 503 : 200, "text/plain", body);
}

static int http_route(struct lws *wsi, pss_t *pss, const char *uri) {
  if (strcmp(uri, "/metrics/prometheus") == 0 || strcmp(uri, "/metrics") == 0) return metrics_respond(wsi, pss);
  if (strcmp(uri, "/healthz") == 0) return http_respond(wsi, pss, 200, "text/plain", "ok\n");
  if (strcmp(uri, "/readyz") == 0) return readyz_respond(wsi, pss);
  if (strcmp(uri, "/ws") == 0)
    return http_respond(wsi, pss, 426, "text/plain", "this endpoint expects a WebSocket upgrade\n");
  return http_respond(wsi, pss, 404, "text/plain", "not found\n");
}

static int http_writeable(struct lws *wsi, pss_t *pss) {
  if (!pss->body) return 0;
  int n = lws_write(wsi, (unsigned char *)pss->body + LWS_PRE, pss->body_len, LWS_WRITE_HTTP_FINAL);
  free(pss->body);
  pss->body = NULL;
  if (n < 0) return -1;
  return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* ---- WebSocket connections ------------------------------------------------------------ */

static struct lws *wsi_of(gw_conn_t *c) { return c->transport; }
/* the /ws state of a live connection (c->transport set) */
static pss_t *ws_of(gw_conn_t *c) { return lws_wsi_user(wsi_of(c)); }

static void kill_now(gw_conn_t *c) {
  lws_set_timeout(wsi_of(c), PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

static void keepalive_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop;
  (void)revents;
  pss_t *pss = (pss_t *)((char *)w - offsetof(pss_t, keepalive));
  gw_conn_t *c = pss->conn;
  const gw_settings_t *s = gw_settings();
  double now = gw_clock_now_ms();
  if (now - c->last_rx_ms > s->idle_timeout_s * 1000) {
    gw_log(GW_LOG_INFO, c->id, "closing: nothing received for %.0f s (idle timeout)",
           (now - c->last_rx_ms) / 1000);
    gw_stats_error("idle_timeout");
    ev_timer_stop(g_server->loop, w);
    kill_now(c);
    return;
  }
  /* a frame header announcing more than the limit, with no payload byte yet: lws gives no
   * callback for a header alone (2^40 bytes announced in 14 bytes) */
  if (!c->close_code && gw_lws_frame_too_big(wsi_of(c), pss->rx.len, s->max_message_size)) {
    gw_log(GW_LOG_INFO, c->id, "closing 1009: a frame announces more than %zu bytes", s->max_message_size);
    gw_stats_error("message_too_big");
    gw_server_close(c, GW_CLOSE_TOO_BIG, "message too big");
    lws_set_timeout(wsi_of(c), PENDING_TIMEOUT_USER_OK, 5); /* the peer may never read it */
    return;
  }
  int measure = gw_quality_conn_tick(c, now); /* a quality check ran: ping to measure */
  if ((measure || now - c->last_ping_ms >= s->ping_interval_s * 1000) && !c->close_code) {
    pss->ping_due = 1;
    c->last_ping_ms = now;
    lws_callback_on_writable(wsi_of(c));
  }
}

static void header(struct lws *wsi, enum lws_token_indexes tok, char *buf, size_t cap) {
  buf[0] = 0;
  if (lws_hdr_total_length(wsi, tok) > 0) lws_hdr_copy(wsi, buf, (int)cap, tok);
}

/* Answers an upgrade with status and a JSON body {"error", "reason"} (and a
 * WWW-Authenticate for 401); the caller returns -1. */
static int refuse_json(struct lws *wsi, unsigned status, const char *error, const char *why) {
  char body[300], esc[GW_JSON_ESCAPED_MAX(160)], challenge[200];
  gw_json_escape(why, strnlen(why, 160), esc, sizeof esc);
  int blen = snprintf(body, sizeof body, "{\"error\":\"%s\",\"reason\":%s}\n", error, esc);
  int clen = snprintf(challenge, sizeof challenge, "Bearer error=\"%s\", error_description=\"%.100s\"",
                      strcmp(why, "token_missing") == 0 ? "invalid_request" : "invalid_token", why);
  if (blen < 0 || (size_t)blen >= sizeof body || clen < 0 || (size_t)clen >= sizeof challenge) return -1;
  return gw_lws_respond_json(wsi, status, WSI_TOKEN_HTTP_WWW_AUTHENTICATE, NULL, status == 401 ? challenge : NULL,
                             body, (size_t)blen);
}

/* The query without its token (policies and logs never see it), and the token. */
static void ws_query(struct lws *wsi, char *query, size_t qcap, char *token, size_t tcap) {
  size_t o = 0;
  query[0] = token[0] = 0;
  static char frag[8300]; /* "token=" and a token of up to 8 KiB (auth.c's limit) */
  for (int i = 0; lws_hdr_copy_fragment(wsi, frag, sizeof frag, WSI_TOKEN_HTTP_URI_ARGS, i) >= 0; i++) {
    if (strncmp(frag, "token=", 6) == 0) {
      size_t n = strlen(frag + 6); /* a longer one, cut, fails its check (auth.c: 8 KiB) */
      if (n >= tcap) n = tcap - 1;
      memcpy(token, frag + 6, n);
      token[n] = 0;
      continue;
    }
    int n = snprintf(query + o, qcap - o, "%s%s", o ? "&" : "", frag);
    if (n < 0 || (size_t)n >= qcap - o) break;
    o += (size_t)n;
  }
}

/* ---- the native protocol's table (conn.h): /ws frames are written by this file ------------- */

static int native_emit(gw_conn_t *c, const char *ev, size_t evlen, const char *json, size_t jlen) {
  gw_msgbuf_t *b = gw_native_event(ev, evlen, json, jlen);
  if (!b) return GW_ENOMEM;
  int rc = gw_server_send(c, b);
  gw_msgbuf_unref(b);
  return rc;
}

static int native_send_binary(gw_conn_t *c, const void *data, size_t len) {
  gw_msgbuf_t *b = gw_msgbuf_from(data, len, 1);
  if (!b) return GW_ENOMEM;
  int rc = gw_server_send(c, b);
  gw_msgbuf_unref(b);
  return rc;
}

/* an ack error {code, message, retryAfterMs}, or the same as an `error` event */
static void native_rate_limited(gw_conn_t *c, int has_id, uint64_t id, double retry_after_ms, const char *message) {
  char json[512];
  size_t len = gw_ratelimit_refusal_json(GW_RL_SHAPE_ERROR, retry_after_ms, message, json, sizeof json);
  gw_msgbuf_t *b = has_id ? gw_native_ack_error_json(id, json, len) : gw_native_event("error", 5, json, len);
  if (!b) return;
  gw_server_send(c, b);
  gw_msgbuf_unref(b);
}

/* encoded once for every /ws recipient of a fan-out */
static int native_fanout(void **cache, gw_conn_t *c, const gw_event_t *e) {
  if (!*cache && !(*cache = gw_native_event_at(e))) return GW_ENOMEM;
  int rc = gw_server_send(c, *cache);
  if (rc == 0 && e->ack) gw_ack_track_sent(c, e, *cache);
  return rc;
}

static void native_fanout_end(void *cache) { gw_msgbuf_unref(cache); }

static const gw_conn_ops_t native_ops = {
    .proto = GW_PROTO_WS,
    .send = gw_server_send,
    .emit = native_emit,
    .send_binary = native_send_binary,
    .close = gw_server_close,
    .ack = gw_native_send_ack,
    .refuse = gw_native_refuse,
    .rate_limited = native_rate_limited,
    .on_message = gw_native_on_message,
    .fanout = native_fanout,
    .fanout_end = native_fanout_end,
    .client = NULL,
};

/* The /ws upgrade, before the handshake is answered, so that a refusal is an HTTP status the
 * client can read: origin (403), token and the policy's auth hook (401), its connect hook
 * (403). The connection exists from here; ESTABLISHED starts its timers. */
static int ws_filter(struct lws *wsi, pss_t *pss) {
  gw_auth_t *auth = gw_policy_current()->auth;
  const gw_auth_settings_t *as = gw_auth_settings(auth);
  char origin[1024], ua[256], path[256], host[256], xff[256], lang[128], referer[512];
  header(wsi, WSI_TOKEN_ORIGIN, origin, sizeof origin);
  int too_long = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) >= (int)sizeof origin; /* never "absent" */
  if (too_long || !gw_auth_origin_allowed(auth, origin[0] ? origin : NULL)) {
    char peer[48];
    lws_get_peer_simple(wsi, peer, sizeof peer);
    gw_log(GW_LOG_INFO, 0, "refusing a /ws upgrade from %s: origin '%s' is not in origins.allowed", peer,
           origin[0] ? origin : "(none)");
    gw_series_add(gw_metric_series1(gw_stats.auth_refusals, "origin_not_allowed"), 1);
    return refuse_json(wsi, 403, "forbidden", "origin_not_allowed");
  }
  /* the token: Authorization: Bearer, then the configured cookie, then ?token= */
  /* a token of up to 8 KiB (auth.c), from a header of up to the whole head (cookies) */
  static char token[8200], buf[GW_HTTP_HEADER_MAX], qtoken[8200];
  char query[1024];
  ws_query(wsi, query, sizeof query, qtoken, sizeof qtoken);
  const char *tok = NULL;
  header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, buf, sizeof buf);
  if ((tok = gw_auth_bearer(buf))) snprintf(token, sizeof token, "%s", tok);
  else if (as->cookie && (header(wsi, WSI_TOKEN_HTTP_COOKIE, buf, sizeof buf), 1) &&
           gw_auth_cookie(buf, as->cookie, token, sizeof token) == 0)
    tok = token;
  else if (as->query && qtoken[0]) tok = snprintf(token, sizeof token, "%s", qtoken) > 0 ? token : NULL;

  header(wsi, WSI_TOKEN_GET_URI, path, sizeof path);
  header(wsi, WSI_TOKEN_HTTP_USER_AGENT, ua, sizeof ua);
  header(wsi, WSI_TOKEN_HOST, host, sizeof host);
  header(wsi, WSI_TOKEN_X_FORWARDED_FOR, xff, sizeof xff);
  header(wsi, WSI_TOKEN_HTTP_ACCEPT_LANGUAGE, lang, sizeof lang);
  header(wsi, WSI_TOKEN_HTTP_REFERER, referer, sizeof referer);
  const char *const seen[] = {"host", host, "x-forwarded-for", xff, "accept-language", lang, "referer", referer};
  const char *headers[sizeof seen / sizeof *seen + 1];
  size_t nh = 0;
  for (size_t i = 0; i < sizeof seen / sizeof *seen; i += 2) /* the ones present, then NULL */
    if (seen[i + 1][0]) {
      headers[nh++] = seen[i];
      headers[nh++] = seen[i + 1];
    }
  headers[nh] = NULL;
  gw_request_t req;
  memset(&req, 0, sizeof req);
  req.path = path;
  req.query = query;
  req.origin = origin[0] ? origin : NULL;
  req.user_agent = ua[0] ? ua : NULL;
  req.token = tok;
  req.headers = headers;

  gw_conn_t *c = gw_conn_new();
  if (!c) return -1;
  pss->conn = c;
  c->transport = wsi;
  c->proto = GW_PROTO_WS;
  c->ops = &native_ops;
  lws_get_peer_simple(wsi, c->remote, sizeof c->remote);
  c->connected_at_ms = c->last_rx_ms = c->last_ping_ms = gw_clock_now_ms();
  char resume[8];
  c->resume_intent = gw_query_arg(query, "resume", resume, sizeof resume) == 0 &&
                     (strcmp(resume, "1") == 0 || strcmp(resume, "true") == 0);
  char reason[124];
  int code = gw_pipeline_open(c, &req, reason, sizeof reason);
  memset(token, 0, sizeof token); /* no copy of a token outlives its check */
  memset(buf, 0, sizeof buf);
  memset(qtoken, 0, sizeof qtoken);
  if (!code) return 0;
  pss->conn = NULL;
  c->transport = NULL;
  gw_pipeline_closed(c, "refused");
  /* 4401 -> 401, 4403 -> 403, 4429 -> 429, 4400 -> 400; a failed hook -> 500 */
  unsigned status = code >= 4400 && code < 4500 ? (unsigned)code - 4000 : 500;
  return refuse_json(wsi, status, status == 401 ? "unauthorized" : status == 500 ? "internal_error" : status == 429 ? "rate_limited" : "forbidden",
                     reason);
}

static int ws_established(struct lws *wsi, pss_t *pss) {
  gw_conn_t *c = pss->conn; /* created by ws_filter */
  if (!c) return -1;
  c->connected_at_ms = c->last_rx_ms = c->last_ping_ms = gw_clock_now_ms();
  const gw_settings_t *s = gw_settings();
  double every = s->ping_interval_s / 2;
  if (s->quality_interval_s > 0 && s->quality_interval_s < every) every = s->quality_interval_s;
  ev_timer_init(&pss->keepalive, keepalive_cb, every, every);
  pss->ping_due = 1; /* a first round trip at once, so the first quality check has a sample */
  pss->established = 1;
  lws_callback_on_writable(wsi);
  ev_timer_start(g_server->loop, &pss->keepalive);
  return 0;
}

/* Refuses the message being received: close code and reason once the close frame can go
 * (gw_server_close). Not by returning -1 from RECEIVE: lws then drops its frame parser's
 * state while the peer is still sending the frame, reads the rest as frame headers and
 * resets the connection (the client saw 1006, not the code). What arrives meanwhile is
 * dropped, and a peer that never reads the close is cut after 5 s. */
static int ws_refuse(struct lws *wsi, gw_conn_t *c, int code, const char *why) {
  gw_rxbuf_free(&ws_of(c)->rx); /* its share of server.max_inflight_bytes goes back now */
  gw_server_close(c, code, why);
  lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, 5);
  return 0;
}

static int ws_receive(struct lws *wsi, gw_conn_t *c, const unsigned char *in, size_t len) {
  c->last_rx_ms = gw_clock_now_ms();
  gw_rxbuf_t *rx = &ws_of(c)->rx;
  if (c->close_code) return 0; /* closing: nothing more is read or handled */
  size_t max = gw_settings()->max_message_size;
  const unsigned char *msg;
  size_t mlen;
  int rc = gw_lws_rx_feed(wsi, rx, in, len, max, &msg, &mlen);
  if (rc == GW_RX_TOO_BIG) {
    gw_log(GW_LOG_INFO, c->id, "closing 1009: message larger than %zu bytes", max);
    gw_stats_error("message_too_big");
    return ws_refuse(wsi, c, GW_CLOSE_TOO_BIG, "message too big");
  }
  if (rc == GW_RX_BUDGET) {
    gw_log(GW_LOG_WARN, c->id, "closing 1013: server.max_inflight_bytes (%zu) spent by messages being received",
           gw_settings()->max_inflight_bytes);
    gw_stats_budget_refusal("max_inflight_bytes");
    return ws_refuse(wsi, c, GW_CLOSE_TRY_AGAIN_LATER, "try again later: too many partial messages");
  }
  if (rc == GW_RX_NOMEM) return -1;
  if (rc != GW_RX_MESSAGE) return 0;
  gw_lws_direct_writes(1);
  gw_pipeline_message(c, msg, mlen, rx->binary, NULL);
  gw_lws_direct_writes(0);
  gw_rxbuf_done(rx);
  return 0;
}

static void ws_pong(gw_conn_t *c, const void *in, size_t len) {
  double now = gw_clock_now_ms();
  c->last_rx_ms = now;
  /* the answer to one of the gateway's recent pings is a round-trip sample; anything else
   * (unsolicited, duplicate) is still proof of life */
  gw_quality_conn_pong(c, in, len, now);
}

static int ws_writeable(struct lws *wsi, gw_conn_t *c) {
  pss_t *w = ws_of(c);
  if (w->ping_due) {
    unsigned char buf[LWS_PRE + GW_QUALITY_PAYLOAD];
    w->ping_due = 0;
    c->ping_sent_ms = gw_clock_now_ms();
    c->pings_sent++;
    gw_quality_ping(&c->quality, c->ping_sent_ms, buf + LWS_PRE); /* its pong is matched to it */
    if (lws_write(wsi, buf + LWS_PRE, GW_QUALITY_PAYLOAD, LWS_WRITE_PING) < GW_QUALITY_PAYLOAD) return -1;
    if (gw_sendq_count(&w->sendq) || c->close_code) lws_callback_on_writable(wsi);
    return 0;
  }
  gw_msgbuf_t *b = gw_sendq_peek(&w->sendq);
  if (b) {
    int n = lws_write(wsi, gw_msgbuf_payload(b), b->len, b->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
    size_t len = b->len;
    gw_sendq_pop(&w->sendq);
    if (n < (int)len) return -1;
    gw_series_add(gw_stats.messages_sent, 1);
    gw_series_add(gw_stats.bytes_sent, (double)len);
    if (gw_sendq_count(&w->sendq) || c->close_code) lws_callback_on_writable(wsi);
    return 0;
  }
  if (c->close_code) {
    /* lws calls WRITEABLE again while its close frame waits to go out, and a second -1
     * then would kill the socket without it: the client saw 1006, not the code */
    if (w->close_sent) return 0;
    w->close_sent = 1;
    lws_close_reason(wsi, (enum lws_close_status)c->close_code, (unsigned char *)c->close_reason,
                     strlen(c->close_reason));
    return -1;
  }
  return 0;
}

int gw_server_send(gw_conn_t *c, gw_msgbuf_t *b) {
  if (c->close_code || !c->transport) return GW_ECLOSED;
  pss_t *w = ws_of(c);
  /* Fast path: handshake done and nothing queued (messages sent by the connect hook at the
   * upgrade wait in the queue for the 101 to go out first): write at once. This saves the
   * two epoll_ctl calls and the loop pass of a WRITEABLE round trip per message. */
  if (w->established && gw_sendq_count(&w->sendq) == 0 && !w->ping_due) {
    int rc = gw_lws_write_now(wsi_of(c), b);
    if (rc < 0) {
      kill_now(c);
      return GW_ECLOSED;
    }
    if (rc == 0) {
      gw_series_add(gw_stats.messages_sent, 1);
      gw_series_add(gw_stats.bytes_sent, (double)b->len);
      return 0;
    }
  }
  const gw_settings_t *s = gw_settings();
  gw_sendq_set_total_budget(s->max_sendq_total_bytes);
  int rc = gw_sendq_push(&w->sendq, b, s->sendq_max_messages, s->sendq_max_bytes);
  if (rc == GW_SENDQ_OK) {
    if (gw_sendq_count(&w->sendq) == 1) lws_callback_on_writable(wsi_of(c));
    return 0;
  }
  if (rc == GW_SENDQ_TOTAL) { /* every queue together is over the process's ceiling */
    gw_log(GW_LOG_WARN, c->id, "closing 1013: server.max_sendq_total_bytes (%zu) spent (this connection: %zu bytes queued)",
           s->max_sendq_total_bytes, gw_sendq_bytes(&w->sendq));
    gw_stats_budget_refusal("max_sendq_total_bytes");
    gw_sendq_clear(&w->sendq);
    c->close_code = GW_CLOSE_TRY_AGAIN_LATER;
    snprintf(c->close_reason, sizeof c->close_reason, "try again later: send queues full");
    lws_callback_on_writable(wsi_of(c));
    lws_set_timeout(wsi_of(c), PENDING_TIMEOUT_USER_OK, 5);
    return GW_ELIMIT;
  }
  /* slow-consumer rule: this connection goes; nobody else waits for it */
  gw_log(GW_LOG_WARN, c->id, "closing %d: slow consumer (%zu messages, %zu bytes queued)",
         GW_CLOSE_SLOW_CONSUMER, gw_sendq_count(&w->sendq), gw_sendq_bytes(&w->sendq));
  gw_stats_slow_consumer(gw_sendq_count(&w->sendq));
  gw_sendq_clear(&w->sendq);
  c->close_code = GW_CLOSE_SLOW_CONSUMER;
  snprintf(c->close_reason, sizeof c->close_reason, "slow consumer");
  lws_callback_on_writable(wsi_of(c));
  /* a peer that does not read may never become writable again */
  lws_set_timeout(wsi_of(c), PENDING_TIMEOUT_USER_OK, 5);
  return GW_ELIMIT;
}

void gw_server_close(gw_conn_t *c, int code, const char *reason) {
  if (c->close_code || !c->transport) return;
  c->close_code = code;
  snprintf(c->close_reason, sizeof c->close_reason, "%s", reason ? reason : "");
  lws_callback_on_writable(wsi_of(c));
}

static void ws_closed(pss_t *pss, const char *why) {
  gw_rxbuf_free(&pss->rx); /* its share of server.max_inflight_bytes goes back */
  gw_conn_t *c = pss->conn;
  if (!c) return;
  pss->conn = NULL;
  ev_timer_stop(g_server->loop, &pss->keepalive);
  gw_sendq_clear(&pss->sendq);
  c->transport = NULL;
  gw_pipeline_closed(c, why);
}

/* ---- the admin API (its own listener, loopback by default; admin.c answers) -------------
 * Sockets accepted by the admin listener are marked with lws's opaque user data: lws picks
 * the vhost of an adopted socket again from the Host header, so a second vhost would not keep
 * admin requests apart. The public listener never serves /admin/. */

static char admin_mark;

static int is_admin(struct lws *wsi) { return lws_get_opaque_user_data(wsi) == &admin_mark; }

typedef struct admin_req {
  char method[8], path[128], query[1024], *authorization;
  char *body;
  size_t body_len;
  int too_big;
} admin_req_t;

static void admin_free(pss_t *pss) {
  if (!pss || !pss->admin) return;
  free(pss->admin->authorization);
  free(pss->admin->body);
  free(pss->admin);
  pss->admin = NULL;
}

/* A deferred admin answer's link to its request: gone when the client left first. */
struct gw_admin_waiter {
  struct lws *wsi;
  int gone;
};

/* The client of a deferred request left: its answer will be dropped. */
static void admin_waiter_drop(pss_t *pss) {
  if (!pss || !pss->waiter) return;
  pss->waiter->gone = 1;
  pss->waiter = NULL;
}

void gw_server_admin_complete(struct gw_admin_waiter *w, int status, const char *body, size_t len) {
  if (!w) return;
  if (!w->gone) {
    pss_t *pss = lws_wsi_user(w->wsi);
    pss->waiter = NULL;
    if (http_respond_n(w->wsi, pss, (unsigned)status, "application/json", body, len))
      lws_set_timeout(w->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
  }
  free(w);
}

static int admin_answer(struct lws *wsi, pss_t *pss) {
  admin_req_t *a = pss->admin;
  struct gw_admin_waiter *w = calloc(1, sizeof *w);
  if (!w) return -1;
  w->wsi = wsi;
  gw_admin_request_t req = {a->method, a->path, a->query, a->authorization, a->body, a->body_len, w};
  gw_admin_response_t res;
  memset(&res, 0, sizeof res);
  res.status = 500;
  if (g_server && g_server->admin_handler) g_server->admin_handler(&req, &res);
  if (res.deferred) {
    pss->waiter = w;
    gw_strbuf_free(&res.body);
    admin_free(pss);
    return 0;
  }
  free(w);
  int rc = http_respond_n(wsi, pss, (unsigned)res.status, "application/json", res.body.p ? res.body.p : "{}",
                          res.body.p ? res.body.len : 2);
  gw_strbuf_free(&res.body);
  admin_free(pss);
  return rc;
}

static int admin_http(struct lws *wsi, pss_t *pss, const char *uri) {
  admin_free(pss);
  admin_req_t *a = pss->admin = calloc(1, sizeof *a);
  if (!a) return -1;
  int post = lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0;
  snprintf(a->method, sizeof a->method, "%s",
           post ? "POST" : lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0 ? "GET" : "OTHER");
  snprintf(a->path, sizeof a->path, "%s", uri);
  /* the query's arguments, joined again with '&' (paging: limit, cursor); one that does
   * not fit is left out whole */
  char frag[512];
  size_t qo = 0;
  for (int i = 0; lws_hdr_copy_fragment(wsi, frag, sizeof frag, WSI_TOKEN_HTTP_URI_ARGS, i) >= 0; i++) {
    size_t fl = strlen(frag);
    if (qo + fl + 2 > sizeof a->query) continue;
    if (qo) a->query[qo++] = '&';
    memcpy(a->query + qo, frag, fl + 1);
    qo += fl;
  }
  int alen = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
  if (alen > 0 && (a->authorization = malloc((size_t)alen + 1)))
    lws_hdr_copy(wsi, a->authorization, alen + 1, WSI_TOKEN_HTTP_AUTHORIZATION);
  char clen[24];
  header(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, clen, sizeof clen);
  if (post && !clen[0] && lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0) {
    admin_free(pss); /* lws 4.1 does not read chunked request bodies */
    return http_respond(wsi, pss, 411, "application/json",
                        "{\"error\":{\"code\":\"length_required\",\"message\":\"send a Content-Length\"}}");
  }
  if (!post || atol(clen) <= 0) return admin_answer(wsi, pss); /* no body to wait for */
  return 0;
}

static int admin_body(pss_t *pss, const void *in, size_t len) {
  admin_req_t *a = pss->admin;
  if (!a) return 0;
  if (a->too_big || a->body_len + len > GW_ADMIN_MAX_BODY) {
    a->too_big = 1;
    return 0;
  }
  char *nb = realloc(a->body, a->body_len + len + 1);
  if (!nb) return -1;
  a->body = nb;
  memcpy(a->body + a->body_len, in, len);
  a->body_len += len;
  return 0;
}

static int admin_body_done(struct lws *wsi, pss_t *pss) {
  if (!pss->admin) return 0;
  if (pss->admin->too_big) {
    admin_free(pss);
    return http_respond(wsi, pss, 413, "application/json",
                        "{\"error\":{\"code\":\"too_large\",\"message\":\"the body is over 1 MiB\"}}");
  }
  return admin_answer(wsi, pss);
}

static void on_admin_accepted(int fd, void *ud) {
  gw_server_t *s = ud;
  gw_frame_guard_forget(fd); /* no WebSocket here; a closed client socket's state goes */
  struct lws *wsi = lws_adopt_socket_vhost(s->admin_vh ? s->admin_vh : s->vh, fd);
  if (wsi) lws_set_opaque_user_data(wsi, &admin_mark);
  else gw_warn("could not hand an admin connection to lws");
}

static int admin_start(gw_server_t *s, const gw_server_opts_t *o, char *err, size_t errlen) {
  char aerr[256];
  s->admin_listener = gw_listener_new(s->loop, o->admin_host ? o->admin_host : "127.0.0.1", o->admin_port, 0,
                                      on_admin_accepted, s, aerr, sizeof aerr);
  if (!s->admin_listener) {
    snprintf(err, errlen, "admin API: %s", aerr);
    return -1;
  }
  return 0;
}

/* ---- unmasked client frames (frame_guard.h) ------------------------------------------- */

/* From inside lws's read of the socket: the close comes at the writeable callback. */
static void on_unmasked(void *owner) { lws_callback_on_writable(owner); }

/* Follows the WebSocket of each client socket; 1 when it must be closed 1002 now. */
static int frame_guard_says_close(struct lws *wsi, enum lws_callback_reasons reason) {
  int fd = lws_get_socket_fd(wsi);
  switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
      gw_frame_guard_bind(fd, wsi);
      return 0;
    case LWS_CALLBACK_CLOSED:
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_WSI_DESTROY:
      gw_frame_guard_bind(fd, NULL); /* the callback must never see a freed wsi */
      return 0;
    case LWS_CALLBACK_RECEIVE:
    case LWS_CALLBACK_RECEIVE_PONG:
      if (!gw_frame_guard_armed(fd)) return 0; /* a frame from before the bad one */
      break;
    case LWS_CALLBACK_SERVER_WRITEABLE: {
      if (!gw_frame_guard_violated(fd)) return 0;
      pss_t *pss = lws_wsi_user(wsi);
      if (pss && pss->conn && pss->conn->proto == GW_PROTO_WS) {
        /* /ws: its own close, after the answers to the frames before the bad one are sent */
        gw_log(GW_LOG_INFO, pss->conn->id, "closing 1002: the client sent an unmasked frame (RFC 6455 section 5.1)");
        gw_stats_error("protocol_error");
        gw_frame_guard_forget(fd);
        gw_server_close(pss->conn, GW_CLOSE_PROTOCOL_ERROR, "unmasked frame");
        return 0;
      }
      if (!gw_frame_guard_armed(fd)) {
        /* the answers to the frames before the bad one get one writeable pass first */
        gw_frame_guard_arm(fd);
        lws_callback_on_writable(wsi);
        return 0;
      }
      break;
    }
    default:
      return 0;
  }
  static const char why[] = "unmasked frame";
  gw_log(GW_LOG_INFO, 0, "closing 1002: the client sent an unmasked frame (RFC 6455 section 5.1)");
  gw_stats_error("protocol_error");
  gw_frame_guard_bind(fd, NULL);
  lws_close_reason(wsi, GW_CLOSE_PROTOCOL_ERROR, (unsigned char *)why, sizeof why - 1);
  return 1;
}

/* ---- the one protocol callback ------------------------------------------------------- */

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len) {
  pss_t *pss = user;
  int eio_rc; /* /socket.io/ (Engine.IO): server_eio.c */
  if (!is_admin(wsi) && frame_guard_says_close(wsi, reason)) return -1;
  if (!is_admin(wsi) && gw_server_eio_callback(wsi, (int)reason, pss ? &pss->eio : NULL, in, len, &eio_rc))
    return eio_rc;
  switch (reason) {
    case LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS:
      /* while the TLS vhost is created: its SSL_CTX, for tls.c (checked in lws 4.1.6) */
      if (g_server) g_server->ssl_ctx = user;
      return 0;
    case LWS_CALLBACK_HTTP:
      if (is_admin(wsi)) return admin_http(wsi, pss, in ? (const char *)in : "/");
      return http_route(wsi, pss, in ? (const char *)in : "/");
    case LWS_CALLBACK_HTTP_BODY:
      return admin_body(pss, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
      return admin_body_done(wsi, pss);
    case LWS_CALLBACK_HTTP_WRITEABLE:
      return http_writeable(wsi, pss);
    case LWS_CALLBACK_CLOSED_HTTP:
      if (pss) {
        free(pss->body);
        pss->body = NULL;
        admin_free(pss);
        admin_waiter_drop(pss);
      }
      break;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
      char path[256];
      header(wsi, WSI_TOKEN_GET_URI, path, sizeof path);
      if (strcmp(path, "/ws") != 0 || is_admin(wsi)) {
        gw_log(GW_LOG_DEBUG, 0, "refusing a WebSocket upgrade for %s", path);
        lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL);
        return -1;
      }
      if (gw_loop_draining()) {
        lws_return_http_status(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, NULL);
        return -1;
      }
      char peer[48];
      double retry = 0;
      const char *why = NULL;
      lws_get_peer_simple(wsi, peer, sizeof peer);
      if (gw_ratelimit_admit_now(peer, &retry, &why)) return gw_lws_refuse_limited(wsi, retry, why);
      return ws_filter(wsi, pss);
    }
    case LWS_CALLBACK_ESTABLISHED:
      return ws_established(wsi, pss);
    case LWS_CALLBACK_RECEIVE:
      return pss->conn ? ws_receive(wsi, pss->conn, in, len) : -1;
    case LWS_CALLBACK_RECEIVE_PONG:
      if (pss->conn) ws_pong(pss->conn, in, len);
      return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
      return pss->conn ? ws_writeable(wsi, pss->conn) : 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
      if (pss->conn) pss->conn->last_rx_ms = gw_clock_now_ms();
      return gw_lws_check_peer_close(wsi, in, len);
    case LWS_CALLBACK_CLOSED:
      ws_closed(pss, "closed");
      return 0;
    case LWS_CALLBACK_WSI_DESTROY:
      if (pss && pss->conn) ws_closed(pss, "destroyed");
      admin_waiter_drop(pss);
      if (pss) {
        free(pss->body);
        pss->body = NULL;
        admin_free(pss);
      }
      return 0;
    default:
      break;
  }
  return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
    {"aivo", callback, sizeof(pss_t), RX_CHUNK, 0, NULL, TX_CHUNK},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* The gateway owns signals; lws must not act on them. */
static void ignore_signal(void *handle, int signum) {
  (void)handle;
  (void)signum;
}

static void on_head(int fd, void *ud) {
  gw_server_t *s = ud;
  /* lws closes fd itself when it cannot adopt it */
  if (!lws_adopt_socket_vhost(s->vh, fd)) gw_warn("could not hand a new connection to lws");
}

static void on_accepted(int fd, void *ud) {
  gw_server_t *s = ud;
  if (gw_frame_guard_watch(fd, s->tls != NULL)) gw_warn("out of memory: a connection's frames are not checked for masking");
  /* plain HTTP: the first request's head is read here, so a head lws cannot hold gets a 431
   * (headread.h); TLS: lws reads it (over its header space: closed without an answer) */
  if (!s->tls) {
    gw_headread_start(s->loop, fd, GW_HTTP_HEADER_MAX, HEAD_TIMEOUT_S, on_head, s);
    return;
  }
  /* lws closes fd itself when it cannot adopt it */
  if (!lws_adopt_socket_vhost(s->vh, fd)) gw_warn("could not hand a new connection to lws");
}

gw_server_t *gw_server_new(gw_loop_t *loop, const gw_server_opts_t *o, char *err, size_t errlen) {
  gw_server_t *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  g_server = s;
  s->admin_handler = o->admin_handler;
  s->not_ready = o->not_ready;
  gw_server_eio_register();
  gw_frame_guard_set_callback(on_unmasked);
  s->loop = loop;
  s->foreign_loops[0] = loop;
  lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);
  /* TLS: the files are checked before anything starts, so a bad certificate is refused
   * with its name, never served, never silently replaced by plain HTTP */
  if (o->tls_cert && !(s->tls = gw_tls_load(o->tls_cert, o->tls_key, err, errlen))) {
    free(s);
    g_server = NULL;
    return NULL;
  }

  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.options = LWS_SERVER_OPTION_LIBEV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS |
                 LWS_SERVER_OPTION_VALIDATE_UTF8 | (s->tls ? LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT : 0);
  info.foreign_loops = s->foreign_loops;
  info.signal_cb = ignore_signal;
  info.port = CONTEXT_PORT_NO_LISTEN;
  /* lws clears s->ctx once a destroy on the foreign loop has really finished */
  info.pcontext = &s->ctx;
  /* every request's headers, held by lws while it is parsed or served (a parked polling GET
   * holds its own); lws's default of 4 KiB dropped an 8 KiB token (docs/security.md) */
  info.max_http_header_data = LWS_HEADER_SPACE;
  s->ctx = lws_create_context(&info);
  if (!s->ctx) {
    snprintf(err, errlen, "cannot create the libwebsockets context (is libwebsockets-evlib-ev installed?)");
    gw_tls_free(s->tls);
    free(s);
    g_server = NULL;
    return NULL;
  }

  /* The gateway listens itself (listener.c) and hands accepted sockets to this vhost: lws 4.1
   * cannot set SO_REUSEPORT, binds an IPv4 address on an IPv6 socket as [::], and crashes
   * in lws_context_deprecate() when asked to stop listening. */
  struct lws_context_creation_info vinfo;
  memset(&vinfo, 0, sizeof vinfo);
  vinfo.port = CONTEXT_PORT_NO_LISTEN_SERVER;
  vinfo.protocols = protocols;
  vinfo.vhost_name = "aivo";
  vinfo.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
  vinfo.timeout_secs = 10; /* HTTP requests and handshakes that stall */
  /* No lws "validity" timer: the gateway keeps its own keepalive, and lws 4.1 re-arms that
   * timer on every pong in one sorted list per thread, an O(connections) walk per pong
   * (two thirds of the CPU with 10,000 connections held, docs/benchmarks.md). */
  static const lws_retry_bo_t no_validity = {.secs_since_valid_ping = 0, .secs_since_valid_hangup = 0};
  vinfo.retry_and_idle_policy = &no_validity;
  if (s->tls) { /* the admin API keeps a plain vhost of its own */
    vinfo.vhost_name = "aivo-admin";
    s->admin_vh = lws_create_vhost(s->ctx, &vinfo);
    vinfo.vhost_name = "aivo";
    vinfo.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    vinfo.ssl_cert_filepath = o->tls_cert;
    vinfo.ssl_private_key_filepath = o->tls_key;
  }
  s->vh = lws_create_vhost(s->ctx, &vinfo);
  char terr[256];
  if (s->vh && s->tls && (!s->admin_vh || gw_tls_attach(s->tls, s->ssl_ctx, terr, sizeof terr))) {
    snprintf(err, errlen, "TLS: %s", s->admin_vh ? terr : "cannot create the admin vhost");
  } else if (s->vh) {
    s->listener = gw_listener_new(loop, o->host, o->port, o->reuse_port, on_accepted, s, err, errlen);
    if (s->tls) gw_info("TLS on (TLS 1.2+): %s", gw_tls_describe(s->tls));
  } else {
    snprintf(err, errlen, "cannot create the libwebsockets vhost%s", s->tls ? " (TLS: see the lws error above)" : "");
  }
  if (!s->listener) {
    gw_server_destroy_begin(s);
    ev_run(loop, 0);
    gw_server_destroy_finish(s);
    return NULL;
  }
  s->port = gw_listener_port(s->listener);
  if (o->admin_port >= 0 && admin_start(s, o, err, errlen)) {
    if (o->admin_required) {
      gw_server_destroy_begin(s);
      ev_run(loop, 0);
      gw_server_destroy_finish(s);
      return NULL;
    }
    gw_warn("admin API disabled: %s", err);
  }
  return s;
}

int gw_server_admin_port(const gw_server_t *s) {
  return s->admin_listener ? gw_listener_port(s->admin_listener) : -1;
}

int gw_server_port(const gw_server_t *s) { return s->port; }

void gw_server_stop_accepting(gw_server_t *s) {
  gw_listener_close(s->listener);
  gw_listener_close(s->admin_listener);
}

void gw_server_destroy_begin(gw_server_t *s) {
  if (!s) return;
  gw_listener_free(s->listener);
  s->listener = NULL;
  gw_listener_free(s->admin_listener);
  s->admin_listener = NULL;
  gw_headread_shutdown(); /* connections not yet handed to lws */
  gw_eio_shutdown(); /* Socket.IO sessions: their sockets go now, their links with lws */
  if (s->ctx) lws_context_destroy(s->ctx);
}

void gw_server_reload_tls(gw_server_t *s) {
  if (!s || !s->tls) return;
  char err[512];
  if (gw_tls_reload(s->tls, err, sizeof err))
    gw_error("TLS certificate reload failed, the current certificate stays: %s", err);
  else
    gw_info("TLS certificate reloaded: %s", gw_tls_describe(s->tls));
}

void gw_server_destroy_finish(gw_server_t *s) {
  if (!s) return;
  if (s->ctx) lws_context_destroy(s->ctx); /* only if the loop did not finish it */
  gw_tls_free(s->tls); /* after lws: no handshake can ask for it any more */
  if (g_server == s) g_server = NULL;
  free(s);
  gw_rxbuf_release_spare(); /* no connection is left to assemble a message */
  gw_frame_guard_shutdown();
}
