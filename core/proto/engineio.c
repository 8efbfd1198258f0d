#include "engineio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "clock.h"
#include "close_codes.h"
#include "errors.h"
#include "log.h"
#include "ratelimit.h"
#include "stats.h"

/* ---- packets and payloads ------------------------------------------------------------- */

const char *gw_eio_error_body(int code) {
  switch (code) {
    case GW_EIO_ERR_TRANSPORT: return "{\"code\":0,\"message\":\"Transport unknown\"}";
    case GW_EIO_ERR_SID: return "{\"code\":1,\"message\":\"Session ID unknown\"}";
    case GW_EIO_ERR_METHOD: return "{\"code\":2,\"message\":\"Bad handshake method\"}";
    case GW_EIO_ERR_FORBIDDEN: return "{\"code\":4,\"message\":\"Forbidden\"}";
    case GW_EIO_ERR_VERSION: return "{\"code\":5,\"message\":\"Unsupported protocol version\"}";
    default: return "{\"code\":3,\"message\":\"Bad request\"}";
  }
}

unsigned gw_eio_error_status(int code) { return code == GW_EIO_ERR_FORBIDDEN ? 403 : 400; }

int gw_eio_query_get(const char *query, const char *name, char *out, size_t cap) {
  size_t nlen = strlen(name);
  for (const char *p = query; p && *p;) {
    const char *end = strchr(p, '&');
    size_t plen = end ? (size_t)(end - p) : strlen(p);
    if (plen >= nlen && memcmp(p, name, nlen) == 0 && (plen == nlen || p[nlen] == '=')) {
      const char *v = plen > nlen ? p + nlen + 1 : p + nlen;
      size_t vlen = plen > nlen ? plen - nlen - 1 : 0;
      if (vlen >= cap) return -1;
      memcpy(out, v, vlen);
      out[vlen] = 0;
      return 0;
    }
    p = end ? end + 1 : NULL;
  }
  return -1;
}

int gw_eio_check_query(const char *query, gw_eio_transport_t *t, char *sid, size_t sidcap) {
  char v[16];
  if (gw_eio_query_get(query, "EIO", v, sizeof v) || strcmp(v, "4") != 0) return GW_EIO_ERR_VERSION;
  if (gw_eio_query_get(query, "transport", v, sizeof v)) return GW_EIO_ERR_TRANSPORT;
  if (strcmp(v, "polling") == 0) *t = GW_EIO_POLLING;
  else if (strcmp(v, "websocket") == 0) *t = GW_EIO_WEBSOCKET;
  else return GW_EIO_ERR_TRANSPORT;
  if (gw_eio_query_get(query, "sid", sid, sidcap)) sid[0] = 0;
  return -1;
}

