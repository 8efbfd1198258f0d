#include "history_mem.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <uthash.h>

#include "errors.h"

typedef struct mem_item {
  struct mem_item *next_dead; /* only while waiting in the graveyard */
  uint64_t offset;
  double expires; /* INFINITY: never */
  size_t len;
  unsigned char data[];
} mem_item_t;

typedef struct mem_stream {
  char *name;
  gw_stream_pos_t top;
  uint64_t acked; /* the ack cursor (ack_set), within top.epoch */
  /* a ring of the kept messages, oldest at head; offsets are contiguous, so the message
   * with offset o sits at (head + o - first) % cap */
  mem_item_t **ring;
  size_t cap, head, n;
  size_t bytes;
  double touched; /* last append, or creation */
  struct mem_stream *lru_prev, *lru_next; /* least recently appended first */
  UT_hash_handle hh;
} mem_stream_t;

struct gw_history_mem {
  gw_history_t table;
  gw_history_mem_config_t cfg;
  mem_stream_t *streams;
  mem_stream_t *lru_head, *lru_tail;
  mem_stream_t *cursor; /* the sweep's next stream */
  size_t bytes, items;
  gw_history_mem_stats_t st;
  /* callbacks may call the store again: messages removed meanwhile are freed only once the
   * outermost callback returns, so the items a read handed out stay valid */
  unsigned depth;
  mem_item_t *graveyard;
  int close_pending;
};

void gw_history_mem_config_defaults(gw_history_mem_config_t *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->max_streams = 10000;
  cfg->max_total_bytes = (size_t)64 << 20;
  cfg->max_stream_len = 1000;
  cfg->max_stream_bytes = (size_t)1 << 20;
  cfg->default_ttl_ms = 0;
  cfg->stream_ttl_ms = 24ull * 3600 * 1000;
}

