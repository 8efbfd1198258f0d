#define _GNU_SOURCE /* memmem */
#include "socketio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <luajit-2.1/lauxlib.h>

#include "auth_session.h"
#include "base64.h"
#include "clock.h"
#include "close_codes.h"
#include "conn_quality.h"
#include "errors.h"
#include "json.h"
#include "log.h"
#include "pipeline.h"
#include "policy.h"
#include "quality.h"
#include "ratelimit.h"
#include "replay.h"
#include "room.h"
#include "rxbuf.h"
#include "sio_recovery.h"
#include "stats.h"

#define MAX_ACK_ID 9007199254740991ull /* 2^53 - 1: every id a JS client can send */
#define MAX_EVENT_NAME 200

/* ---- packets ------------------------------------------------------------------------ */

int gw_sio_parse(const char *s, size_t len, gw_sio_packet_t *p) {
  memset(p, 0, sizeof *p);
  p->nsp = "/";
  p->nsp_len = 1;
  if (len == 0 || s[0] < '0' || s[0] > '6') return -1;
  p->type = s[0] - '0';
  size_t i = 1;
  if (p->type == GW_SIO_BINARY_EVENT || p->type == GW_SIO_BINARY_ACK) {
    size_t start = i, n = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9' && i - start < 6) n = n * 10 + (size_t)(s[i++] - '0');
    if (i == start || i >= len || s[i] != '-' || n > GW_SIO_MAX_ATTACHMENTS) return -1;
    p->attachments = n;
    i++;
  }
  if (i < len && s[i] == '/') {
    size_t start = i;
    while (i < len && s[i] != ',') i++;
    p->nsp = s + start;
    p->nsp_len = i - start;
    if (i < len) i++; /* the ',' */
  }
  if (i < len && s[i] >= '0' && s[i] <= '9') {
    uint64_t id = 0;
    size_t start = i;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
      if (i - start >= 16) return -1;
      id = id * 10 + (uint64_t)(s[i++] - '0');
    }
    if (id > MAX_ACK_ID) return -1;
    p->has_id = 1;
    p->id = id;
  }
  p->data = s + i;
  p->data_len = len - i;
  switch (p->type) {
    case GW_SIO_CONNECT: return p->data_len == 0 || p->data[0] == '{' ? 0 : -1;
    case GW_SIO_DISCONNECT: return p->data_len == 0 && !p->has_id ? 0 : -1;
    case GW_SIO_EVENT:
    case GW_SIO_BINARY_EVENT:
    case GW_SIO_ACK:
    case GW_SIO_BINARY_ACK: return p->data_len > 0 && p->data[0] == '[' ? 0 : -1;
    default: return -1; /* CONNECT_ERROR only goes from server to client */
  }
}

static int is_root(const char *nsp, size_t nsp_len) {
  return !nsp || nsp_len == 0 || (nsp_len == 1 && nsp[0] == '/');
}

gw_msgbuf_t *gw_sio_packet_new(int type, size_t attachments, const char *nsp, size_t nsp_len,
                               int has_id, uint64_t id, const char *payload, size_t plen) {
  /* every event and ack goes through here: digits without snprintf */
  char head[3 + GW_JSON_INT_MAX];
  size_t hlen = 2;
  head[0] = '4';
  head[1] = (char)('0' + type); /* packet types are 0..6 */
  if (type == GW_SIO_BINARY_EVENT || type == GW_SIO_BINARY_ACK) {
    hlen += gw_json_int(head + hlen, (long long)attachments);
    head[hlen++] = '-';
  }
  int with_nsp = !is_root(nsp, nsp_len);
  char idbuf[GW_JSON_INT_MAX];
  size_t idlen = has_id ? gw_json_int(idbuf, (long long)id) : 0;
  size_t total = hlen + (with_nsp ? nsp_len + 1 : 0) + idlen + plen;
  gw_msgbuf_t *b = gw_msgbuf_new(total, 0);
  if (!b) return NULL;
  unsigned char *o = gw_msgbuf_payload(b);
  memcpy(o, head, hlen);
  o += hlen;
  if (with_nsp) {
    memcpy(o, nsp, nsp_len);
    o += nsp_len;
    *o++ = ',';
  }
  memcpy(o, idbuf, idlen);
  o += idlen;
  if (plen) memcpy(o, payload, plen);
  return b;
}

void gw_sio_pkts_clear(gw_sio_pkts_t *p) {
  for (size_t i = 0; i < p->n; i++) gw_msgbuf_unref(p->v[i]);
  free(p->v);
  memset(p, 0, sizeof *p);
}

static int pkts_push(gw_sio_pkts_t *p, gw_msgbuf_t *b) {
  if (!b) return -1;
  if (p->n == p->cap) {
    size_t ncap = p->cap ? p->cap * 2 : 4;
    gw_msgbuf_t **nv = realloc(p->v, ncap * sizeof *nv);
    if (!nv) {
      gw_msgbuf_unref(b);
      return -1;
    }
    p->v = nv;
    p->cap = ncap;
  }
  p->v[p->n++] = b;
  return 0;
}

/* The packets of one Socket.IO payload: every {"_binary":"<base64>"} in it becomes a
 * placeholder and an attachment. Slot 0 of out is the header packet of `type` (the binary
 * variant when there are attachments). */
static int build_packets(gw_sio_pkts_t *out, int type, const char *nsp, size_t nsp_len, int has_id,
                         uint64_t id, const char *payload, size_t plen) {
  static const char pat[] = "{\"_binary\":\"";
  const size_t patlen = sizeof pat - 1;
  const char *end = payload + plen;
  const char *m = memmem(payload, plen, pat, patlen);
  if (!m) {
    gw_msgbuf_t *b = gw_sio_packet_new(type, 0, nsp, nsp_len, has_id, id, payload, plen);
    return pkts_push(out, b);
  }
  size_t first = out->n;
  if (pkts_push(out, gw_msgbuf_new(0, 0))) return -1; /* slot for the header */
  gw_strbuf_t text = {0};
  const char *p = payload;
  size_t natt = 0;
  int rc = 0;
  for (; m && !rc; m = memmem(p, (size_t)(end - p), pat, patlen)) {
    const char *b64 = m + patlen;
    const char *q = memchr(b64, '"', (size_t)(end - b64));
    gw_msgbuf_t *bin = NULL;
    if (q && q + 1 < end && q[1] == '}') {
      size_t n = (size_t)(q - b64);
      bin = gw_msgbuf_new(GW_BASE64_DECODED_MAX(n), 1);
      size_t blen;
      if (bin && gw_base64_decode(b64, n, gw_msgbuf_payload(bin), &blen) == 0) {
        bin->len = blen;
      } else {
        gw_msgbuf_unref(bin);
        bin = NULL;
      }
    }
    if (!bin) { /* not a binary value after all: keep the text */
      rc = gw_strbuf_append(&text, p, (size_t)(b64 - p));
      p = b64;
      continue;
    }
    char ph[64];
    int phl = snprintf(ph, sizeof ph, "{\"_placeholder\":true,\"num\":%zu}", natt++);
    rc = gw_strbuf_append(&text, p, (size_t)(m - p)) || gw_strbuf_append(&text, ph, (size_t)phl) || pkts_push(out, bin);
    p = q + 2;
  }
  if (!rc) rc = gw_strbuf_append(&text, p, (size_t)(end - p));
  if (!rc) {
    int btype = type == GW_SIO_ACK ? GW_SIO_BINARY_ACK : type == GW_SIO_EVENT ? GW_SIO_BINARY_EVENT : type;
    gw_msgbuf_t *h = gw_sio_packet_new(natt ? btype : type, natt, nsp, nsp_len, has_id, id, text.p, text.len);
    if (h) {
      gw_msgbuf_unref(out->v[first]);
      out->v[first] = h;
    } else {
      rc = -1;
    }
  }
  gw_strbuf_free(&text);
  if (rc) { /* leave out as it was */
    while (out->n > first) gw_msgbuf_unref(out->v[--out->n]);
    return -1;
  }
  return 0;
}

