/* Socket.IO connection state recovery's store (sio_recovery.h). */
#include "sio_recovery.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "errors.h"
#include "log.h"
#include "loop.h"
#include "room.h"

static gw_sior_limits_t g_limits = {GW_SIOR_DEFAULT_MAX_PACKETS, GW_SIOR_DEFAULT_MAX_BYTES,
                                    GW_SIOR_DEFAULT_MAX_TOTAL_BYTES, GW_SIOR_DEFAULT_MAX_PARKED};
static uint64_t g_offset;
static size_t g_total_bytes;
static gw_sior_parked_t *g_parked;
static ev_timer g_sweeper;

void gw_sior_set_limits(const gw_sior_limits_t *l) { g_limits = *l; }
const gw_sior_limits_t *gw_sior_get_limits(void) { return &g_limits; }

/* ---- offsets ------------------------------------------------------------------------------ */

uint64_t gw_sior_next_offset(void) { return ++g_offset; }
uint64_t gw_sior_last_offset(void) { return g_offset; }

size_t gw_sior_offset_str(uint64_t off, char *out) {
  int n = snprintf(out, GW_SIOR_OFFSET_MAX, "%llu", (unsigned long long)off);
  return n > 0 ? (size_t)n : 0;
}

int gw_sior_offset_parse(const char *s, size_t len, uint64_t *off) {
  if (len == 0 || len > 20) return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    uint64_t d = (uint64_t)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return -1;
    v = v * 10 + d;
  }
  *off = v;
  return 0;
}

void gw_sior_new_pid(char *out) {
  static const char hex[] = "0123456789abcdef";
  unsigned char r[GW_SIOR_PID_LEN / 2];
  gw_random_bytes(r, sizeof r);
  for (size_t i = 0; i < sizeof r; i++) {
    out[2 * i] = hex[r[i] >> 4];
    out[2 * i + 1] = hex[r[i] & 15];
  }
  out[GW_SIOR_PID_LEN] = 0;
}

/* ---- buffers ------------------------------------------------------------------------------ */

void gw_sior_buf_init(gw_sior_buf_t *b) {
  memset(b, 0, sizeof *b);
  b->floor = g_offset;
}

static gw_sior_entry_t *slot(const gw_sior_buf_t *b, size_t i) { return &b->v[(b->head + i) % b->cap]; }

const gw_sior_entry_t *gw_sior_buf_at(const gw_sior_buf_t *b, size_t i) { return i < b->n ? slot(b, i) : NULL; }

static void entry_release(gw_sior_entry_t *e) {
  if (e->npkts == 1) {
    gw_msgbuf_unref(e->one);
  } else {
    for (size_t i = 0; i < e->npkts; i++) gw_msgbuf_unref(e->many[i]);
    free(e->many);
  }
  memset(e, 0, sizeof *e);
}

static void drop_oldest(gw_sior_buf_t *b) {
  gw_sior_entry_t *e = slot(b, 0);
  b->floor = e->off;
  b->trimmed = 1;
  b->bytes -= e->bytes;
  g_total_bytes -= e->bytes;
  entry_release(e);
  b->head = (b->head + 1) % b->cap;
  b->n--;
}

void gw_sior_buf_clear(gw_sior_buf_t *b) {
  while (b->n) drop_oldest(b);
  b->head = 0;
}

void gw_sior_buf_free(gw_sior_buf_t *b) {
  uint64_t floor = b->floor;
  int trimmed = b->trimmed;
  gw_sior_buf_clear(b);
  free(b->v);
  memset(b, 0, sizeof *b);
  b->floor = floor;
  b->trimmed = trimmed;
}

/* Everything dropped: no client that saw less than off can be caught up any more. */
static void drop_all(gw_sior_buf_t *b, uint64_t off) {
  gw_sior_buf_clear(b);
  if (off > b->floor) b->floor = off;
  b->trimmed = 1;
}

static int grow_ring(gw_sior_buf_t *b) {
  size_t ncap = b->cap ? b->cap * 2 : 8;
  if (ncap > g_limits.max_packets) ncap = g_limits.max_packets;
  gw_sior_entry_t *nv = malloc(ncap * sizeof *nv);
  if (!nv) return GW_ENOMEM;
  for (size_t i = 0; i < b->n; i++) nv[i] = *slot(b, i);
  free(b->v);
  b->v = nv;
  b->cap = ncap;
  b->head = 0;
  return 0;
}

int gw_sior_buf_add(gw_sior_buf_t *b, uint64_t off, gw_msgbuf_t *const *pkts, size_t npkts) {
  if (npkts == 0 || g_limits.max_packets == 0) {
    drop_all(b, off);
    return 0;
  }
  size_t bytes = GW_SIOR_ENTRY_OVERHEAD;
  for (size_t i = 0; i < npkts; i++) bytes += pkts[i]->len;
  if (bytes > g_limits.max_bytes || bytes > g_limits.max_total_bytes) {
    drop_all(b, off);
    return 0;
  }
  while (b->n && (b->n >= g_limits.max_packets || b->bytes + bytes > g_limits.max_bytes)) drop_oldest(b);
  /* the process-wide bound: this session gives up its own oldest first */
  while (b->n && g_total_bytes + bytes > g_limits.max_total_bytes) drop_oldest(b);
  if (g_total_bytes + bytes > g_limits.max_total_bytes) {
    drop_all(b, off);
    return 0;
  }
  if (b->n == b->cap && grow_ring(b)) {
    drop_all(b, off);
    return GW_ENOMEM;
  }
  gw_sior_entry_t e = {off, NULL, NULL, npkts, bytes};
  if (npkts == 1) {
    e.one = gw_msgbuf_ref(pkts[0]);
  } else {
    if (!(e.many = malloc(npkts * sizeof *e.many))) {
      drop_all(b, off);
      return GW_ENOMEM;
    }
    for (size_t i = 0; i < npkts; i++) e.many[i] = gw_msgbuf_ref(pkts[i]);
  }
  b->n++;
  *slot(b, b->n - 1) = e;
  b->bytes += bytes;
  g_total_bytes += bytes;
  return 0;
}