size_t gw_eio_open_packet(char *out, size_t cap, const char *sid, int can_upgrade,
                          unsigned ping_interval_ms, unsigned ping_timeout_ms, size_t max_payload) {
  int n = snprintf(out, cap,
                   "0{\"sid\":\"%s\",\"upgrades\":%s,\"pingInterval\":%u,\"pingTimeout\":%u,"
                   "\"maxPayload\":%zu}",
                   sid, can_upgrade ? "[\"websocket\"]" : "[]", ping_interval_ms, ping_timeout_ms,
                   max_payload);
  return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

int gw_eio_payload_append(gw_strbuf_t *out, const unsigned char *data, size_t len, int binary) {
  size_t need = 1 + (binary ? 1 + GW_BASE64_LEN(len) : len);
  if (gw_strbuf_reserve(out, need)) return -1;
  if (out->len) out->p[out->len++] = GW_EIO_SEPARATOR;
  if (binary) {
    out->p[out->len++] = 'b';
    out->len += gw_base64_encode(data, len, out->p + out->len);
  } else {
    memcpy(out->p + out->len, data, len);
    out->len += len;
  }
  return 0;
}

int gw_eio_payload_decode(const char *body, size_t len, gw_strbuf_t *scratch, gw_eio_packet_cb cb,
                          void *ud) {
  const char *p = body, *end = body + len;
  if (len == 0) return -1;
  while (p <= end) {
    const char *sep = memchr(p, GW_EIO_SEPARATOR, (size_t)(end - p));
    const char *pend = sep ? sep : end;
    size_t plen = (size_t)(pend - p);
    if (plen == 0) return -1;
    int rc;
    if (p[0] == 'b') {
      scratch->len = 0;
      if (gw_strbuf_reserve(scratch, GW_BASE64_DECODED_MAX(plen - 1))) return -1;
      size_t blen;
      if (gw_base64_decode(p + 1, plen - 1, (unsigned char *)scratch->p, &blen)) return -1;
      rc = cb(ud, (const unsigned char *)scratch->p, blen, 1);
    } else {
      rc = cb(ud, (const unsigned char *)p, plen, 0);
    }
    if (rc) return rc;
    if (!sep) break;
    p = sep + 1;
  }
  return 0;
}

/* ---- configuration --------------------------------------------------------------------- */

static const gw_eio_links_t *g_links;
void gw_eio_set_links(const gw_eio_links_t *links) { g_links = links; }

static const gw_eio_upper_t *g_upper;
void gw_eio_set_upper(const gw_eio_upper_t *upper) { g_upper = upper; }

static const gw_eio_cfg_t CFG_DEFAULTS = GW_EIO_CFG_DEFAULTS;
const gw_eio_cfg_t *gw_eio_cfg(void) {
  const gw_settings_t *s = gw_settings();
  return s ? &s->socketio : &CFG_DEFAULTS;
}

/* ---- sessions ---------------------------------------------------------------------------- */

static gw_eio_t *g_sessions;
static gw_eio_t *g_reap_head;
static ev_timer g_reaper;
static int g_reaper_init;

/* Control packets, shared by every session. */
enum { CTL_PING, CTL_PONG, CTL_NOOP, CTL_PROBE, CTL_COUNT };
static gw_msgbuf_t *g_ctl[CTL_COUNT];

static gw_msgbuf_t *ctl(int which) {
  static const char *const text[CTL_COUNT] = {"2", "3", "6", "3probe"};
  if (!g_ctl[which]) g_ctl[which] = gw_msgbuf_from(text[which], strlen(text[which]), 0);
  return g_ctl[which];
}

#define OWNER(ptr, field) ((gw_eio_t *)((char *)(ptr) - offsetof(gw_eio_t, field)))

static void maybe_free(gw_eio_t *s);
static void do_close(gw_eio_t *s);

static void reaper_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop, (void)w, (void)revents;
  while (g_reap_head) {
    gw_eio_t *s = g_reap_head;
    g_reap_head = s->reap_next;
    s->reap_next = NULL;
    s->reap_queued = 0;
    if (s->reap_sockets && s->state == GW_EIO_S_OPEN) {
      s->reap_sockets = 0;
      g_upper->reap(s);
    }
    if (s->close_asked && s->state == GW_EIO_S_OPEN) do_close(s);
    else maybe_free(s);
  }
}

static void reap_later(gw_eio_t *s) {
  if (!s->reap_queued) {
    s->reap_queued = 1;
    s->reap_next = g_reap_head;
    g_reap_head = s;
  }
  struct ev_loop *loop = gw_loop_main();
  if (!g_reaper_init) {
    ev_timer_init(&g_reaper, reaper_cb, 0, 0);
    g_reaper_init = 1;
  }
  if (loop && !ev_is_active(&g_reaper)) {
    ev_timer_set(&g_reaper, 0, 0);
    ev_timer_start(loop, &g_reaper);
  }
}

static void wake(gw_eio_link_t *l) {
  if (l && g_links) g_links->wake(l);
}

static void start_timer(gw_eio_t *s, ev_timer *t, unsigned ms) {
  struct ev_loop *loop = gw_loop_main();
  if (!loop) return;
  ev_timer_stop(loop, t);
  ev_timer_set(t, ms / 1000.0, 0);
  ev_timer_start(loop, t);
  (void)s;
}