/* off (not NULL): connection state recovery's offset, a string as the last argument */
static int build_event(gw_sio_pkts_t *out, const char *nsp, size_t nsp_len, const char *ev, size_t evlen,
                       const char *json, size_t jlen, const char *off) {
  char esc[GW_JSON_ESCAPED_MAX(MAX_EVENT_NAME)];
  size_t elen = gw_json_escape(ev, evlen > MAX_EVENT_NAME ? MAX_EVENT_NAME : evlen, esc, sizeof esc);
  const char *args = json;
  size_t alen = jlen;
  if (json && gw_json_is_args(json, jlen)) { /* " [a,b]": the arguments a,b */
    args = json + 2;
    alen = jlen - 3;
    while (alen && (args[0] == ' ' || args[0] == '\n')) args++, alen--;
    if (alen == 0) args = NULL;
  }
  gw_strbuf_t b = {0};
  int rc = gw_strbuf_append(&b, "[", 1) || gw_strbuf_append(&b, esc, elen) ||
           (args && (gw_strbuf_append(&b, ",", 1) || gw_strbuf_append(&b, args, alen))) ||
           (off && (gw_strbuf_append(&b, ",\"", 2) || gw_strbuf_append(&b, off, strlen(off)) ||
                    gw_strbuf_append(&b, "\"", 1))) ||
           gw_strbuf_append(&b, "]", 1);
  if (!rc) rc = build_packets(out, GW_SIO_EVENT, nsp, nsp_len, 0, 0, b.p, b.len);
  gw_strbuf_free(&b);
  return rc;
}

int gw_sio_build_event(gw_sio_pkts_t *out, const char *nsp, size_t nsp_len, const char *ev,
                       size_t evlen, const char *json, size_t jlen) {
  return build_event(out, nsp, nsp_len, ev, evlen, json, jlen, NULL);
}

int gw_sio_build_ack(gw_sio_pkts_t *out, const char *nsp, size_t nsp_len, uint64_t id,
                     const char *json, size_t jlen) {
  if (!json) return build_packets(out, GW_SIO_ACK, nsp, nsp_len, 1, id, "[]", 2);
  if (gw_json_is_args(json, jlen)) return build_packets(out, GW_SIO_ACK, nsp, nsp_len, 1, id, json + 1, jlen - 1);
  gw_strbuf_t b = {0};
  int rc = gw_strbuf_append(&b, "[", 1) || gw_strbuf_append(&b, json, jlen) || gw_strbuf_append(&b, "]", 1);
  if (!rc) rc = build_packets(out, GW_SIO_ACK, nsp, nsp_len, 1, id, b.p, b.len);
  gw_strbuf_free(&b);
  return rc;
}

/* ---- sockets and sessions --------------------------------------------------------------- */

typedef struct gw_sio_socket {
  gw_conn_t *conn;
  gw_eio_t *eio;
  char *nsp;
  size_t nsp_len;
  char sid[24];
  int connecting;       /* the connect hook runs: what is sent waits for the CONNECT reply */
  int disconnect_asked; /* conn:close(): disconnected by the reaper */
  uint32_t ping_seq;    /* quality: the sequence number of the session's latest ping */
  gw_msgbuf_t **held;
  size_t nheld, held_cap;
  /* connection state recovery (sio_recovery.h): on when it was when the socket connected;
   * every event carries an offset and is kept in buf */
  int rec;
  char pid[GW_SIOR_PID_LEN + 1];
  gw_sior_buf_t buf;
} gw_sio_socket_t;

struct gw_sio_session {
  gw_sio_socket_t **socks;
  size_t n, cap;
  /* a BINARY_EVENT or BINARY_ACK waiting for its attachments */
  char *pending;
  size_t pending_len, need, bytes;
  size_t counted; /* of server.max_inflight_bytes (rxbuf.h): a message waiting for attachments */
  struct {
    char *p;
    size_t len;
    int used; /* a placeholder took it: each one is taken once (no amplification) */
  } *att;
  size_t natt;
};

static gw_sio_session_t *session_of(gw_eio_t *s) {
  if (!s->sio) s->sio = calloc(1, sizeof *s->sio);
  return s->sio;
}

static void pending_clear(gw_sio_session_t *ss) {
  free(ss->pending);
  ss->pending = NULL;
  for (size_t i = 0; i < ss->natt; i++) free(ss->att[i].p);
  free(ss->att);
  ss->att = NULL;
  ss->natt = ss->need = ss->pending_len = ss->bytes = 0;
  gw_rxbuf_charge(&ss->counted, 0);
}

/* The pending message's bytes against the process-wide budget; -1 (logged) when spent. */
static int pending_charge(gw_sio_session_t *ss) {
  gw_rxbuf_set_budget(gw_settings()->max_inflight_bytes);
  if (gw_rxbuf_charge(&ss->counted, ss->bytes) == 0) return 0;
  gw_log(GW_LOG_WARN, 0, "socket.io: closing, server.max_inflight_bytes spent by messages being received");
  gw_stats_budget_refusal("max_inflight_bytes");
  return -1;
}

static gw_sio_socket_t *find_socket(gw_eio_t *s, const char *nsp, size_t nsp_len) {
  if (!s->sio) return NULL;
  for (size_t i = 0; i < s->sio->n; i++) {
    gw_sio_socket_t *k = s->sio->socks[i];
    if (k->nsp_len == nsp_len && memcmp(k->nsp, nsp, nsp_len) == 0) return k;
  }
  return NULL;
}

