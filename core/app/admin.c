#include "admin.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <luajit-2.1/lauxlib.h>

#include "clock.h"
#include "cluster.h"
#include "conn.h"
#include "errors.h"
#include "json.h"
#include "log.h"
#include "lua_vm.h"
#include "node.h"
#include "policy.h"
#include "query.h"
#include "replay.h"
#include "room.h"

static const gw_admin_ops_t *g_ops;
void gw_admin_set_ops(const gw_admin_ops_t *ops) { g_ops = ops; }

static char *g_token;

void gw_admin_set_token(const char *token) {
  free(g_token);
  g_token = token && *token ? strdup(token) : NULL;
}

static void out(gw_admin_response_t *res, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void out(gw_admin_response_t *res, int status, const char *fmt, ...) {
  res->status = status;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  char *p = realloc(res->body.p, (size_t)n + 1);
  if (!p) return;
  va_start(ap, fmt);
  vsnprintf(p, (size_t)n + 1, fmt, ap);
  va_end(ap);
  res->body.p = p;
  res->body.len = (size_t)n;
  res->body.cap = (size_t)n + 1;
}

static void error_out(gw_admin_response_t *res, int status, const char *code, const char *msg) {
  char m[GW_JSON_ESCAPED_MAX(300)];
  size_t n = strlen(msg); /* messages are this file's own literals */
  gw_json_escape(msg, n < 300 ? n : 300, m, sizeof m);
  out(res, status, "{\"error\":{\"code\":\"%s\",\"message\":%s}}", code, m);
}

/* Constant time: the comparison must not tell how much of a guess was right. */
static int token_ok(const char *authorization) {
  if (!g_token) return 1;
  if (!authorization || strncmp(authorization, "Bearer ", 7) != 0) return 0;
  const char *given = authorization + 7;
  size_t a = strlen(given), b = strlen(g_token);
  unsigned char diff = (unsigned char)(a != b);
  for (size_t i = 0; i < b; i++) diff |= (unsigned char)(given[i < a ? i : 0] ^ g_token[i]);
  return diff == 0;
}

static void cluster_status(gw_admin_response_t *res) {
  res->status = 200;
  if (g_ops && g_ops->cluster_status) g_ops->cluster_status(&res->body);
  else out(res, 200, "{\"broker\":\"local\",\"redis\":null}");
}

static void policy_status(gw_admin_response_t *res) {
  gw_strbuf_t b = {0};
  g_ops->policy_status(&b);
  res->status = 200;
  res->body = b;
}

static void reload(gw_admin_response_t *res) {
  int ok = g_ops->reload("admin API") == 0;
  gw_strbuf_t b = {0};
  g_ops->policy_status(&b);
  res->status = ok ? 200 : 422;
  res->body = b;
}

/* Reads the JSON body into the running policy's state (the only JSON decoder with Lua
 * values at hand); leaves the table on the stack. */
static int decode_body(lua_State *L, gw_lua_vm_t *vm, const gw_admin_request_t *req, gw_admin_response_t *res) {
  if (gw_lua_json_decode(vm, req->body ? req->body : "", req->body_len)) {
    char msg[300];
    snprintf(msg, sizeof msg, "the body must be a JSON object: %s", lua_tostring(L, -1));
    lua_pop(L, 1);
    error_out(res, 400, "bad_request", msg);
    return -1;
  }
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    error_out(res, 400, "bad_request", "the body must be a JSON object");
    return -1;
  }
  return 0;
}

static const char *field_string(lua_State *L, const char *name) {
  lua_getfield(L, -1, name);
  const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  lua_pop(L, 1); /* the string stays alive: the table holds it */
  return s;
}

/* ---- answers that may come later (publish, presence, history) ----------------------------
 * The handler starts a call whose callback may run at once (alone, the memory store) or
 * later (Redis). During the call the answer goes into the handler's response; later it goes
 * to the waiter (server.h). Every such context starts with a deferred_t. */
typedef struct deferred {
  gw_admin_response_t *now; /* during the call: the handler's response */
  struct gw_admin_waiter *waiter;
  gw_admin_response_t later;
} deferred_t;