static void stop_timers(gw_eio_t *s) {
  struct ev_loop *loop = gw_loop_main();
  if (!loop) return;
  ev_timer_stop(loop, &s->heartbeat);
  ev_timer_stop(loop, &s->connect_timer);
  ev_timer_stop(loop, &s->upgrade_timer);
  ev_timer_stop(loop, &s->close_timer);
}

static void heartbeat_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop, (void)revents;
  gw_eio_t *s = OWNER(w, heartbeat);
  if (s->state != GW_EIO_S_OPEN || s->close_asked) return;
  if (s->ws && g_links && g_links->frame_too_big(s->ws)) return; /* its close ends the session */
  if (s->awaiting_pong) {
    gw_log(GW_LOG_INFO, 0, "socket.io session %s: no pong within %u ms, closing (ping timeout)", s->sid,
           s->cfg.ping_timeout_ms);
    gw_eio_close(s, "ping timeout", 0, GW_CLOSE_NORMAL);
    return;
  }
  s->awaiting_pong = 1;
  s->ping_sent_ms = gw_clock_now_ms();
  g_upper->on_ping(s);
  if (gw_eio_send(s, ctl(CTL_PING)) == 0) start_timer(s, &s->heartbeat, s->cfg.ping_timeout_ms);
}

static void connect_timer_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop, (void)revents;
  gw_eio_t *s = OWNER(w, connect_timer);
  if (s->state == GW_EIO_S_OPEN && g_upper->socket_count(s) == 0) {
    gw_log(GW_LOG_DEBUG, 0, "socket.io session %s: no namespace connected within %u ms, closing", s->sid,
           s->cfg.connect_timeout_ms);
    gw_eio_close(s, "connect timeout", 1, GW_CLOSE_NORMAL);
  }
}

static void upgrade_timer_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop, (void)revents;
  gw_eio_t *s = OWNER(w, upgrade_timer);
  if (s->probe) { /* the probe never finished: it goes, polling goes on */
    gw_eio_link_t *l = s->probe;
    s->probe = NULL;
    s->probe_answered = s->probe_reply_due = 0;
    wake(l);
  }
}

static void close_timer_cb(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop, (void)revents;
  gw_eio_t *s = OWNER(w, close_timer);
  if (s->state == GW_EIO_S_CLOSING) { /* nobody came for the close packet */
    s->state = GW_EIO_S_CLOSED;
    maybe_free(s);
  }
}

static char *dup_or_empty(const char *s) { return strdup(s ? s : ""); }

gw_eio_t *gw_eio_new(gw_eio_transport_t t, const gw_eio_req_t *req) {
  gw_eio_t *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->query = dup_or_empty(req->query);
  s->origin = req->origin ? strdup(req->origin) : NULL;
  s->user_agent = req->user_agent ? strdup(req->user_agent) : NULL;
  if (!s->query) {
    free(s->origin);
    free(s->user_agent);
    free(s);
    return NULL;
  }
  snprintf(s->remote, sizeof s->remote, "%s", req->remote ? req->remote : "");
  do gw_base64url_random(s->sid, 15);
  while (gw_eio_find(s->sid));
  s->transport = t;
  s->cfg = *gw_eio_cfg();
  gw_sendq_init(&s->q);
  ev_init(&s->heartbeat, heartbeat_cb);
  ev_init(&s->connect_timer, connect_timer_cb);
  ev_init(&s->upgrade_timer, upgrade_timer_cb);
  ev_init(&s->close_timer, close_timer_cb);
  HASH_ADD_STR(g_sessions, sid, s);
  gw_ratelimit_conn_opened(s->remote); /* admitted by server_eio.c (gw_ratelimit_admit_now) */
  s->ip_counted = 1;
  start_timer(s, &s->heartbeat, s->cfg.ping_interval_ms);
  start_timer(s, &s->connect_timer, s->cfg.connect_timeout_ms);
  gw_log(GW_LOG_DEBUG, 0, "socket.io session %s opened (%s) from %s", s->sid,
         t == GW_EIO_POLLING ? "polling" : "websocket", s->remote);
  return s;
}