static void socket_free(gw_sio_socket_t *k) {
  gw_sior_buf_free(&k->buf);
  for (size_t i = 0; i < k->nheld; i++) gw_msgbuf_unref(k->held[i]);
  free(k->held);
  free(k->nsp);
  free(k);
}

static void socket_remove(gw_eio_t *s, gw_sio_socket_t *k) {
  gw_sio_session_t *ss = s->sio;
  for (size_t i = 0; ss && i < ss->n; i++) {
    if (ss->socks[i] == k) {
      ss->socks[i] = ss->socks[--ss->n];
      return;
    }
  }
}

static const gw_conn_ops_t parked_ops; /* below: a parked session's watcher */

/* Lost, as opposed to closed on purpose by either side: what Socket.IO recovers from. */
static int recoverable(const char *why) {
  return why && (strcmp(why, "transport close") == 0 || strcmp(why, "ping timeout") == 0 ||
                 strcmp(why, "poll connection closed prematurely") == 0);
}

/* The socket goes: the gateway forgets its connection (disconnect hooks run). A lost one
 * with recovery on is parked first (its rooms stay watched, no gap). */
static void socket_gone(gw_eio_t *s, gw_sio_socket_t *k, const char *why) {
  socket_remove(s, k);
  gw_conn_t *c = k->conn;
  k->conn = NULL;
  unsigned ttl = gw_eio_cfg()->recovery_max_disconnection_ms;
  if (c && c->ready && k->rec && ttl && recoverable(why)) {
    if (gw_sior_park(k->pid, k->sid, k->nsp, c, &k->buf, ttl, &parked_ops))
      gw_log(GW_LOG_DEBUG, c->id, "socket.io: session %s parked for %u ms (%s)", k->sid, ttl, why);
    else
      gw_log(GW_LOG_WARN, c->id, "socket.io: cannot park session %s (out of memory)", k->sid);
  }
  if (c) {
    c->transport = NULL;
    gw_pipeline_closed(c, why);
  }
  socket_free(k);
}

static int sock_send(gw_sio_socket_t *k, gw_msgbuf_t *b) {
  if (k->connecting) {
    if (k->nheld == k->held_cap) {
      size_t ncap = k->held_cap ? k->held_cap * 2 : 4;
      gw_msgbuf_t **nh = realloc(k->held, ncap * sizeof *nh);
      if (!nh) return GW_ENOMEM;
      k->held = nh;
      k->held_cap = ncap;
    }
    k->held[k->nheld++] = gw_msgbuf_ref(b);
    return 0;
  }
  return gw_eio_send(k->eio, b);
}

static int send_pkts(gw_sio_socket_t *k, gw_sio_pkts_t *p) {
  int rc = 0;
  for (size_t i = 0; i < p->n && !rc; i++) rc = sock_send(k, p->v[i]);
  return rc;
}

static void send_packet(gw_eio_t *s, int type, const char *nsp, size_t nsp_len, const char *payload,
                        size_t plen) {
  gw_msgbuf_t *b = gw_sio_packet_new(type, 0, nsp, nsp_len, 0, 0, payload, plen);
  if (b) gw_eio_send(s, b);
  gw_msgbuf_unref(b);
}

size_t gw_sio_socket_count(const gw_eio_t *s) { return s->sio ? s->sio->n : 0; }

void gw_sio_mark_closing(gw_eio_t *s, int code) {
  for (size_t i = 0; s->sio && i < s->sio->n; i++) {
    gw_conn_t *c = s->sio->socks[i]->conn;
    if (c && !c->close_code) {
      c->close_code = code;
      snprintf(c->close_reason, sizeof c->close_reason, "connection closed");
    }
  }
}

/* Engine.IO pings measure the link for every socket of the session (quality.h). */
void gw_sio_on_ping(gw_eio_t *s) {
  double now = gw_clock_now_ms();
  unsigned char payload[GW_QUALITY_PAYLOAD];
  for (size_t i = 0; s->sio && i < s->sio->n; i++) {
    gw_sio_socket_t *k = s->sio->socks[i];
    if (!k->conn || !k->conn->ready) continue;
    gw_quality_conn_tick(k->conn, now);
    k->ping_seq = gw_quality_ping(&k->conn->quality, now, payload);
    k->conn->pings_sent++;
    k->conn->ping_sent_ms = k->conn->last_ping_ms = now;
  }
}

void gw_sio_on_pong(gw_eio_t *s, double rtt_ms) {
  (void)rtt_ms;
  double now = gw_clock_now_ms();
  for (size_t i = 0; s->sio && i < s->sio->n; i++) {
    gw_sio_socket_t *k = s->sio->socks[i];
    if (!k->conn || !k->conn->ready) continue;
    k->conn->last_rx_ms = now;
    gw_quality_conn_pong_seq(k->conn, k->ping_seq, now);
  }
}

void gw_sio_session_closed(gw_eio_t *s, const char *reason) {
  gw_sio_session_t *ss = s->sio;
  if (!ss) return;
  while (ss->n) socket_gone(s, ss->socks[ss->n - 1], reason);
  pending_clear(ss);
  free(ss->socks);
  free(ss);
  s->sio = NULL;
}

void gw_sio_reap(gw_eio_t *s) {
  gw_sio_session_t *ss = s->sio;
  if (!ss) return;
  for (size_t i = ss->n; i-- > 0;) {
    if (i < ss->n && ss->socks[i]->disconnect_asked) socket_gone(s, ss->socks[i], "server namespace disconnect");
  }
  /* with its last namespace gone the client closes the connection itself (closing it here
   * would reach a polling client in the same payload as the DISCONNECT, which it would then
   * report as "transport close"); if it does not, the connect timeout does */
  if (s->sio && s->sio->n == 0) gw_eio_expect_connect(s);
}

/* ---- the policy's namespaces ------------------------------------------------------------- */

static int namespace_known(const char *nsp, size_t nsp_len) {
  if (is_root(nsp, nsp_len)) return 1;
  const gw_settings_t *s = gw_settings();
  for (size_t i = 0; s && i < s->n_namespaces; i++)
    if (strlen(s->namespaces[i]) == nsp_len && memcmp(s->namespaces[i], nsp, nsp_len) == 0) return 1;
  return 0;
}

/* ---- CONNECT ------------------------------------------------------------------------------ */

static void connect_error(gw_eio_t *s, const char *nsp, size_t nsp_len, const char *message,
                          const char *reason) {
  char m[GW_JSON_ESCAPED_MAX(64)], r[GW_JSON_ESCAPED_MAX(128)], body[1200];
  gw_json_escape(message, strnlen(message, 64), m, sizeof m);
  int n;
  if (reason) {
    gw_json_escape(reason, strnlen(reason, 128), r, sizeof r);
    n = snprintf(body, sizeof body, "{\"message\":%s,\"data\":{\"reason\":%s}}", m, r);
  } else {
    n = snprintf(body, sizeof body, "{\"message\":%s}", m);
  }
  send_packet(s, GW_SIO_CONNECT_ERROR, nsp, nsp_len, body, (size_t)n);
}