static void deferred_begin(deferred_t *d, const gw_admin_request_t *req, gw_admin_response_t *res) {
  d->now = res;
  d->waiter = req->waiter;
}

/* Where the callback writes its answer. */
static gw_admin_response_t *deferred_response(deferred_t *d) {
  if (d->now) return d->now;
  memset(&d->later, 0, sizeof d->later);
  return &d->later;
}

/* The callback's end: 1 when it answered later (the callback frees its context), 0 during
 * the call (the handler does, in deferred_end). */
static int deferred_finish(deferred_t *d) {
  if (d->now) {
    d->now = NULL;
    return 0;
  }
  gw_admin_response_t *r = &d->later;
  gw_server_admin_complete(d->waiter, r->status, r->body.p ? r->body.p : "{}", r->body.p ? r->body.len : 2);
  gw_strbuf_free(&r->body);
  return 1;
}

/* The handler, after starting the call (rc < 0: refused, the callback never runs): 1 when the
 * context must be freed now, 0 when the answer comes later. */
static int deferred_end(deferred_t *d, int rc, gw_admin_response_t *res) {
  if (rc < 0 || !d->now) return 1;
  d->now = NULL;
  res->deferred = 1;
  return 0;
}

/* POST /admin/publish answers once the message is stored (when a replay rule keeps it: with
 * Redis, after the XADD) and gone out: {"delivered": N (this gateway's members; other
 * gateways' get it too), "stored": bool[, "offset", "epoch"]}. */
typedef struct publish_ctx {
  deferred_t d;
} publish_ctx_t;

static void on_published(void *ud, int status, const gw_stream_pos_t *pos, size_t delivered) {
  publish_ctx_t *x = ud;
  (void)status; /* GW_EUNAVAIL: the other gateways may miss it; this one's members got it */
  gw_admin_response_t *r = deferred_response(&x->d);
  if (pos)
    out(r, 200, "{\"delivered\":%zu,\"stored\":true,\"offset\":%llu,\"epoch\":\"%s\"}", delivered,
        (unsigned long long)pos->offset, pos->epoch);
  else
    out(r, 200, "{\"delivered\":%zu,\"stored\":false}", delivered);
  if (deferred_finish(&x->d)) free(x);
}

static void publish(const gw_admin_request_t *req, gw_admin_response_t *res) {
  gw_lua_vm_t *vm = gw_policy_current()->vm;
  lua_State *L = vm->L;
  int top = lua_gettop(L);
  if (decode_body(L, vm, req, res)) return;
  const char *room = field_string(L, "room"), *user = field_string(L, "user");
  const char *event = field_string(L, "event");
  char target[GW_ROOM_NAME_MAX + 1];
  if (!event || !*event || strlen(event) > 200 || (!room == !user)) {
    error_out(res, 400, "bad_request", "give \"event\" (1..200 bytes) and one of \"room\" or \"user\"");
  } else if (snprintf(target, sizeof target, "%s%s", user ? "user:" : "", user ? user : room) >= (int)sizeof target) {
    error_out(res, 400, "bad_request", "room or user name too long");
  } else {
    lua_getfield(L, -1, "data");
    size_t jlen = 0;
    const char *json = lua_isnil(L, -1) ? NULL : gw_lua_json_encode(vm, -1, &jlen);
    if (!lua_isnil(L, -1) && !json) {
      error_out(res, 400, "bad_request", "\"data\" cannot be sent as JSON");
    } else {
      publish_ctx_t *x = calloc(1, sizeof *x);
      if (x) deferred_begin(&x->d, req, res);
      int rc = x ? gw_node_publish_then(target, event, strlen(event), json, jlen, 0, on_published, x) : GW_ENOMEM;
      if (rc == GW_EINVAL)
        error_out(res, 400, "bad_request", "event names starting with \"" GW_NODE_RESERVED_PREFIX "\" are the gateway's own");
      else if (rc)
        error_out(res, 500, "internal_error", "out of memory");
      if (x && deferred_end(&x->d, rc, res)) free(x); /* refused, or answered already */
    }
  }
  lua_settop(L, top);
}