int gw_sior_buf_covers(const gw_sior_buf_t *b, uint64_t off) { return !b->trimmed || off >= b->floor; }

size_t gw_sior_total_bytes(void) { return g_total_bytes; }

/* ---- parked sessions ------------------------------------------------------------------------- */

size_t gw_sior_parked_count(void) { return HASH_COUNT(g_parked); }

void gw_sior_parked_free(gw_sior_parked_t *p) {
  if (!p) return;
  for (size_t i = 0; i < p->nrooms; i++) free(p->rooms[i]);
  free(p->rooms);
  gw_sior_buf_free(&p->buf);
  free(p->user);
  free(p->nsp);
  free(p);
}

static void on_sweep(struct ev_loop *loop, ev_timer *w, int revents);

/* The sweeper does not keep the loop alive (ev_unref): a stopping gateway does not wait for
 * parked sessions. */
static void sweeper_start(void) {
  struct ev_loop *loop = gw_loop_main();
  if (!loop || ev_is_active(&g_sweeper)) return;
  ev_timer_init(&g_sweeper, on_sweep, 1.0, 1.0);
  ev_timer_start(loop, &g_sweeper);
  ev_unref(loop);
}

static void sweeper_stop(void) {
  struct ev_loop *loop = gw_loop_main();
  if (!loop || !ev_is_active(&g_sweeper)) return;
  ev_ref(loop);
  ev_timer_stop(loop, &g_sweeper);
}

void gw_sior_unpark(gw_sior_parked_t *p) {
  for (size_t i = 0; i < p->nrooms; i++) gw_room_unwatch(&p->watcher, p->rooms[i]);
  HASH_DEL(g_parked, p);
  if (!g_parked) sweeper_stop();
}

static void drop(gw_sior_parked_t *p) {
  gw_sior_unpark(p);
  gw_sior_parked_free(p);
}

void gw_sior_sweep(double now_ms) {
  gw_sior_parked_t *p, *tmp;
  HASH_ITER(hh, g_parked, p, tmp) {
    if (p->expires_ms <= now_ms) {
      gw_log(GW_LOG_DEBUG, p->watcher.id, "socket.io: parked session %s expired", p->sid);
      drop(p);
    }
  }
}

static void on_sweep(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop, (void)w, (void)revents;
  gw_sior_sweep(gw_clock_now_ms());
}

void gw_sior_free_all(void) {
  while (g_parked) drop(g_parked);
}

gw_sior_parked_t *gw_sior_park(const char *pid, const char *sid, const char *nsp, const gw_conn_t *from,
                               gw_sior_buf_t *buf, double ttl_ms, const gw_conn_ops_t *ops) {
  gw_sior_parked_t *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  snprintf(p->pid, sizeof p->pid, "%s", pid);
  snprintf(p->sid, sizeof p->sid, "%s", sid);
  p->user = strdup(from->user ? from->user : "");
  p->nsp = strdup(nsp);
  p->rooms = from->nrooms ? calloc(from->nrooms, sizeof *p->rooms) : NULL;
  int ok = p->user && p->nsp && (p->rooms || !from->nrooms);
  for (size_t i = 0; ok && i < from->nrooms; i++) ok = (p->rooms[p->nrooms++] = strdup(from->rooms[i].room->name)) != NULL;
  if (!ok) {
    gw_sior_parked_free(p);
    return NULL;
  }
  p->watcher.id = from->id;
  p->watcher.proto = GW_PROTO_SOCKETIO;
  p->watcher.ops = ops;
  p->watcher.transport = p;
  for (size_t i = 0; i < p->nrooms; i++) {
    if (gw_room_watch(&p->watcher, p->rooms[i])) {
      while (i-- > 0) gw_room_unwatch(&p->watcher, p->rooms[i]);
      gw_sior_parked_free(p);
      return NULL;
    }
  }
  while (g_parked && HASH_COUNT(g_parked) >= g_limits.max_parked) drop(g_parked); /* the oldest */
  p->buf = *buf;
  memset(buf, 0, sizeof *buf);
  buf->floor = p->buf.floor;
  buf->trimmed = p->buf.trimmed;
  p->expires_ms = gw_clock_now_ms() + ttl_ms;
  gw_sior_parked_t *old;
  HASH_FIND_STR(g_parked, p->pid, old);
  if (old) drop(old);
  HASH_ADD_STR(g_parked, pid, p);
  sweeper_start();
  return p;
}

gw_sior_parked_t *gw_sior_find(const char *pid) {
  gw_sior_parked_t *p;
  HASH_FIND_STR(g_parked, pid, p);
  if (p && p->expires_ms <= gw_clock_now_ms()) {
    drop(p);
    p = NULL;
  }
  return p;
}
