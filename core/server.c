#include "server.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "errors.h"
#include "admin.h"
#include "gateway.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "stats.h"

_Static_assert(GW_MSGBUF_PRE >= LWS_PRE, "message buffer headroom must cover LWS_PRE");

#define RX_CHUNK 65536 /* lws delivers big frames in pieces of at most this */

struct gw_server {
  struct lws_context *ctx;
  struct lws_vhost *vh;
  gw_loop_t *loop;
  void *foreign_loops[1];
  int port;
  gw_listener_t *listener;
  gw_listener_t *admin_listener; /* the admin API's */
};

/* Per-wsi data: a WebSocket's connection, or an HTTP response being written. */
typedef struct pss {
  gw_conn_t *conn;
  char *body; /* HTTP: LWS_PRE + body */
  size_t body_len;
  struct admin_req *admin; /* an admin API request being read */
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
  gw_gateway_refresh_stats();
  gw_strbuf_t b = {0};
  int rc = gw_metrics_render(&b) ? http_respond(wsi, pss, 500, "text/plain", "out of memory\n")
                                 : http_respond_n(wsi, pss, 200, "text/plain; version=0.0.4; charset=utf-8",
                                                  b.p, b.len);
  gw_strbuf_free(&b);
  return rc;
}

static int http_route(struct lws *wsi, pss_t *pss, const char *uri) {
  if (strcmp(uri, "/metrics/prometheus") == 0 || strcmp(uri, "/metrics") == 0) return metrics_respond(wsi, pss);
  if (strcmp(uri, "/healthz") == 0) return http_respond(wsi, pss, 200, "text/plain", "ok\n");
  if (strcmp(uri, "/readyz") == 0)
    return gw_gateway_draining() ? http_respond(wsi, pss, 503, "text/plain", "draining\n")
                                 : http_respond(wsi, pss, 200, "text/plain", "ready\n");
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

static void kill_now(gw_conn_t *c) {
  lws_set_timeout(wsi_of(c), PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

static void keepalive_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop;
  (void)revents;
  gw_conn_t *c = (gw_conn_t *)((char *)w - offsetof(gw_conn_t, keepalive));
  const gw_settings_t *s = gw_settings();
  double now = gw_gateway_now_ms();
  if (now - c->last_rx_ms > s->idle_timeout_s * 1000) {
    gw_log(GW_LOG_INFO, c->id, "closing: nothing received for %.0f s (idle timeout)",
           (now - c->last_rx_ms) / 1000);
    gw_stats_error("idle_timeout");
    ev_timer_stop(g_server->loop, &c->keepalive);
    kill_now(c);
    return;
  }
  if (now - c->last_ping_ms >= s->ping_interval_s * 1000 && !c->close_code) {
    c->ping_due = 1;
    c->last_ping_ms = now;
    lws_callback_on_writable(wsi_of(c));
  }
}

static void header(struct lws *wsi, enum lws_token_indexes tok, char *buf, size_t cap) {
  buf[0] = 0;
  if (lws_hdr_total_length(wsi, tok) > 0) lws_hdr_copy(wsi, buf, (int)cap, tok);
}

static int ws_established(struct lws *wsi, pss_t *pss) {
  gw_conn_t *c = gw_conn_new();
  if (!c) return -1;
  pss->conn = c;
  c->transport = wsi;
  c->proto = GW_PROTO_WS;
  lws_get_peer_simple(wsi, c->remote, sizeof c->remote);
  c->connected_at_ms = c->last_rx_ms = c->last_ping_ms = gw_gateway_now_ms();

  char path[256], query[1024], origin[256], ua[256];
  header(wsi, WSI_TOKEN_GET_URI, path, sizeof path);
  header(wsi, WSI_TOKEN_HTTP_URI_ARGS, query, sizeof query);
  header(wsi, WSI_TOKEN_ORIGIN, origin, sizeof origin);
  header(wsi, WSI_TOKEN_HTTP_USER_AGENT, ua, sizeof ua);
  gw_request_t req = {path, query, origin[0] ? origin : NULL, ua[0] ? ua : NULL};

  char reason[124];
  int code = gw_gateway_conn_open(c, &req, reason, sizeof reason);
  if (code) {
    lws_close_reason(wsi, (enum lws_close_status)code, (unsigned char *)reason, strlen(reason));
    return -1;
  }
  double every = gw_settings()->ping_interval_s / 2;
  ev_timer_init(&c->keepalive, keepalive_cb, every, every);
  ev_timer_start(g_server->loop, &c->keepalive);
  return 0;
}

static int ws_receive(struct lws *wsi, gw_conn_t *c, const unsigned char *in, size_t len) {
  c->last_rx_ms = gw_gateway_now_ms();
  size_t max = gw_settings()->max_message_size;
  int first = lws_is_first_fragment(wsi), final = lws_is_final_fragment(wsi);
  if (first) {
    c->rx_len = 0;
    c->rx_binary = lws_frame_is_binary(wsi);
  }
  if (c->rx_len + len > max) {
    gw_log(GW_LOG_INFO, c->id, "closing 1009: message larger than %zu bytes", max);
    gw_stats_error("message_too_big");
    static const char why[] = "message too big";
    lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, (unsigned char *)why, sizeof why - 1);
    return -1;
  }
  if (c->close_code) return 0; /* closing: nothing more is handled */
  if (first && final) { /* the common case: no copy */
    gw_gateway_conn_message(c, in, len, c->rx_binary);
    return 0;
  }
  if (c->rx_len + len > c->rx_cap) {
    size_t ncap = c->rx_cap ? c->rx_cap : 4096;
    while (ncap < c->rx_len + len) ncap *= 2;
    unsigned char *n = realloc(c->rx, ncap);
    if (!n) return -1;
    c->rx = n;
    c->rx_cap = ncap;
  }
  memcpy(c->rx + c->rx_len, in, len);
  c->rx_len += len;
  if (final) {
    gw_gateway_conn_message(c, c->rx, c->rx_len, c->rx_binary);
    c->rx_len = 0;
    if (c->rx_cap > 65536) { /* do not keep a big buffer per idle connection */
      free(c->rx);
      c->rx = NULL;
      c->rx_cap = 0;
    }
  }
  return 0;
}

static void ws_pong(gw_conn_t *c, const void *in, size_t len) {
  double now = gw_gateway_now_ms();
  c->last_rx_ms = now;
  double sent;
  if (len != sizeof sent) return; /* unsolicited pong: still proof of life */
  memcpy(&sent, in, sizeof sent);
  if (sent != c->ping_sent_ms) return; /* stale: an older ping's answer */
  c->rtt_ms = now - sent;
  c->pongs_received++;
}

static int ws_writeable(struct lws *wsi, gw_conn_t *c) {
  if (c->ping_due) {
    unsigned char buf[LWS_PRE + sizeof(double)];
    c->ping_due = 0;
    c->ping_sent_ms = gw_gateway_now_ms();
    c->pings_sent++;
    memcpy(buf + LWS_PRE, &c->ping_sent_ms, sizeof(double));
    if (lws_write(wsi, buf + LWS_PRE, sizeof(double), LWS_WRITE_PING) < (int)sizeof(double)) return -1;
    if (gw_sendq_count(&c->sendq) || c->close_code) lws_callback_on_writable(wsi);
    return 0;
  }
  gw_msgbuf_t *b = gw_sendq_peek(&c->sendq);
  if (b) {
    int n = lws_write(wsi, gw_msgbuf_payload(b), b->len, b->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
    size_t len = b->len;
    gw_sendq_pop(&c->sendq);
    if (n < (int)len) return -1;
    gw_series_add(gw_stats.messages_sent, 1);
    gw_series_add(gw_stats.bytes_sent, (double)len);
    if (gw_sendq_count(&c->sendq) || c->close_code) lws_callback_on_writable(wsi);
    return 0;
  }
  if (c->close_code) {
    lws_close_reason(wsi, (enum lws_close_status)c->close_code, (unsigned char *)c->close_reason,
                     strlen(c->close_reason));
    return -1;
  }
  return 0;
}

int gw_server_send(gw_conn_t *c, gw_msgbuf_t *b) {
  if (c->close_code || !c->transport) return GW_ECLOSED;
  const gw_settings_t *s = gw_settings();
  int rc = gw_sendq_push(&c->sendq, b, s->sendq_max_messages, s->sendq_max_bytes);
  if (rc == GW_SENDQ_OK) {
    if (gw_sendq_count(&c->sendq) == 1) lws_callback_on_writable(wsi_of(c));
    return 0;
  }
  /* slow-consumer rule: this connection goes; nobody else waits for it */
  gw_log(GW_LOG_WARN, c->id, "closing %d: slow consumer (%zu messages, %zu bytes queued)",
         GW_CLOSE_SLOW_CONSUMER, gw_sendq_count(&c->sendq), gw_sendq_bytes(&c->sendq));
  gw_gateway_count_slow_consumer(gw_sendq_count(&c->sendq));
  gw_sendq_clear(&c->sendq);
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
  gw_conn_t *c = pss->conn;
  if (!c) return;
  pss->conn = NULL;
  ev_timer_stop(g_server->loop, &c->keepalive);
  c->transport = NULL;
  gw_gateway_conn_closed(c, why);
}

/* ---- the admin API (its own listener, loopback by default; admin.c answers) -------------
 * Sockets accepted by the admin listener are marked with lws's opaque user data: lws picks
 * the vhost of an adopted socket again from the Host header, so a second vhost would not keep
 * admin requests apart. The public listener never serves /admin/. */

static char admin_mark;

static int is_admin(struct lws *wsi) { return lws_get_opaque_user_data(wsi) == &admin_mark; }

typedef struct admin_req {
  char method[8], path[128], *authorization;
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

static int admin_answer(struct lws *wsi, pss_t *pss) {
  admin_req_t *a = pss->admin;
  gw_admin_request_t req = {a->method, a->path, a->authorization, a->body, a->body_len};
  gw_admin_response_t res;
  gw_admin_handle(&req, &res);
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
  struct lws *wsi = lws_adopt_socket_vhost(s->vh, fd);
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

/* ---- the one protocol callback ------------------------------------------------------- */

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len) {
  pss_t *pss = user;
  switch (reason) {
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
      if (gw_gateway_draining()) {
        lws_return_http_status(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, NULL);
        return -1;
      }
      return 0;
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
      if (pss->conn) pss->conn->last_rx_ms = gw_gateway_now_ms();
      return 0;
    case LWS_CALLBACK_CLOSED:
      ws_closed(pss, "closed");
      return 0;
    case LWS_CALLBACK_WSI_DESTROY:
      if (pss && pss->conn) ws_closed(pss, "destroyed");
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
    {"aivo", callback, sizeof(pss_t), RX_CHUNK, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* The gateway owns signals; lws must not act on them. */
static void ignore_signal(void *handle, int signum) {
  (void)handle;
  (void)signum;
}

static void on_accepted(int fd, void *ud) {
  gw_server_t *s = ud;
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
  s->loop = loop;
  s->foreign_loops[0] = loop;
  lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);

  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.options = LWS_SERVER_OPTION_LIBEV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS |
                 LWS_SERVER_OPTION_VALIDATE_UTF8;
  info.foreign_loops = s->foreign_loops;
  info.signal_cb = ignore_signal;
  info.port = CONTEXT_PORT_NO_LISTEN;
  /* lws clears s->ctx once a destroy on the foreign loop has really finished */
  info.pcontext = &s->ctx;
  s->ctx = lws_create_context(&info);
  if (!s->ctx) {
    snprintf(err, errlen, "cannot create the libwebsockets context (is libwebsockets-evlib-ev installed?)");
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
  s->vh = lws_create_vhost(s->ctx, &vinfo);
  if (s->vh)
    s->listener = gw_listener_new(loop, o->host, o->port, o->reuse_port, on_accepted, s, err, errlen);
  else
    snprintf(err, errlen, "cannot create the libwebsockets vhost");
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
  if (s->ctx) lws_context_destroy(s->ctx);
}

void gw_server_destroy_finish(gw_server_t *s) {
  if (!s) return;
  if (s->ctx) lws_context_destroy(s->ctx); /* only if the loop did not finish it */
  if (g_server == s) g_server = NULL;
  free(s);
}