static void disconnect(const gw_admin_request_t *req, gw_admin_response_t *res) {
  gw_lua_vm_t *vm = gw_policy_current()->vm;
  lua_State *L = vm->L;
  int top = lua_gettop(L);
  if (decode_body(L, vm, req, res)) return;
  const char *user = field_string(L, "user");
  const char *reason = field_string(L, "reason");
  lua_getfield(L, -1, "conn");
  double conn_id = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : 0;
  lua_getfield(L, -2, "code");
  int code = lua_type(L, -1) == LUA_TNUMBER ? (int)lua_tonumber(L, -1) : 4000;
  if ((!user == !(conn_id > 0)) || (code != 1000 && (code < 3000 || code > 4999))) {
    error_out(res, 400, "bad_request", "give one of \"conn\" (an id) or \"user\"; \"code\" 1000 or 3000..4999");
  } else {
    size_t closed = 0;
    if (user) { /* on every gateway (node.h): closed counts this one's */
      char room[GW_ROOM_NAME_MAX + 1];
      snprintf(room, sizeof room, "user:%s", user);
      gw_node_disconnect(room, code, reason ? reason : "disconnected by an operator", &closed);
    } else {
      gw_conn_t *c = gw_conn_find((uint64_t)conn_id);
      if (c && !c->close_code) {
        gw_conn_close(c, code, reason ? reason : "disconnected by an operator");
        closed = 1;
      }
    }
    out(res, 200, "{\"closed\":%zu}", closed);
  }
  lua_settop(L, top);
}

/* ---- connections and rooms: counts and paged lists --------------------------------------
 * Pages are ordered (connections by id, rooms by name) and the cursor is the last item
 * returned, so an item present for the whole walk is listed exactly once, whatever joins or
 * leaves meanwhile. Work per request is bounded by the limit (and, for connections, by
 * PAGE_BYTES of answer), plus one pass over the table to find where to start. */

#define PAGE_DEFAULT 100
#define PAGE_MAX 1000
#define PAGE_BYTES (1u << 20) /* a connection page stops after the item that crosses 1 MiB */

/* limit: 1..PAGE_MAX, default PAGE_DEFAULT. -1 (and a 400 written) when bad. */
static int page_limit(const gw_admin_request_t *req, gw_admin_response_t *res, size_t *limit) {
  char v[32];
  *limit = PAGE_DEFAULT;
  if (gw_query_arg(req->query, "limit", v, sizeof v)) return 0;
  char *end;
  unsigned long n = strtoul(v, &end, 10);
  if (!v[0] || *end || v[0] == '-' || n < 1 || n > PAGE_MAX) {
    error_out(res, 400, "bad_request", "limit must be an integer from 1 to 1000");
    return -1;
  }
  *limit = n;
  return 0;
}

static void add_raw(gw_strbuf_t *b, const char *s) { gw_strbuf_append(b, s, strlen(s)); }

/* A JSON string: names and identities are chosen by clients and policies. */
static void add_str(gw_strbuf_t *b, const char *s) {
  size_t len = strlen(s);
  if (gw_strbuf_reserve(b, GW_JSON_ESCAPED_MAX(len)) == 0)
    b->len += gw_json_escape(s, len, b->p + b->len, GW_JSON_ESCAPED_MAX(len));
}

/* Monotonic ms (the connection's clock) to wall-clock Unix ms. */
static double wall_ms(double mono_ms) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  double now = (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
  return now - (gw_clock_now_ms() - mono_ms);
}