/* What a reconnecting stock client puts in its CONNECT's auth when the server gave it a
 * pid (connection state recovery): {pid, offset}, offset absent when it got no event. */
typedef struct sio_resume {
  int has_pid;
  char pid[GW_SIOR_PID_LEN + 1]; /* "" when not of our shape: unknown */
  int off_ok;                    /* absent, or a string of our shape */
  uint64_t off;                  /* 0: absent */
} sio_resume_t;

/* Checks that the auth payload is a JSON object (the decoder marks arrays with a metatable)
 * and copies its socketio.token_field ("token") string: the JWT, which auth.c verifies, and
 * (rs not NULL) the pid and offset. -1 when not an object. */
static int auth_payload(const char *json, size_t len, char **token, sio_resume_t *rs) {
  gw_policy_t *p = gw_policy_current();
  lua_State *L = p->vm->L;
  int top = lua_gettop(L);
  *token = NULL;
  int ok = gw_lua_json_decode(p->vm, json, len) == 0 && lua_istable(L, -1) && !lua_getmetatable(L, -1);
  const char *field = gw_eio_cfg()->token_field;
  if (ok && *field) {
    lua_getfield(L, -1, field);
    size_t n;
    const char *t = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
    if (t && n) *token = strndup(t, n);
    lua_pop(L, 1);
  }
  if (ok && rs) {
    size_t n = 0;
    lua_getfield(L, -1, "pid");
    const char *t = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
    rs->has_pid = t != NULL;
    if (t && n == GW_SIOR_PID_LEN) memcpy(rs->pid, t, n + 1);
    lua_pop(L, 1);
    lua_getfield(L, -1, "offset");
    rs->off_ok = lua_isnil(L, -1) ||
                 (lua_type(L, -1) == LUA_TSTRING && (t = lua_tolstring(L, -1, &n)) && gw_sior_offset_parse(t, n, &rs->off) == 0);
    lua_pop(L, 1);
  }
  lua_settop(L, top);
  return ok ? 0 : -1;
}

/* After the connect hook accepted c: a CONNECT naming a parked session of the same user
 * and namespace, from an offset still covered, takes it over (the parked record is
 * returned, unparked, its rooms joined by c); otherwise the socket starts a session of its
 * own. k->pid is set either way. */
static gw_sior_parked_t *resume(gw_sio_socket_t *k, gw_conn_t *c, const sio_resume_t *rs) {
  gw_sior_parked_t *p = NULL;
  const char *why = NULL;
  if (rs->has_pid) {
    p = rs->pid[0] ? gw_sior_find(rs->pid) : NULL;
    if (!p) {
      why = "unknown or expired session";
    } else if (strcmp(p->nsp, k->nsp) != 0 || strcmp(p->user, c->user) != 0) {
      why = "another user's or namespace's session"; /* left parked for its owner */
      p = NULL;
    } else if (!rs->off_ok || !gw_sior_buf_covers(&p->buf, rs->off)) {
      why = "offset no longer kept";
      gw_sior_unpark(p); /* its owner is back: it will not be taken over any more */
      gw_sior_parked_free(p);
      p = NULL;
    } else {
      gw_sior_unpark(p);
    }
    gw_replay_count_recovery("socketio", p != NULL); /* aivo_replay_recoveries_total */
  }
  if (!p) {
    if (why) gw_log(GW_LOG_INFO, c->id, "socket.io: connection state not recovered (%s), new session", why);
    gw_sior_new_pid(k->pid);
    return NULL;
  }
  memcpy(k->pid, p->pid, sizeof k->pid);
  snprintf(k->sid, sizeof k->sid, "%s", p->sid);
  for (size_t i = 0; i < p->nrooms; i++) {
    int rc = gw_room_join(c, p->rooms[i], gw_settings()->max_rooms);
    if (rc) gw_log(GW_LOG_WARN, c->id, "socket.io: recovered session %s cannot rejoin %s (%s)", k->sid, p->rooms[i], gw_strerror(rc));
  }
  return p;
}