gw_eio_t *gw_eio_find(const char *sid) {
  gw_eio_t *s;
  HASH_FIND_STR(g_sessions, sid, s);
  return s && s->state != GW_EIO_S_CLOSED ? s : NULL;
}

size_t gw_eio_count(void) { return HASH_COUNT(g_sessions); }

size_t gw_eio_handshake(gw_eio_t *s, char *out, size_t cap) {
  return gw_eio_open_packet(out, cap, s->sid, s->transport == GW_EIO_POLLING, s->cfg.ping_interval_ms,
                            s->cfg.ping_timeout_ms, s->cfg.max_payload);
}

static void unregister(gw_eio_t *s) {
  gw_eio_t *found;
  HASH_FIND_STR(g_sessions, s->sid, found);
  if (found == s) HASH_DEL(g_sessions, s);
  if (s->ip_counted) {
    s->ip_counted = 0;
    gw_ratelimit_conn_closed(s->remote);
  }
}

/* Once closed: its sockets go (disconnect hooks run; never inside a hook: this runs from
 * the reaper, lws callbacks and timers), and the session itself when no link is left. */
static void maybe_free(gw_eio_t *s) {
  if (s->state != GW_EIO_S_CLOSED) return;
  unregister(s);
  if (s->sio) g_upper->session_closed(s, s->close_reason ? s->close_reason : "closed");
  if (s->links || s->reap_queued) return;
  stop_timers(s);
  gw_sendq_clear(&s->q);
  free(s->query);
  free(s->origin);
  free(s->user_agent);
  free(s);
}

int gw_eio_send(gw_eio_t *s, gw_msgbuf_t *b) {
  if (s->state != GW_EIO_S_OPEN || s->close_asked) return GW_ECLOSED;
  /* an open websocket with nothing queued ahead: straight to the socket when it can */
  if (s->transport == GW_EIO_WEBSOCKET && s->ws && gw_sendq_count(&s->q) == 0) {
    int w = g_links ? g_links->write_now(s->ws, b) : 1;
    if (w <= 0) return w < 0 ? GW_ECLOSED : 0;
  }
  const gw_settings_t *st = gw_settings();
  gw_sendq_set_total_budget(st->max_sendq_total_bytes);
  int rc = gw_sendq_push(&s->q, b, st->sendq_max_messages, st->sendq_max_bytes);
  if (rc == GW_SENDQ_TOTAL) {
    gw_log(GW_LOG_WARN, 0, "socket.io session %s: closing 1013, server.max_sendq_total_bytes spent", s->sid);
    gw_stats_budget_refusal("max_sendq_total_bytes");
    gw_sendq_clear(&s->q);
    gw_eio_close(s, "try again later: send queues full", 0, 1013);
    return GW_ELIMIT;
  }
  if (rc != GW_SENDQ_OK) {
    gw_log(GW_LOG_WARN, 0, "socket.io session %s: closing, slow consumer (%zu packets, %zu bytes queued)",
           s->sid, gw_sendq_count(&s->q), gw_sendq_bytes(&s->q));
    gw_stats_slow_consumer(gw_sendq_count(&s->q));
    gw_sendq_clear(&s->q);
    gw_eio_close(s, "slow consumer", 0, 4008);
    return GW_ELIMIT;
  }
  if (s->transport == GW_EIO_WEBSOCKET) wake(s->ws);
  else wake(s->poll);
  return 0;
}

void gw_eio_close(gw_eio_t *s, const char *reason, int graceful, int ws_code) {
  if (s->close_asked || s->state != GW_EIO_S_OPEN) return;
  s->close_asked = 1;
  s->close_graceful = graceful;
  s->close_noop = strcmp(reason, "client close") == 0;
  s->close_reason = reason;
  s->ws_close_code = ws_code ? ws_code : GW_CLOSE_NORMAL;
  g_upper->mark_closing(s, s->ws_close_code);
  reap_later(s);
}

void gw_eio_expect_connect(gw_eio_t *s) {
  if (s->state == GW_EIO_S_OPEN) start_timer(s, &s->connect_timer, s->cfg.connect_timeout_ms);
}