static void add_conn(gw_strbuf_t *b, const gw_conn_t *c) {
  long long at = (long long)wall_ms(c->connected_at_ms);
  time_t secs = (time_t)(at / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char iso[96];
  snprintf(iso, sizeof iso, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
           tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(at % 1000));
  gw_strbuf_appendf(b, "{\"id\":%llu,\"user\":", (unsigned long long)c->id);
  if (c->user) add_str(b, c->user);
  else add_raw(b, "null");
  gw_strbuf_appendf(b, ",\"protocol\":\"%s\",\"remote\":", gw_proto_name(c->proto));
  add_str(b, c->remote);
  add_raw(b, ",\"rooms\":[");
  for (size_t i = 0; i < c->nrooms; i++) {
    if (i) add_raw(b, ",");
    add_str(b, c->rooms[i].room->name);
  }
  gw_strbuf_appendf(b, "],\"connected_at\":\"%s\",\"connected_at_ms\":%lld,\"quality\":{\"class\":\"%s\",\"rtt_ms\":",
                    iso, at, gw_quality_name((gw_quality_class_t)c->quality.cls));
  if (c->pongs_received) gw_strbuf_appendf(b, "%.1f", c->rtt_ms);
  else add_raw(b, "null");
  add_raw(b, ",\"latency_ms\":");
  if (c->quality.has_latency) gw_strbuf_appendf(b, "%.1f", c->quality.latency);
  else add_raw(b, "null");
  add_raw(b, "}}");
}

static void connections(const gw_admin_request_t *req, gw_admin_response_t *res) {
  size_t limit;
  if (page_limit(req, res, &limit)) return;
  char v[32];
  uint64_t after = 0;
  if (gw_query_arg(req->query, "cursor", v, sizeof v) == 0) {
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    if (!v[0] || *end || v[0] == '-') {
      error_out(res, 400, "bad_request", "cursor must be a next_cursor value from an earlier page");
      return;
    }
    after = n;
  }
  size_t ws = 0, sio = 0;
  gw_conn_t *start = NULL;
  /* the table is in id order (ids only grow, new ones go last): the page starts after the
   * cursor's connection, or, when that one is gone, at the first id past it */
  gw_conn_t *at = after ? gw_conn_find(after) : NULL;
  for (gw_conn_t *c = gw_conn_first(); c; c = c->hh.next) {
    if (c->proto == GW_PROTO_SOCKETIO) sio++;
    else ws++;
    if (!start && !at && c->id > after) start = c;
  }
  if (at) start = at->hh.next;
  gw_strbuf_t b = {0};
  gw_strbuf_appendf(&b, "{\"connections\":%zu,\"by_protocol\":{\"ws\":%zu,\"socketio\":%zu},\"rooms\":%zu,\"items\":[",
                    ws + sio, ws, sio, gw_room_count());
  size_t n = 0;
  gw_conn_t *c = start, *last = NULL;
  for (; c && n < limit && b.len < PAGE_BYTES; c = c->hh.next, n++) {
    if (n) add_raw(&b, ",");
    add_conn(&b, c);
    last = c;
  }
  add_raw(&b, "],\"next_cursor\":");
  if (c && last) gw_strbuf_appendf(&b, "\"%llu\"}", (unsigned long long)last->id);
  else add_raw(&b, "null}");
  if (gw_strbuf_append(&b, "", 1) == 0) b.len--; /* a C string too */
  res->status = 200;
  res->body = b;
}

static const char hexd[] = "0123456789abcdef";

/* Rooms with a name past the cursor, the smallest `limit` of them: a max-heap by name. */
static int name_cmp(const gw_room_t *a, const gw_room_t *b) { return strcmp(a->name, b->name); }

static void heap_down(gw_room_t **h, size_t n, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && name_cmp(h[l], h[m]) > 0) m = l;
    if (r < n && name_cmp(h[r], h[m]) > 0) m = r;
    if (m == i) return;
    gw_room_t *t = h[i];
    h[i] = h[m];
    h[m] = t;
    i = m;
  }
}

static int qsort_cmp(const void *a, const void *b) {
  return name_cmp(*(gw_room_t *const *)a, *(gw_room_t *const *)b);
}