static int on_connect(gw_eio_t *s, const gw_sio_packet_t *p) {
  if (find_socket(s, p->nsp, p->nsp_len)) return -1; /* connected twice: invalid state */
  if (!namespace_known(p->nsp, p->nsp_len)) {
    gw_log(GW_LOG_DEBUG, 0, "socket.io session %s: unknown namespace %.*s", s->sid, (int)p->nsp_len, p->nsp);
    connect_error(s, p->nsp, p->nsp_len, "Invalid namespace", NULL);
    return 0;
  }
  const char *auth = "{}";
  size_t auth_len = 2;
  char *token = NULL;
  int rec = gw_eio_cfg()->recovery_max_disconnection_ms > 0;
  sio_resume_t rs = {0};
  if (p->data_len) {
    if (auth_payload(p->data, p->data_len, &token, rec ? &rs : NULL)) return -1;
    auth = p->data;
    auth_len = p->data_len;
  }
  gw_sio_session_t *ss = session_of(s);
  gw_sio_socket_t *k = calloc(1, sizeof *k);
  if (!ss || !k || !(k->nsp = malloc(p->nsp_len + 1))) {
    free(k);
    free(token);
    return -1;
  }
  if (ss->n == ss->cap) {
    size_t ncap = ss->cap ? ss->cap * 2 : 2;
    gw_sio_socket_t **nv = realloc(ss->socks, ncap * sizeof *nv);
    if (!nv) {
      socket_free(k);
      free(token);
      return -1;
    }
    ss->socks = nv;
    ss->cap = ncap;
  }
  memcpy(k->nsp, p->nsp, p->nsp_len);
  k->nsp[p->nsp_len] = 0;
  k->nsp_len = p->nsp_len;
  k->eio = s;
  k->connecting = 1;
  gw_base64url_random(k->sid, 15);
  if ((k->rec = rec)) gw_sior_buf_init(&k->buf);
  gw_conn_t *c = gw_conn_new();
  if (!c) {
    socket_free(k);
    free(token);
    return -1;
  }
  k->conn = c;
  c->proto = GW_PROTO_SOCKETIO;
  c->ops = &gw_sio_conn_ops;
  c->transport = k;
  snprintf(c->remote, sizeof c->remote, "%s", s->remote);
  c->connected_at_ms = c->last_rx_ms = c->last_ping_ms = gw_clock_now_ms();
  ss->socks[ss->n++] = k;

  gw_request_t req;
  memset(&req, 0, sizeof req);
  req.path = "/socket.io/";
  req.query = s->query;
  req.origin = s->origin;
  req.user_agent = s->user_agent;
  req.auth_json = auth;
  req.auth_json_len = auth_len;
  req.token = token;
  req.nsp = k->nsp;
  char reason[160];
  int code = gw_pipeline_open(c, &req, reason, sizeof reason);
  if (token) {
    memset(token, 0, strlen(token)); /* no copy of a token outlives its check */
    free(token);
  }
  k->connecting = 0;
  if (code == 0) {
    gw_sior_parked_t *prev = k->rec ? resume(k, c, &rs) : NULL;
    char body[48 + GW_SIOR_PID_LEN];
    int n = k->rec ? snprintf(body, sizeof body, "{\"sid\":\"%s\",\"pid\":\"%s\"}", k->sid, k->pid)
                   : snprintf(body, sizeof body, "{\"sid\":\"%s\"}", k->sid);
    send_packet(s, GW_SIO_CONNECT, k->nsp, k->nsp_len, body, (size_t)n);
    if (prev) {
      /* what it missed, then what the connect hook sent (held below); the session's buffer
       * goes on: the parked one, then this socket's */
      size_t missed = 0;
      for (size_t i = 0; i < prev->buf.n; i++) {
        const gw_sior_entry_t *e = gw_sior_buf_at(&prev->buf, i);
        if (e->off <= rs.off) continue;
        for (size_t j = 0; j < e->npkts; j++) gw_eio_send(s, gw_sior_entry_pkts(e)[j]);
        missed++;
      }
      for (size_t i = 0; i < k->buf.n; i++) {
        const gw_sior_entry_t *e = gw_sior_buf_at(&k->buf, i);
        gw_sior_buf_add(&prev->buf, e->off, gw_sior_entry_pkts(e), e->npkts);
      }
      gw_sior_buf_free(&k->buf);
      k->buf = prev->buf;
      memset(&prev->buf, 0, sizeof prev->buf);
      gw_sior_parked_free(prev);
      gw_log(GW_LOG_INFO, c->id, "socket.io: connection state recovered for %s on %s (%zu missed events, %zu rooms)",
             k->sid, k->nsp, missed, c->nrooms);
    }
    for (size_t i = 0; i < k->nheld; i++) {
      gw_eio_send(s, k->held[i]);
      gw_msgbuf_unref(k->held[i]);
    }
    k->nheld = 0;
    return 0;
  }
  /* refused: 4401 "reason code" (auth.h), 4429 connections.max_per_user (ratelimit.c),
   * "code: reason" from the connect hook (4403), or the hook failed (1011) */
  char *sep = code != GW_CLOSE_UNAUTHORIZED && code != GW_CLOSE_RATE_LIMITED && code != GW_CLOSE_INTERNAL
                  ? strstr(reason, ": ") : NULL;
  if (code == GW_CLOSE_UNAUTHORIZED) {
    connect_error(s, k->nsp, k->nsp_len, "unauthorized", reason);
  } else if (code == GW_CLOSE_RATE_LIMITED) { /* as the /ws 429's {"error", "reason"} */
    connect_error(s, k->nsp, k->nsp_len, "rate_limited", reason);
  } else if (sep) {
    *sep = 0;
    connect_error(s, k->nsp, k->nsp_len, reason, sep + 2);
  } else if (code == GW_CLOSE_INTERNAL) {
    connect_error(s, k->nsp, k->nsp_len, "internal_error", "internal error");
  } else {
    connect_error(s, k->nsp, k->nsp_len, "forbidden", reason);
  }
  socket_gone(s, k, "refused");
  return 0;
}

/* ---- EVENT ------------------------------------------------------------------------------- */

/* An EVENT decoded by the session (attachments in place), handed through the pipeline to
 * gw_sio_on_message as its `decoded`. */
typedef struct sio_decoded {
  const gw_sio_packet_t *pkt;
  int msg_idx; /* the msg table on the policy state's stack */
} sio_decoded_t;

/* Replaces every {"_placeholder":true,"num":N} under the table at idx with attachment N, a
 * string the encoder will send back as binary. -1 for a bad placeholder: a num out of range,
 * or one already used. Each attachment may be used once: 3,000 placeholders naming one
 * 250 KB attachment made the reply encode 750 MB (the decoded message is then never larger
 * than what came in). *size: the decoded size so far, counted against max as it grows. */
static int fill_placeholders(lua_State *L, int idx, gw_sio_session_t *ss, int depth, size_t *size,
                             size_t max) {
  if (depth > GW_JSON_MAX_DEPTH || !lua_checkstack(L, 6)) return -1;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_istable(L, -1)) {
      int v = lua_gettop(L);
      lua_getfield(L, v, "_placeholder");
      int is_ph = lua_type(L, -1) == LUA_TBOOLEAN && lua_toboolean(L, -1);
      lua_pop(L, 1);
      if (is_ph) {
        lua_getfield(L, v, "num");
        double num = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : -1;
        lua_pop(L, 1);
        if (num < 0 || num >= (double)ss->natt || num != (double)(size_t)num) return -1;
        size_t n = (size_t)num;
        if (ss->att[n].used) {
          gw_log(GW_LOG_INFO, 0, "socket.io: attachment %zu referenced twice, closing", n);
          return -1;
        }
        ss->att[n].used = 1;
        if (ss->att[n].len > max || *size > max - ss->att[n].len) return -1;
        *size += ss->att[n].len;
        lua_pushvalue(L, -2); /* key */
        lua_pushlstring(L, ss->att[(size_t)num].p, ss->att[(size_t)num].len);
        gw_json_lua_binset_add(L, -1);
        lua_rawset(L, idx);
      } else if (fill_placeholders(L, v, ss, depth + 1, size, max)) {
        return -1;
      }
    }
    lua_pop(L, 1);
  }
  return 0;
}

/* Pushes the msg table for the decoded event array at arr. */
static void push_msg(lua_State *L, int arr, const gw_sio_packet_t *p) {
  int n = (int)lua_objlen(L, arr);
  lua_createtable(L, 0, 8);
  int msg = lua_gettop(L);
  lua_rawgeti(L, arr, 1);
  lua_setfield(L, msg, "event");
  lua_createtable(L, n > 1 ? n - 1 : 0, 0);
  for (int i = 2; i <= n; i++) {
    lua_rawgeti(L, arr, i);
    lua_rawseti(L, -2, i - 1);
  }
  gw_json_lua_push_args_mt(L);
  lua_setmetatable(L, -2);
  /* data: the only argument; with several, the argument list (spread again when sent) */
  if (n == 2) {
    lua_rawgeti(L, arr, 2);
    lua_setfield(L, msg, "data");
  } else if (n > 2) {
    lua_pushvalue(L, -1);
    lua_setfield(L, msg, "data");
  }
  lua_setfield(L, msg, "args");
  if (p->has_id) {
    lua_pushnumber(L, (lua_Number)p->id);
    lua_setfield(L, msg, "id");
  }
  lua_pushboolean(L, 0);
  lua_setfield(L, msg, "binary");
  lua_pushliteral(L, "socketio");
  lua_setfield(L, msg, "protocol");
  lua_pushlstring(L, p->nsp, p->nsp_len);
  lua_setfield(L, msg, "namespace");
}