static double monotonic_ms(void *ud) {
  (void)ud;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static double now(const gw_history_mem_t *m) { return m->cfg.now_ms(m->cfg.clock_ud); }

/* 64 random bits as 16 hex digits: a new stream never reuses an earlier one's epoch. */
static void new_epoch(char *out) {
  static uint64_t fallback_counter;
  uint64_t r = 0;
  unsigned char *p = (unsigned char *)&r;
  size_t left = sizeof r;
  while (left) {
    ssize_t got = getrandom(p, left, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      /* never reached on Linux >= 3.17; still distinct within the process */
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      r = ((uint64_t)ts.tv_sec * 1000000007u) ^ (uint64_t)ts.tv_nsec ^ (++fallback_counter << 40);
      break;
    }
    p += got;
    left -= (size_t)got;
  }
  snprintf(out, GW_HISTORY_EPOCH_MAX + 1, "%016llx", (unsigned long long)r);
}

/* ---- items ----------------------------------------------------------------------------- */

static mem_item_t *item_at(const mem_stream_t *s, size_t i) { return s->ring[(s->head + i) % s->cap]; }

static void item_release(gw_history_mem_t *m, mem_item_t *it) {
  if (m->depth) {
    it->next_dead = m->graveyard;
    m->graveyard = it;
  } else {
    free(it);
  }
}

/* Drops the oldest message of s. */
static void pop_oldest(gw_history_mem_t *m, mem_stream_t *s) {
  mem_item_t *it = s->ring[s->head];
  s->ring[s->head] = NULL;
  s->head = (s->head + 1) % s->cap;
  s->n--;
  s->bytes -= it->len;
  m->bytes -= it->len;
  m->items--;
  item_release(m, it);
}

static int ring_grow(mem_stream_t *s, size_t need) {
  if (need <= s->cap) return 0;
  size_t ncap = s->cap ? s->cap * 2 : 8;
  while (ncap < need) ncap *= 2;
  mem_item_t **r = malloc(ncap * sizeof *r);
  if (!r) return GW_ENOMEM;
  for (size_t i = 0; i < s->n; i++) r[i] = item_at(s, i);
  free(s->ring);
  s->ring = r;
  s->cap = ncap;
  s->head = 0;
  return 0;
}

/* ---- streams --------------------------------------------------------------------------- */

static void lru_unlink(gw_history_mem_t *m, mem_stream_t *s) {
  if (m->cursor == s) m->cursor = s->lru_next;
  if (s->lru_prev) s->lru_prev->lru_next = s->lru_next;
  else m->lru_head = s->lru_next;
  if (s->lru_next) s->lru_next->lru_prev = s->lru_prev;
  else m->lru_tail = s->lru_prev;
  s->lru_prev = s->lru_next = NULL;
}

static void lru_push_tail(gw_history_mem_t *m, mem_stream_t *s) {
  s->lru_prev = m->lru_tail;
  s->lru_next = NULL;
  if (m->lru_tail) m->lru_tail->lru_next = s;
  else m->lru_head = s;
  m->lru_tail = s;
}

static void stream_delete(gw_history_mem_t *m, mem_stream_t *s) {
  while (s->n) pop_oldest(m, s);
  lru_unlink(m, s);
  HASH_DEL(m->streams, s);
  free(s->ring);
  free(s->name);
  free(s);
}

static void evict(gw_history_mem_t *m, mem_stream_t *s) {
  m->st.evicted++;
  m->st.evicted_items += s->n;
  stream_delete(m, s);
}

/* Drops what has expired in s at t; returns 1 when s itself was forgotten (freed). The
 * count of removed messages and streams is added to *removed when given. */
static int expire_stream(gw_history_mem_t *m, mem_stream_t *s, double t, size_t *removed) {
  while (s->n && s->ring[s->head]->expires <= t) {
    pop_oldest(m, s);
    m->st.expired++;
    if (removed) (*removed)++;
  }
  if (s->n == 0 && m->cfg.stream_ttl_ms && t >= s->touched + (double)m->cfg.stream_ttl_ms) {
    m->st.streams_expired++;
    if (removed) (*removed)++;
    stream_delete(m, s);
    return 1;
  }
  return 0;
}

static int check_channel(const char *channel) {
  if (!channel) return GW_EINVAL;
  size_t len = strnlen(channel, GW_HISTORY_CHANNEL_MAX + 1);
  return len == 0 || len > GW_HISTORY_CHANNEL_MAX ? GW_EINVAL : 0;
}

/* The live stream of channel at t (expired data removed first); NULL when there is none. */
static mem_stream_t *stream_find(gw_history_mem_t *m, const char *channel, double t) {
  mem_stream_t *s;
  HASH_FIND_STR(m->streams, channel, s);
  if (s && expire_stream(m, s, t, NULL)) s = NULL;
  return s;
}

/* The stream of channel, created empty with a new epoch when absent (evicting the least
 * recently appended stream at max_streams). NULL: out of memory. */
static mem_stream_t *stream_get(gw_history_mem_t *m, const char *channel, double t) {
  mem_stream_t *s = stream_find(m, channel, t);
  if (s) return s;
  s = calloc(1, sizeof *s);
  if (!s || !(s->name = strdup(channel))) {
    free(s);
    return NULL;
  }
  while (HASH_COUNT(m->streams) >= m->cfg.max_streams && m->lru_head) evict(m, m->lru_head);
  new_epoch(s->top.epoch);
  s->touched = t;
  HASH_ADD_KEYPTR(hh, m->streams, s->name, strlen(s->name), s);
  lru_push_tail(m, s);
  return s;
}

/* ---- the operations -------------------------------------------------------------------- */

static void enter(gw_history_mem_t *m) { m->depth++; }

static void leave(gw_history_mem_t *m) {
  if (--m->depth) return;
  while (m->graveyard) {
    mem_item_t *it = m->graveyard;
    m->graveyard = it->next_dead;
    free(it);
  }
  if (m->close_pending) {
    m->close_pending = 0;
    gw_history_mem_free(m);
  }
}

static int mem_append(void *ud, const char *channel, const void *data, size_t len,
                      const gw_history_append_opts_t *opts, gw_history_pos_cb cb, void *cb_ud) {
  gw_history_mem_t *m = ud;
  if (m->close_pending) return GW_ECANCELED;
  if (check_channel(channel) || (!data && len)) return GW_EINVAL;
  if (len > m->cfg.max_stream_bytes || len > m->cfg.max_total_bytes) {
    m->st.refused++;
    return GW_ELIMIT;
  }
  size_t max_len = m->cfg.max_stream_len;
  if (opts && opts->max_len && opts->max_len < max_len) max_len = opts->max_len;
  uint64_t ttl = opts && opts->ttl_ms ? opts->ttl_ms : m->cfg.default_ttl_ms;
  double t = now(m);

  mem_item_t *it = malloc(sizeof *it + len);
  if (!it) return GW_ENOMEM;
  mem_stream_t *s = stream_get(m, channel, t);
  if (!s || ring_grow(s, s->n + 1)) {
    free(it);
    return GW_ENOMEM; /* a stream created just now stays, empty: harmless, it expires */
  }
  it->next_dead = NULL;
  it->offset = ++s->top.offset;
  it->expires = ttl ? t + (double)ttl : INFINITY;
  it->len = len;
  if (len) memcpy(it->data, data, len);
  /* keep expiry in offset order (see history_mem.h): usually stops at the first look */
  for (size_t i = s->n; i > 0 && item_at(s, i - 1)->expires > it->expires; i--)
    item_at(s, i - 1)->expires = it->expires;
  s->ring[(s->head + s->n) % s->cap] = it;
  s->n++;
  s->bytes += len;
  m->bytes += len;
  m->items++;
  m->st.stored++;
  s->touched = t;
  lru_unlink(m, s);
  lru_push_tail(m, s);

  while (s->n > max_len || s->bytes > m->cfg.max_stream_bytes) {
    pop_oldest(m, s);
    m->st.trimmed++;
  }
  while (m->bytes > m->cfg.max_total_bytes) {
    if (m->lru_head != s) {
      evict(m, m->lru_head);
    } else { /* the only stream: it fits alone, since len <= max_total_bytes */
      pop_oldest(m, s);
      m->st.trimmed++;
    }
  }

  gw_stream_pos_t pos = s->top;
  pos.offset = it->offset;
  if (cb) {
    enter(m);
    cb(cb_ud, 0, &pos);
    leave(m);
  }
  return 0;
}

static int mem_read_since(void *ud, const char *channel, const gw_stream_pos_t *since,
                          size_t limit, gw_history_read_cb cb, void *cb_ud) {
  gw_history_mem_t *m = ud;
  if (m->close_pending) return GW_ECANCELED;
  if (check_channel(channel) || !since || !cb) return GW_EINVAL;
  mem_stream_t *s = stream_get(m, channel, now(m));
  if (!s) return GW_ENOMEM;

  uint64_t first = s->top.offset - s->n + 1; /* top + 1 when empty */
  int recovered = strncmp(since->epoch, s->top.epoch, sizeof since->epoch) == 0 && since->offset + 1 >= first &&
                  since->offset <= s->top.offset;
  size_t from, k; /* index in the ring, and how many */
  if (recovered) {
    from = (size_t)(since->offset + 1 - first);
    k = s->n - from;
  } else {
    k = s->n;
    from = 0;
  }
  if (k > limit) {
    if (!recovered) from += k - limit; /* the newest */
    k = limit;
  }
  gw_history_item_t *items = NULL;
  if (k && !(items = malloc(k * sizeof *items))) return GW_ENOMEM;
  for (size_t i = 0; i < k; i++) {
    mem_item_t *it = item_at(s, from + i);
    items[i].offset = it->offset;
    items[i].data = it->data;
    items[i].len = it->len;
  }
  gw_stream_pos_t top = s->top;
  enter(m);
  cb(cb_ud, 0, items, k, &top, recovered);
  leave(m);
  free(items);
  return 0;
}

static int mem_top(void *ud, const char *channel, gw_history_pos_cb cb, void *cb_ud) {
  gw_history_mem_t *m = ud;
  if (m->close_pending) return GW_ECANCELED;
  if (check_channel(channel) || !cb) return GW_EINVAL;
  mem_stream_t *s = stream_get(m, channel, now(m));
  if (!s) return GW_ENOMEM;
  gw_stream_pos_t top = s->top;
  enter(m);
  cb(cb_ud, 0, &top);
  leave(m);
  return 0;
}

static int mem_ack_set(void *ud, const char *channel, const gw_stream_pos_t *pos) {
  gw_history_mem_t *m = ud;
  if (m->close_pending) return GW_ECANCELED;
  if (check_channel(channel) || !pos) return GW_EINVAL;
  mem_stream_t *s = stream_find(m, channel, now(m));
  if (s && strncmp(pos->epoch, s->top.epoch, sizeof pos->epoch) == 0 && pos->offset > s->acked &&
      pos->offset <= s->top.offset)
    s->acked = pos->offset;
  return 0;
}

static int mem_ack_get(void *ud, const char *channel, gw_history_pos_cb cb, void *cb_ud) {
  gw_history_mem_t *m = ud;
  if (m->close_pending) return GW_ECANCELED;
  if (check_channel(channel) || !cb) return GW_EINVAL;
  mem_stream_t *s = stream_get(m, channel, now(m));
  if (!s) return GW_ENOMEM;
  gw_stream_pos_t pos = s->top;
  pos.offset = s->acked;
  enter(m);
  cb(cb_ud, 0, &pos);
  leave(m);
  return 0;
}

static void mem_close(void *ud) { gw_history_mem_free(ud); }

/* ---- the store ------------------------------------------------------------------------- */

int gw_history_mem_new(const gw_history_mem_config_t *cfg, gw_history_mem_t **out) {
  *out = NULL;
  gw_history_mem_config_t c;
  if (cfg) c = *cfg;
  else gw_history_mem_config_defaults(&c);
  if (!c.max_streams || !c.max_total_bytes || !c.max_stream_len || !c.max_stream_bytes)
    return GW_EINVAL;
  if (!c.now_ms) c.now_ms = monotonic_ms;
  gw_history_mem_t *m = calloc(1, sizeof *m);
  if (!m) return GW_ENOMEM;
  m->cfg = c;
  m->table.append = mem_append;
  m->table.read_since = mem_read_since;
  m->table.top = mem_top;
  m->table.ack_set = mem_ack_set;
  m->table.ack_get = mem_ack_get;
  m->table.close = mem_close;
  m->table.name = "memory";
  m->table.ud = m;
  *out = m;
  return 0;
}

const gw_history_t *gw_history_mem_store(gw_history_mem_t *m) { return &m->table; }

void gw_history_mem_stats(const gw_history_mem_t *m, gw_history_mem_stats_t *out) {
  *out = m->st;
  out->streams = HASH_COUNT(m->streams);
  out->items = m->items;
  out->bytes = m->bytes;
}

size_t gw_history_mem_sweep(gw_history_mem_t *m, size_t max_visits) {
  size_t removed = 0;
  if (m->close_pending || !m->lru_head) return 0;
  double t = now(m);
  size_t n = HASH_COUNT(m->streams); /* one round at most: no stream twice per call */
  if (max_visits > n) max_visits = n;
  for (size_t v = 0; v < max_visits && m->lru_head; v++) {
    if (!m->cursor) m->cursor = m->lru_head; /* wrapped around */
    mem_stream_t *s = m->cursor;
    m->cursor = s->lru_next;
    expire_stream(m, s, t, &removed);
  }
  return removed;
}

void gw_history_mem_free(gw_history_mem_t *m) {
  if (!m) return;
  if (m->depth) { /* inside one of its callbacks: leave() comes back here */
    m->close_pending = 1;
    return;
  }
  while (m->streams) stream_delete(m, m->streams);
  free(m);
}