static void rooms(const gw_admin_request_t *req, gw_admin_response_t *res) {
  size_t limit;
  if (page_limit(req, res, &limit)) return;
  /* the cursor is the last name returned, hex-encoded: opaque, and safe in a URL */
  char hex[2 * GW_ROOM_NAME_MAX + 2], after[GW_ROOM_NAME_MAX + 1] = "";
  int has_after = 0;
  if (gw_query_arg(req->query, "cursor", hex, sizeof hex) == 0) {
    size_t hl = strlen(hex);
    int ok = hl > 0 && hl % 2 == 0 && hl / 2 <= GW_ROOM_NAME_MAX;
    for (size_t i = 0; ok && i < hl / 2; i++) {
      const char *d1 = strchr(hexd, hex[2 * i]), *d2 = strchr(hexd, hex[2 * i + 1]);
      if (!hex[2 * i] || !hex[2 * i + 1] || !d1 || !d2) ok = 0;
      else after[i] = (char)((d1 - hexd) << 4 | (d2 - hexd));
    }
    if (!ok) {
      error_out(res, 400, "bad_request", "cursor must be a next_cursor value from an earlier page");
      return;
    }
    after[hl / 2] = 0;
    has_after = 1;
  }
  gw_room_t **h = malloc(limit * sizeof *h);
  if (!h) {
    error_out(res, 500, "internal_error", "out of memory");
    return;
  }
  size_t n = 0, past = 0;
  for (gw_room_t *r = gw_room_first(); r; r = r->hh.next) {
    if (has_after && strcmp(r->name, after) <= 0) continue;
    past++;
    if (n < limit) { /* push, then sift up */
      size_t i = n++;
      h[i] = r;
      while (i && name_cmp(h[(i - 1) / 2], h[i]) < 0) {
        gw_room_t *t = h[i];
        h[i] = h[(i - 1) / 2];
        h[(i - 1) / 2] = t;
        i = (i - 1) / 2;
      }
    } else if (name_cmp(r, h[0]) < 0) {
      h[0] = r;
      heap_down(h, n, 0);
    }
  }
  qsort(h, n, sizeof *h, qsort_cmp);
  gw_strbuf_t b = {0};
  gw_strbuf_appendf(&b, "{\"rooms\":%zu,\"items\":[", gw_room_count());
  for (size_t i = 0; i < n; i++) {
    add_raw(&b, i ? ",{\"name\":" : "{\"name\":");
    add_str(&b, h[i]->name);
    gw_strbuf_appendf(&b, ",\"members\":%zu}", h[i]->n);
  }
  add_raw(&b, "],\"next_cursor\":");
  if (past > n && n) {
    add_raw(&b, "\"");
    for (const unsigned char *p = (const unsigned char *)h[n - 1]->name; *p; p++)
      gw_strbuf_appendf(&b, "%c%c", hexd[*p >> 4], hexd[*p & 15]);
    add_raw(&b, "\"}");
  } else {
    add_raw(&b, "null}");
  }
  if (gw_strbuf_append(&b, "", 1) == 0) b.len--;
  free(h);
  res->status = 200;
  res->body = b;
}

/* ---- presence across the cluster: GET /admin/presence?room=R[&limit=N] --------------------
 * Answered when the broker answers (Redis: one round trip): the request is deferred unless
 * the answer came at once (alone: the room's members). */

typedef struct presence_ctx {
  deferred_t d;
  char room[GW_ROOM_NAME_MAX + 1];
} presence_ctx_t;

static void presence_render(gw_strbuf_t *b, const char *room, const gw_presence_entry_t *m, size_t n, int more) {
  const char **u = n ? malloc(n * sizeof *u) : NULL;
  for (size_t i = 0; u && i < n; i++) u[i] = m[i].user;
  size_t users = u ? gw_node_count_distinct(u, n) : 0;
  free(u);
  add_raw(b, "{\"room\":");
  add_str(b, room);
  gw_strbuf_appendf(b, ",\"scope\":\"%s\",\"connections\":%zu,\"users\":%zu,\"more\":%s,\"members\":[",
                    gw_cluster_redis() ? "cluster" : "node", n, users, more ? "true" : "false");
  for (size_t i = 0; i < n; i++) {
    gw_strbuf_appendf(b, "%s{\"node\":\"%016llx\",\"conn\":%llu,\"user\":", i ? "," : "",
                      (unsigned long long)m[i].node, (unsigned long long)m[i].client);
    if (m[i].user) add_str(b, m[i].user);
    else add_raw(b, "null");
    add_raw(b, "}");
  }
  add_raw(b, "]}");
}