/* Decodes the event's payload and pushes its msg; -1 (nothing pushed) when malformed. */
static int decode_event(lua_State *L, gw_lua_vm_t *vm, const gw_sio_packet_t *p, gw_sio_session_t *ss,
                        size_t max) {
  int top = lua_gettop(L);
  if (gw_lua_json_decode(vm, p->data, p->data_len)) goto bad;
  int arr = lua_gettop(L);
  if (!lua_istable(L, arr) || lua_objlen(L, arr) < 1) goto bad;
  lua_rawgeti(L, arr, 1);
  size_t evlen = 0;
  int ok = lua_type(L, -1) == LUA_TSTRING && (lua_tolstring(L, -1, &evlen), evlen > 0 && evlen <= MAX_EVENT_NAME);
  lua_pop(L, 1);
  if (!ok) goto bad;
  size_t size = p->data_len; /* the decoded message: its text, then each attachment used */
  if (ss && ss->natt && fill_placeholders(L, arr, ss, 0, &size, max)) goto bad;
  push_msg(L, arr, p);
  lua_remove(L, arr);
  return 0;
bad:
  lua_settop(L, top);
  return -1;
}

static int on_event(gw_eio_t *s, const char *text, size_t len, const gw_sio_packet_t *p) {
  gw_sio_socket_t *k = find_socket(s, p->nsp, p->nsp_len);
  if (!k || !k->conn || k->disconnect_asked) return k ? 0 : -1; /* not connected: invalid state */
  gw_policy_t *pol = gw_policy_current();
  lua_State *L = pol->vm->L;
  int top = lua_gettop(L);
  if (decode_event(L, pol->vm, p, s->sio, gw_settings()->max_message_size)) return -1;
  k->conn->last_rx_ms = gw_clock_now_ms();
  sio_decoded_t d = {p, lua_gettop(L)};
  /* the one message path: limits, metrics and the policy, as for /ws */
  gw_pipeline_message(k->conn, (const unsigned char *)text, len, 0, &d);
  lua_settop(L, top);
  gw_json_lua_binset_clear(L);
  return 0;
}

/* A complete packet (attachments, if any, in s->sio). */
static int dispatch(gw_eio_t *s, const char *text, size_t len) {
  gw_sio_packet_t p;
  if (gw_sio_parse(text, len, &p)) return -1;
  switch (p.type) {
    case GW_SIO_CONNECT: return on_connect(s, &p);
    case GW_SIO_DISCONNECT: {
      gw_sio_socket_t *k = find_socket(s, p.nsp, p.nsp_len);
      if (k) socket_gone(s, k, "client namespace disconnect");
      return 0;
    }
    case GW_SIO_EVENT:
    case GW_SIO_BINARY_EVENT: return on_event(s, text, len, &p);
    default: return 0; /* ACK: the gateway asks clients for no acks */
  }
}

int gw_sio_on_packet(gw_eio_t *s, const unsigned char *data, size_t len, int binary) {
  gw_sio_session_t *ss = session_of(s);
  if (!ss) return -1;
  size_t max = gw_settings()->max_message_size;
  if (binary) {
    if (!ss->pending || ss->bytes + len > max) return -1;
    char *copy = malloc(len ? len : 1);
    if (!copy) return -1;
    memcpy(copy, data, len);
    ss->att[ss->natt].p = copy;
    ss->att[ss->natt].len = len;
    ss->natt++;
    ss->bytes += len;
    if (pending_charge(ss)) return -1;
    if (ss->natt < ss->need) return 0;
    int rc = dispatch(s, ss->pending, ss->pending_len);
    if (s->sio) pending_clear(s->sio);
    return rc;
  }
  if (ss->pending) return -1; /* text while attachments are expected */
  gw_sio_packet_t p;
  if (gw_sio_parse((const char *)data, len, &p)) return -1;
  if (p.attachments == 0) return dispatch(s, (const char *)data, len);
  ss->pending = malloc(len);
  ss->att = calloc(p.attachments, sizeof *ss->att);
  if (!ss->pending || !ss->att) {
    pending_clear(ss);
    return -1;
  }
  memcpy(ss->pending, data, len);
  ss->pending_len = ss->bytes = len;
  ss->need = p.attachments;
  return pending_charge(ss);
}

/* ---- the gateway side --------------------------------------------------------------------- */

static gw_sio_socket_t *socket_of(gw_conn_t *c) { return c->proto == GW_PROTO_SOCKETIO ? c->transport : NULL; }

const void *gw_sio_session_of(const gw_conn_t *c) {
  const gw_sio_socket_t *k = c->proto == GW_PROTO_SOCKETIO ? c->transport : NULL;
  return k ? k->eio : NULL;
}

static void send_ack(gw_sio_socket_t *k, uint64_t id, const char *json, size_t jlen) {
  gw_sio_pkts_t pk = {0};
  if (gw_sio_build_ack(&pk, k->nsp, k->nsp_len, id, json, jlen) == 0) send_pkts(k, &pk);
  gw_sio_pkts_clear(&pk);
}

/* An event to k alone. With recovery its packets carry the next offset and are kept. */
static int emit_k(gw_sio_socket_t *k, const char *ev, size_t evlen, const char *json, size_t jlen) {
  char off[GW_SIOR_OFFSET_MAX];
  uint64_t o = 0;
  if (k->rec) gw_sior_offset_str(o = gw_sior_next_offset(), off);
  gw_sio_pkts_t pk = {0};
  int rc = build_event(&pk, k->nsp, k->nsp_len, ev, evlen, json, jlen, o ? off : NULL) ? GW_ENOMEM : send_pkts(k, &pk);
  if (o && pk.n) gw_sior_buf_add(&k->buf, o, pk.v, pk.n);
  gw_sio_pkts_clear(&pk);
  return rc;
}

static void send_event(gw_sio_socket_t *k, const char *ev, const char *json, size_t jlen) {
  emit_k(k, ev, strlen(ev), json, jlen);
}

/* A refusal: an ack {"ok":false,"error":{code,message}} when the client asked for one, else
 * an "error" event {code, message}, as on /ws. */
static void refuse(gw_sio_socket_t *k, int has_id, uint64_t id, const char *code, const char *message) {
  char c[GW_JSON_ESCAPED_MAX(64)], m[GW_JSON_ESCAPED_MAX(300)], body[2200];
  gw_json_escape(code, strnlen(code, 64), c, sizeof c);
  gw_json_escape(message, strnlen(message, 300), m, sizeof m);
  int n;
  if (has_id) {
    n = snprintf(body, sizeof body, "{\"ok\":false,\"error\":{\"code\":%s,\"message\":%s}}", c, m);
    send_ack(k, id, body, (size_t)n);
  } else {
    n = snprintf(body, sizeof body, "{\"code\":%s,\"message\":%s}", c, m);
    send_event(k, "error", body, (size_t)n);
  }
}