void gw_eio_reap_sockets(gw_eio_t *s) {
  s->reap_sockets = 1;
  reap_later(s);
}

/* The close itself: never inside a hook (the reaper, or shutdown). */
static void do_close(gw_eio_t *s) {
  s->state = GW_EIO_S_CLOSING;
  stop_timers(s);
  gw_log(GW_LOG_DEBUG, 0, "socket.io session %s closed (%s)", s->sid, s->close_reason);
  /* a graceful close keeps its sockets (closed for Lua already) until what is queued is
   * written, so a drain waits for it; then maybe_free closes them */
  if (s->probe) {
    wake(s->probe);
    s->probe = NULL;
  }
  if (s->close_graceful && s->transport == GW_EIO_POLLING && !s->poll) {
    /* a polling client learns of the close from its next GET: wait for it a while */
    start_timer(s, &s->close_timer, s->cfg.ping_timeout_ms);
    return;
  }
  if (!s->close_graceful) gw_sendq_clear(&s->q);
  if (!s->close_graceful || !(s->transport == GW_EIO_WEBSOCKET ? s->ws : s->poll)) {
    s->state = GW_EIO_S_CLOSED;
    unregister(s);
  }
  wake(s->ws);
  wake(s->poll);
  maybe_free(s);
}

void gw_eio_attach(gw_eio_t *s) { s->links++; }

void gw_eio_detach(gw_eio_t *s, gw_eio_link_t *l, int premature) {
  if (s->ws == l) {
    s->ws = NULL;
    if (s->state == GW_EIO_S_OPEN) gw_eio_close(s, "transport close", 0, GW_CLOSE_NORMAL);
    else if (s->state == GW_EIO_S_CLOSING) s->state = GW_EIO_S_CLOSED;
  }
  if (s->probe == l) {
    s->probe = NULL;
    s->probe_answered = s->probe_reply_due = 0;
  }
  if (s->poll == l) {
    s->poll = NULL;
    if (premature && s->state == GW_EIO_S_OPEN) gw_eio_close(s, "poll connection closed prematurely", 0, GW_CLOSE_NORMAL);
  }
  if (s->post == l) s->post = NULL;
  if (s->links) s->links--;
  maybe_free(s);
}

/* ---- polling ---------------------------------------------------------------------------- */

int gw_eio_poll_begin(gw_eio_t *s, gw_eio_link_t *l) {
  if (s->state == GW_EIO_S_CLOSED) return GW_EIO_ERR_SID;
  if (s->transport != GW_EIO_POLLING) return GW_EIO_ERR_BAD_REQUEST;
  if (s->poll) {
    gw_log(GW_LOG_INFO, 0, "socket.io session %s: overlapping polls, closing", s->sid);
    gw_eio_close(s, "overlapping polls", 0, GW_CLOSE_NORMAL);
    return GW_EIO_ERR_BAD_REQUEST;
  }
  s->poll = l;
  if (gw_sendq_count(&s->q) || s->state == GW_EIO_S_CLOSING || s->probe_answered) wake(l);
  return 0;
}

int gw_eio_poll_take(gw_eio_t *s, gw_eio_link_t *l, gw_strbuf_t *out) {
  out->len = 0;
  if (s->poll == l) s->poll = NULL;
  if (s->transport == GW_EIO_POLLING && s->state != GW_EIO_S_CLOSED) {
    gw_msgbuf_t *b;
    while ((b = gw_sendq_peek(&s->q))) {
      if (gw_eio_payload_append(out, gw_msgbuf_payload(b), b->len, b->binary)) return GW_ENOMEM;
      gw_sendq_pop(&s->q);
    }
  }
  int rc = 0;
  if (s->state == GW_EIO_S_CLOSING) {
    rc = gw_eio_payload_append(out, (const unsigned char *)"1", 1, 0);
    s->state = GW_EIO_S_CLOSED;
    unregister(s);
  } else if (s->state == GW_EIO_S_CLOSED) {
    rc = gw_eio_payload_append(out, (const unsigned char *)(s->close_noop ? "6" : "1"), 1, 0);
  } else if (out->len == 0) {
    rc = gw_eio_payload_append(out, (const unsigned char *)"6", 1, 0);
  }
  return rc ? GW_ENOMEM : 0;
}