static void on_presence(void *ud, int status, const gw_presence_entry_t *m, size_t n, int more) {
  presence_ctx_t *x = ud;
  gw_admin_response_t *r = deferred_response(&x->d);
  if (status) {
    error_out(r, 503, "unavailable", status == GW_EUNAVAIL ? "Redis is down: presence across gateways is unknown"
                                                            : "presence could not be read");
  } else {
    r->status = 200;
    presence_render(&r->body, x->room, m, n, more);
  }
  if (deferred_finish(&x->d)) free(x);
}

static void presence(const gw_admin_request_t *req, gw_admin_response_t *res) {
  size_t limit;
  if (page_limit(req, res, &limit)) return;
  presence_ctx_t *x = calloc(1, sizeof *x);
  if (!x) {
    error_out(res, 500, "internal_error", "out of memory");
    return;
  }
  /* one byte more than a room name may have: a longer one is refused, not cut */
  char room[GW_ROOM_NAME_MAX + 2];
  if (gw_query_arg(req->query, "room", room, sizeof room) || !room[0] || strlen(room) > GW_ROOM_NAME_MAX) {
    free(x);
    error_out(res, 400, "bad_request", "give ?room=NAME (at most 200 bytes)");
    return;
  }
  memcpy(x->room, room, strlen(room) + 1);
  deferred_begin(&x->d, req, res);
  int rc = gw_node_presence_list(x->room, limit, on_presence, x);
  if (rc < 0)
    error_out(res, 503, "unavailable", rc == GW_EUNAVAIL ? "Redis is down: presence across gateways is unknown"
                                                         : "presence could not be read");
  if (deferred_end(&x->d, rc, res)) free(x); /* refused, or answered already */
}

/* ---- a replay stream: GET /admin/history?channel=C[&since=N&epoch=E][&limit=N] -------------
 * The newest `limit` kept messages (or those after since/epoch), the stream's top and the
 * store. Deferred like presence when the store is Redis. */

typedef struct history_ctx {
  deferred_t d;
  gw_strbuf_t body;
  size_t n;
  char channel[GW_HISTORY_CHANNEL_MAX + 1];
} history_ctx_t;

static void on_history(void *ud, int status, const gw_replay_item_t *items, size_t n, const gw_stream_pos_t *top,
                       int recovered, int last) {
  history_ctx_t *x = ud;
  if (!status) {
    for (size_t i = 0; i < n; i++) {
      gw_strbuf_appendf(&x->body, "%s{\"offset\":%llu,\"event\":", x->n++ ? "," : "",
                        (unsigned long long)items[i].offset);
      char ev[GW_JSON_ESCAPED_MAX(200)];
      gw_strbuf_append(&x->body, ev, gw_json_escape(items[i].ev, items[i].evlen, ev, sizeof ev));
      add_raw(&x->body, ",\"data\":");
      if (items[i].json) gw_strbuf_append(&x->body, items[i].json, items[i].jlen);
      else add_raw(&x->body, "null");
      add_raw(&x->body, "}");
    }
  }
  if (!last) return;
  gw_admin_response_t *r = deferred_response(&x->d);
  if (status) {
    error_out(r, 503, "unavailable", status == GW_EUNAVAIL ? "Redis is down: the stream cannot be read"
                                                            : "the stream could not be read");
  } else {
    r->status = 200;
    add_raw(&r->body, "{\"channel\":");
    add_str(&r->body, x->channel);
    gw_strbuf_appendf(&r->body, ",\"store\":\"%s\",\"top\":{\"offset\":%llu,\"epoch\":\"%s\"},\"recovered\":%s,\"messages\":[",
                      gw_node_history()->name, (unsigned long long)top->offset, top->epoch, recovered ? "true" : "false");
    if (x->body.len) gw_strbuf_append(&r->body, x->body.p, x->body.len);
    add_raw(&r->body, "]}");
  }
  gw_strbuf_free(&x->body);
  if (deferred_finish(&x->d)) free(x);
}