void gw_sio_rate_limited(gw_conn_t *c, int has_id, uint64_t id, const char *ack_json, size_t ack_len,
                         const char *error_json, size_t error_len) {
  gw_sio_socket_t *k = socket_of(c);
  if (!k || c->close_code) return;
  if (has_id) send_ack(k, id, ack_json, ack_len);
  else send_event(k, "error", error_json, error_len);
}

/* auth:refresh {token}, the answer to the gateway's auth:refresh (auth_session.c): handled
 * here, as on /ws (proto_native.c), and never seen by plugins. With an ack: {ok: true, exp}
 * or the usual refusal {ok: false, error: {code: "unauthorized", message: <reason>}};
 * without one only a refusal is answered (the "error" event). A refused token leaves the
 * deadline as it was: the namespace is disconnected when the grace period ends. Returns 1
 * when the msg at index msg was one. */
static int sio_auth_refresh(gw_sio_socket_t *k, gw_conn_t *c, lua_State *L, int msg,
                            const gw_sio_packet_t *p) {
  size_t evlen = 0;
  lua_getfield(L, msg, "event");
  const char *ev = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &evlen) : NULL;
  int is = ev && evlen == 12 && memcmp(ev, "auth:refresh", 12) == 0;
  lua_pop(L, 1);
  if (!is) return 0;
  int top = lua_gettop(L);
  lua_getfield(L, msg, "data");
  if (lua_istable(L, -1)) lua_getfield(L, -1, "token");
  const char *token = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  char reason[64], body[64];
  double exp = 0;
  if (!token) {
    refuse(k, p->has_id, p->id, "bad_request", "auth:refresh needs data {\"token\": \"...\"}");
  } else if (gw_auth_session_refresh(c, token, &exp, reason, sizeof reason)) {
    refuse(k, p->has_id, p->id, "unauthorized", reason);
  } else if (p->has_id) {
    int n = snprintf(body, sizeof body, "{\"ok\":true,\"exp\":%.15g}", exp);
    send_ack(k, p->id, body, (size_t)n);
  }
  lua_settop(L, top);
  return 1;
}

void gw_sio_on_message(gw_conn_t *c, const unsigned char *data, size_t len, int binary, const void *decoded) {
  (void)binary;
  gw_sio_socket_t *k = socket_of(c);
  if (!k) return;
  gw_policy_t *pol = gw_policy_current();
  lua_State *L = pol->vm->L;
  int top = lua_gettop(L);
  gw_sio_packet_t own;
  const gw_sio_packet_t *p;
  int msg_idx;
  const sio_decoded_t *d = decoded;
  if (d) {
    p = d->pkt;
    msg_idx = d->msg_idx;
  } else { /* not from the session: a packet without attachments */
    if (gw_sio_parse((const char *)data, len, &own) || own.attachments ||
        decode_event(L, pol->vm, &own, NULL, gw_settings()->max_message_size))
      return;
    p = &own;
    msg_idx = lua_gettop(L);
  }
  if (sio_auth_refresh(k, c, L, msg_idx, p)) {
    lua_settop(L, top);
    return;
  }
  gw_verdict_t v;
  gw_policy_on_message(pol, c, msg_idx, &v);
  gw_pipeline_reply(c, pol, &v, p->has_id, p->id);
  lua_settop(L, top);
}

int gw_sio_send(gw_conn_t *c, gw_msgbuf_t *b) {
  gw_sio_socket_t *k = socket_of(c);
  if (!k || c->close_code) return GW_ECLOSED;
  return sock_send(k, b);
}

void gw_sio_close(gw_conn_t *c, int code, const char *reason) {
  gw_sio_socket_t *k = socket_of(c);
  if (!k || c->close_code) return;
  gw_eio_t *s = k->eio;
  if (s->state != GW_EIO_S_OPEN || s->close_asked) return;
  if (code == 1000 || (code >= 3000 && code <= 4999 && code != 4008)) {
    gw_log(GW_LOG_DEBUG, c->id, "socket.io: disconnecting namespace %s (%d %s)", k->nsp, code,
           reason ? reason : "");
    send_packet(s, GW_SIO_DISCONNECT, k->nsp, k->nsp_len, NULL, 0);
    c->close_code = code;
    snprintf(c->close_reason, sizeof c->close_reason, "%s", reason ? reason : "");
    k->disconnect_asked = 1;
    gw_eio_reap_sockets(s);
    return;
  }
  gw_eio_close(s, reason && *reason ? reason : "server close", 1, code);
}

int gw_sio_emit(gw_conn_t *c, const char *ev, size_t evlen, const char *json, size_t jlen) {
  gw_sio_socket_t *k = socket_of(c);
  if (!k || c->close_code) return GW_ECLOSED;
  return emit_k(k, ev, evlen, json, jlen);
}

int gw_sio_send_binary(gw_conn_t *c, const void *data, size_t len) {
  gw_sio_socket_t *k = socket_of(c);
  if (!k || c->close_code) return GW_ECLOSED;
  char head[64 + GW_SIOR_OFFSET_MAX];
  uint64_t o = k->rec ? gw_sior_next_offset() : 0;
  int hlen = snprintf(head, sizeof head, "[\"binary\",{\"_placeholder\":true,\"num\":0}");
  if (o) {
    head[hlen++] = ',';
    head[hlen++] = '"';
    hlen += (int)gw_sior_offset_str(o, head + hlen);
    head[hlen++] = '"';
  }
  head[hlen++] = ']';
  gw_sio_pkts_t pk = {0};
  int rc = pkts_push(&pk, gw_sio_packet_new(GW_SIO_BINARY_EVENT, 1, k->nsp, k->nsp_len, 0, 0, head, (size_t)hlen));
  if (!rc) rc = pkts_push(&pk, gw_msgbuf_from(data, len, 1));
  rc = rc ? GW_ENOMEM : send_pkts(k, &pk);
  if (o && pk.n == 2) gw_sior_buf_add(&k->buf, o, pk.v, pk.n);
  gw_sio_pkts_clear(&pk);
  return rc;
}

/* The event's packets for namespace nsp, with an offset (rec) or without, encoded on first
 * use; *off: its offset (0: none). NULL when out of memory or the cache is full. */