int gw_eio_post_begin(gw_eio_t *s, gw_eio_link_t *l) {
  if (s->state != GW_EIO_S_OPEN || s->close_asked) return GW_EIO_ERR_SID;
  if (s->transport != GW_EIO_POLLING) return GW_EIO_ERR_BAD_REQUEST;
  if (s->post) {
    gw_log(GW_LOG_INFO, 0, "socket.io session %s: overlapping POSTs, closing", s->sid);
    gw_eio_close(s, "overlapping data requests", 0, GW_CLOSE_NORMAL);
    return GW_EIO_ERR_BAD_REQUEST;
  }
  s->post = l;
  return 0;
}

static void on_pong(gw_eio_t *s) {
  if (!s->awaiting_pong) return;
  s->awaiting_pong = 0;
  g_upper->on_pong(s, gw_clock_now_ms() - s->ping_sent_ms);
  if (s->state == GW_EIO_S_OPEN && !s->close_asked) start_timer(s, &s->heartbeat, s->cfg.ping_interval_ms);
}

/* One packet from the client on the session's transport. 0, or -1 when malformed. */
static int handle_packet(gw_eio_t *s, const unsigned char *data, size_t len, int binary) {
  if (s->close_asked || s->state != GW_EIO_S_OPEN) return 0;
  if (binary) return g_upper->on_packet(s, data, len, 1);
  if (len == 0) return -1;
  switch (data[0] - '0') {
    case GW_EIO_MESSAGE: return g_upper->on_packet(s, data + 1, len - 1, 0);
    case GW_EIO_PONG: on_pong(s); return 0;
    case GW_EIO_PING: { /* v4 clients do not ping; answer one all the same */
      gw_msgbuf_t *b = gw_msgbuf_new(len, 0);
      if (!b) return 0;
      memcpy(gw_msgbuf_payload(b), data, len);
      gw_msgbuf_payload(b)[0] = '3';
      gw_eio_send(s, b);
      gw_msgbuf_unref(b);
      return 0;
    }
    case GW_EIO_CLOSE: gw_eio_close(s, "client close", 0, GW_CLOSE_NORMAL); return 0;
    case GW_EIO_NOOP:
    case GW_EIO_UPGRADE: return 0;
    default: return -1;
  }
}

static int post_packet(void *ud, const unsigned char *data, size_t len, int binary) {
  gw_eio_t *s = ud;
  if (handle_packet(s, data, len, binary)) return -1;
  return s->close_asked ? 1 : 0; /* the rest of a closed session's payload is dropped */
}

int gw_eio_post_body(gw_eio_t *s, gw_eio_link_t *l, const char *body, size_t len) {
  if (s->post == l) s->post = NULL;
  gw_strbuf_t scratch = {0};
  int rc = gw_eio_payload_decode(body, len, &scratch, post_packet, s);
  gw_strbuf_free(&scratch);
  if (rc < 0) {
    gw_log(GW_LOG_INFO, 0, "socket.io session %s: malformed packet, closing", s->sid);
    gw_eio_close(s, "parse error", 0, GW_CLOSE_PROTOCOL_ERROR);
    return -1;
  }
  return 0;
}

/* ---- websocket ---------------------------------------------------------------------------- */

int gw_eio_ws_check(gw_eio_t *s) {
  if (!s || s->state != GW_EIO_S_OPEN || s->close_asked) return GW_EIO_ERR_SID;
  if (s->transport != GW_EIO_POLLING || s->probe || s->ws) return GW_EIO_ERR_BAD_REQUEST;
  return 0;
}

int gw_eio_ws_begin(gw_eio_t *s, gw_eio_link_t *l) {
  if (s->transport == GW_EIO_WEBSOCKET && !s->ws && s->state == GW_EIO_S_OPEN) {
    s->ws = l;
    wake(l);
    return 0;
  }
  int rc = gw_eio_ws_check(s);
  if (rc) return rc;
  s->probe = l;
  start_timer(s, &s->upgrade_timer, s->cfg.upgrade_timeout_ms);
  return 0;
}