static void history(const gw_admin_request_t *req, gw_admin_response_t *res) {
  size_t limit;
  if (page_limit(req, res, &limit)) return;
  char channel[GW_HISTORY_CHANNEL_MAX + 2], since[32] = "", epoch[GW_HISTORY_EPOCH_MAX + 2] = "";
  if (gw_query_arg(req->query, "channel", channel, sizeof channel) || !channel[0] || strlen(channel) > GW_ROOM_NAME_MAX) {
    error_out(res, 400, "bad_request", "give ?channel=NAME (a room, or user:<id>; at most 200 bytes)");
    return;
  }
  gw_stream_pos_t from = {0, ""};
  int has_since = gw_query_arg(req->query, "since", since, sizeof since) == 0;
  int has_epoch = gw_query_arg(req->query, "epoch", epoch, sizeof epoch) == 0;
  if (has_since != has_epoch || (has_since && (!since[0] || strspn(since, "0123456789") != strlen(since) ||
                                               strlen(since) > 19 || strlen(epoch) > GW_HISTORY_EPOCH_MAX))) {
    error_out(res, 400, "bad_request", "since and epoch go together: since=<offset>&epoch=<epoch>");
    return;
  }
  if (has_since) {
    from.offset = strtoull(since, NULL, 10);
    memcpy(from.epoch, epoch, strlen(epoch) + 1);
  }
  if (!gw_node_history()) {
    error_out(res, 404, "not_found", "no replay store");
    return;
  }
  history_ctx_t *x = calloc(1, sizeof *x);
  if (!x) {
    error_out(res, 500, "internal_error", "out of memory");
    return;
  }
  memcpy(x->channel, channel, strlen(channel) + 1);
  deferred_begin(&x->d, req, res);
  int rc = gw_node_replay_read(x->channel, &from, limit, on_history, x);
  if (rc < 0) error_out(res, 503, "unavailable", "the stream could not be read");
  if (deferred_end(&x->d, rc, res)) {
    gw_strbuf_free(&x->body);
    free(x);
  }
}

void gw_admin_handle(const gw_admin_request_t *req, gw_admin_response_t *res) {
  memset(&res->body, 0, sizeof res->body);
  if (!token_ok(req->authorization)) {
    error_out(res, 401, "unauthorized", "this admin API needs \"Authorization: Bearer <token>\"");
    return;
  }
  const char *p = req->path, *m = req->method;
  int get = strcmp(m, "GET") == 0, post = strcmp(m, "POST") == 0;
  if (strcmp(p, "/admin/policy") == 0 && get) policy_status(res);
  else if (strcmp(p, "/admin/reload") == 0 && post) reload(res);
  else if (strcmp(p, "/admin/publish") == 0 && post) publish(req, res);
  else if (strcmp(p, "/admin/disconnect") == 0 && post) disconnect(req, res);
  else if (strcmp(p, "/admin/connections") == 0 && get) connections(req, res);
  else if (strcmp(p, "/admin/rooms") == 0 && get) rooms(req, res);
  else if (strcmp(p, "/admin/cluster") == 0 && get) cluster_status(res);
  else if (strcmp(p, "/admin/presence") == 0 && get) presence(req, res);
  else if (strcmp(p, "/admin/history") == 0 && get) history(req, res);
  else if (!strcmp(p, "/admin/policy") || !strcmp(p, "/admin/reload") || !strcmp(p, "/admin/publish") ||
           !strcmp(p, "/admin/disconnect") || !strcmp(p, "/admin/connections") || !strcmp(p, "/admin/rooms") || !strcmp(p, "/admin/cluster") ||
           !strcmp(p, "/admin/presence") || !strcmp(p, "/admin/history"))
    error_out(res, 405, "method_not_allowed", "wrong method for this endpoint");
  else
    error_out(res, 404, "not_found", "no such admin endpoint");
  gw_log(GW_LOG_INFO, 0, "admin: %s %s -> %d", m, p, res->status);
}