static gw_sio_pkts_t *cache_get(gw_sio_cache_t *cache, const char *nsp, size_t nsp_len, int rec, const char *ev,
                                size_t evlen, const char *json, size_t jlen, uint64_t *off) {
  for (size_t i = 0; i < cache->n; i++) {
    if ((cache->e[i].off != 0) == (rec != 0) && strcmp(cache->e[i].nsp, nsp) == 0) {
      *off = cache->e[i].off;
      return &cache->e[i].pkts;
    }
  }
  if (cache->n == GW_SIO_CACHE_NSPS) return NULL;
  gw_sio_pkts_t *pk = &cache->e[cache->n].pkts;
  memset(pk, 0, sizeof *pk);
  char offs[GW_SIOR_OFFSET_MAX];
  uint64_t o = 0;
  if (rec) gw_sior_offset_str(o = gw_sior_next_offset(), offs);
  if (build_event(pk, nsp, nsp_len, ev, evlen, json, jlen, o ? offs : NULL)) {
    gw_sio_pkts_clear(pk);
    return NULL;
  }
  cache->e[cache->n].nsp = nsp;
  cache->e[cache->n++].off = o;
  *off = o;
  return pk;
}

int gw_sio_publish(gw_sio_cache_t *cache, gw_conn_t *c, const char *ev, size_t evlen,
                   const char *json, size_t jlen) {
  gw_sio_socket_t *k = socket_of(c);
  if (!k || c->close_code) return GW_ECLOSED;
  uint64_t off = 0;
  gw_sio_pkts_t *pk = cache_get(cache, k->nsp, k->nsp_len, k->rec, ev, evlen, json, jlen, &off);
  if (!pk) return cache->n == GW_SIO_CACHE_NSPS ? emit_k(k, ev, evlen, json, jlen) : GW_ENOMEM;
  int rc = send_pkts(k, pk);
  if (off) gw_sior_buf_add(&k->buf, off, pk->v, pk->n);
  return rc;
}

void gw_sio_cache_free(gw_sio_cache_t *cache) {
  for (size_t i = 0; i < cache->n; i++) gw_sio_pkts_clear(&cache->e[i].pkts);
  cache->n = 0;
}

/* ---- the protocol table (conn.h) ------------------------------------------------------------ */

static int ops_fanout(void **cache, gw_conn_t *c, const gw_event_t *e) {
  if (!*cache && !(*cache = calloc(1, sizeof(gw_sio_cache_t)))) return gw_sio_emit(c, e->ev, e->evlen, e->json, e->jlen);
  return gw_sio_publish(*cache, c, e->ev, e->evlen, e->json, e->jlen);
}

static void ops_fanout_end(void *cache) {
  gw_sio_cache_free(cache);
  free(cache);
}

/* A parked session's watcher (sio_recovery.h): what reaches its rooms is kept, not sent.
 * Not counted as delivered (1). */
static int parked_fanout(void **cache, gw_conn_t *w, const gw_event_t *e) {
  gw_sior_parked_t *p = w->transport;
  if (!*cache) *cache = calloc(1, sizeof(gw_sio_cache_t));
  uint64_t off = 0;
  gw_sio_pkts_t *pk = *cache ? cache_get(*cache, p->nsp, strlen(p->nsp), 1, e->ev, e->evlen, e->json, e->jlen, &off)
                             : NULL;
  if (pk) {
    gw_sior_buf_add(&p->buf, off, pk->v, pk->n);
    return 1;
  }
  gw_sio_pkts_t own = {0};
  char offs[GW_SIOR_OFFSET_MAX];
  gw_sior_offset_str(off = gw_sior_next_offset(), offs);
  if (build_event(&own, p->nsp, strlen(p->nsp), e->ev, e->evlen, e->json, e->jlen, offs) == 0)
    gw_sior_buf_add(&p->buf, off, own.v, own.n);
  else
    gw_sior_buf_add(&p->buf, off, NULL, 0); /* lost: no recovery from before it */
  gw_sio_pkts_clear(&own);
  return 1;
}

static const gw_conn_ops_t parked_ops = {
    .proto = GW_PROTO_SOCKETIO,
    .fanout = parked_fanout,
    .fanout_end = ops_fanout_end,
};

/* An ack gets GW_RL_SHAPE_ACK ({rateLimited: true, retryAfterMs, ...}, the old service's
 * shape) as its argument; no ack: the `error` event with GW_RL_SHAPE_ERROR. */
static void ops_rate_limited(gw_conn_t *c, int has_id, uint64_t id, double retry_after_ms, const char *message) {
  char json[512], ejson[512];
  size_t len = gw_ratelimit_refusal_json(GW_RL_SHAPE_ACK, retry_after_ms, message, json, sizeof json);
  size_t elen = gw_ratelimit_refusal_json(GW_RL_SHAPE_ERROR, retry_after_ms, message, ejson, sizeof ejson);
  gw_sio_rate_limited(c, has_id, id, json, len, ejson, elen);
}

static void ops_ack(gw_conn_t *c, uint64_t id, const char *json, size_t jlen) {
  gw_sio_socket_t *k = socket_of(c);
  if (k) send_ack(k, id, json, jlen);
}

static void ops_refuse(gw_conn_t *c, int has_id, uint64_t id, const char *code, const char *message) {
  gw_sio_socket_t *k = socket_of(c);
  if (k) refuse(k, has_id, id, code, message);
}

const gw_conn_ops_t gw_sio_conn_ops = {
    .proto = GW_PROTO_SOCKETIO,
    .send = gw_sio_send,
    .emit = gw_sio_emit,
    .send_binary = gw_sio_send_binary,
    .close = gw_sio_close,
    .ack = ops_ack,
    .refuse = ops_refuse,
    .rate_limited = ops_rate_limited,
    .on_message = gw_sio_on_message,
    .fanout = ops_fanout,
    .fanout_end = ops_fanout_end,
    .client = gw_sio_session_of,
};

/* ---- for tests and fuzzing ------------------------------------------------------------------ */

int gw_sio_decode_event(lua_State *L, gw_lua_vm_t *vm, const gw_sio_packet_t *p,
                        const unsigned char *const *att, const size_t *att_len, size_t natt,
                        size_t max_message_size) {
  /* a session holding exactly these attachments, as gw_sio_on_packet leaves it */
  gw_sio_session_t ss = {0};
  if (natt) {
    ss.att = calloc(natt, sizeof *ss.att);
    if (!ss.att) return -1;
  }
  for (size_t i = 0; i < natt; i++) {
    ss.att[i].p = (char *)att[i];
    ss.att[i].len = att_len[i];
    ss.bytes += att_len[i];
  }
  ss.natt = ss.need = natt;
  int rc = decode_event(L, vm, p, &ss, max_message_size);
  free(ss.att);
  return rc;
}

const gw_eio_upper_t gw_sio_eio_upper = {
    .on_packet = gw_sio_on_packet,
    .session_closed = gw_sio_session_closed,
    .mark_closing = gw_sio_mark_closing,
    .reap = gw_sio_reap,
    .socket_count = gw_sio_socket_count,
    .on_ping = gw_sio_on_ping,
    .on_pong = gw_sio_on_pong,
};