static void probe_message(gw_eio_t *s, gw_eio_link_t *l, const unsigned char *data, size_t len,
                          int binary) {
  if (!binary && len == 6 && memcmp(data, "2probe", 6) == 0 && !s->probe_answered) {
    s->probe_reply_due = 1;
    s->probe_answered = 1;
    wake(l);
    wake(s->poll); /* the client pauses polling: let its pending GET return (noop) */
    return;
  }
  if (!binary && len == 1 && data[0] == '5' && s->probe_answered && s->state == GW_EIO_S_OPEN) {
    struct ev_loop *loop = gw_loop_main();
    if (loop) ev_timer_stop(loop, &s->upgrade_timer);
    s->transport = GW_EIO_WEBSOCKET;
    s->ws = l;
    s->probe = NULL;
    s->probe_answered = s->probe_reply_due = 0;
    gw_log(GW_LOG_DEBUG, 0, "socket.io session %s upgraded to websocket", s->sid);
    wake(s->poll); /* answered with a noop: everything else goes over the websocket now */
    wake(l);
    return;
  }
  /* anything else on a probe: it goes, polling goes on */
  s->probe = NULL;
  s->probe_answered = s->probe_reply_due = 0;
  wake(l);
}

void gw_eio_ws_message(gw_eio_t *s, gw_eio_link_t *l, const unsigned char *data, size_t len,
                       int binary) {
  if (l == s->probe) {
    probe_message(s, l, data, len, binary);
    return;
  }
  if (l != s->ws) return;
  if (handle_packet(s, data, len, binary)) {
    gw_log(GW_LOG_INFO, 0, "socket.io session %s: malformed packet, closing", s->sid);
    gw_eio_close(s, "parse error", 0, GW_CLOSE_PROTOCOL_ERROR);
  }
}

gw_msgbuf_t *gw_eio_ws_next(gw_eio_t *s, gw_eio_link_t *l, int *close_code) {
  *close_code = 0;
  if (l == s->probe) {
    if (!s->probe_reply_due) return NULL;
    s->probe_reply_due = 0;
    return gw_msgbuf_ref(ctl(CTL_PROBE));
  }
  if (l != s->ws) { /* a refused probe, or a transport whose session is gone */
    *close_code = s->state == GW_EIO_S_OPEN ? GW_CLOSE_NORMAL : s->ws_close_code;
    return NULL;
  }
  if (s->state != GW_EIO_S_CLOSED) {
    gw_msgbuf_t *b = gw_sendq_peek(&s->q);
    if (b) {
      gw_msgbuf_ref(b);
      gw_sendq_pop(&s->q);
      return b;
    }
  }
  if (s->state == GW_EIO_S_CLOSING) {
    s->state = GW_EIO_S_CLOSED;
    unregister(s);
  }
  if (s->state == GW_EIO_S_CLOSED) *close_code = s->ws_close_code;
  return NULL;
}

void gw_eio_shutdown(void) {
  gw_eio_t *s, *tmp;
  HASH_ITER(hh, g_sessions, s, tmp) {
    if (s->state == GW_EIO_S_OPEN) {
      if (!s->close_asked) gw_eio_close(s, "server shutting down", 0, GW_CLOSE_GOING_AWAY);
      do_close(s);
    } else if (s->state == GW_EIO_S_CLOSING) {
      s->state = GW_EIO_S_CLOSED;
      maybe_free(s);
    }
  }
  /* what is left waits for its links, which lws closes now */
  struct ev_loop *loop = gw_loop_main();
  if (loop && g_reaper_init) ev_timer_stop(loop, &g_reaper);
  while (g_reap_head) {
    gw_eio_t *r = g_reap_head;
    g_reap_head = r->reap_next;
    r->reap_next = NULL;
    r->reap_queued = 0;
    maybe_free(r);
  }
}
