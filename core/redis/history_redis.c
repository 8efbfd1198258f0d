#include "history_redis.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "errors.h"
#include "redis_script.h"

/* Creates the meta hash with a new epoch when missing (and drops a stream left without
 * one), shared by both scripts. KEYS[1] stream, KEYS[2] meta; `cand` the new epoch. */
#define META_LUA(cand, ttl)                                                     \
  "local ep = redis.call('HGET', KEYS[2], 'epoch')\n"                         \
  "if not ep then\n"                                                          \
  "  ep = " cand "\n"                                                         \
  "  redis.call('DEL', KEYS[1])\n"                                            \
  "  redis.call('HSET', KEYS[2], 'epoch', ep, 'top', 0)\n"                    \
  "  redis.call('PEXPIRE', KEYS[2], " ttl ")\n"                               \
  "end\n"

#define NOW_LUA                                                                 \
  "local t = redis.call('TIME')\n"                                            \
  "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

/* ARGV: data, maxlen, message ttl ms (0: none), stream ttl ms, epoch candidate.
 * -> {epoch, offset, trimmed} */
static const char APPEND_LUA[] =
    NOW_LUA META_LUA("ARGV[5]", "ARGV[4]")
    "local off = redis.call('HINCRBY', KEYS[2], 'top', 1)\n"
    "local mt, kt = tonumber(ARGV[3]), tonumber(ARGV[4])\n"
    "local exp = 0\n"
    "if mt > 0 then exp = now + mt end\n"
    "local before = redis.call('XLEN', KEYS[1])\n"
    "redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], off .. '-0', 'd', ARGV[1], 'e', exp)\n"
    "local after = redis.call('XLEN', KEYS[1])\n"
    "if mt > kt then kt = mt end\n"
    "local cur = redis.call('PTTL', KEYS[1])\n"
    "if cur > kt then kt = cur end\n"
    "redis.call('PEXPIRE', KEYS[1], kt)\n"
    "redis.call('PEXPIRE', KEYS[2], kt)\n"
    "return {ep, off, before + 1 - after}\n";

/* ARGV: since offset, since epoch, limit, stream ttl ms, epoch candidate.
 * -> {epoch, top, recovered, offset1, data1, ...} */
static const char READ_LUA[] =
    NOW_LUA META_LUA("ARGV[5]", "ARGV[4]")
    "local top = tonumber(redis.call('HGET', KEYS[2], 'top'))\n"
    "local function expired(f)\n"
    "  for i = 1, #f, 2 do\n"
    "    if f[i] == 'e' then local e = tonumber(f[i + 1]); return e > 0 and e <= now end\n"
    "  end\n"
    "  return false\n"
    "end\n"
    "local function data(f)\n"
    "  for i = 1, #f, 2 do if f[i] == 'd' then return f[i + 1] end end\n"
    "  return ''\n"
    "end\n"
    /* expired entries at the head go */
    "local done = false\n"
    "while not done do\n"
    "  local h = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 64)\n"
    "  if #h == 0 then break end\n"
    "  for _, e in ipairs(h) do\n"
    "    if expired(e[2]) then redis.call('XDEL', KEYS[1], e[1])\n"
    "    else done = true; break end\n"
    "  end\n"
    "end\n"
    "local first = top + 1\n"
    "local h = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)\n"
    "if #h > 0 then first = tonumber(string.match(h[1][1], '^(%d+)')) end\n"
    "local since, limit = tonumber(ARGV[1]), tonumber(ARGV[3])\n"
    "local rec = ep == ARGV[2] and since + 1 >= first and since <= top\n"
    "local out = {ep, top, 0}\n"
    "if limit > 0 and rec then\n"
    "  local r = redis.call('XRANGE', KEYS[1], (since + 1) .. '-0', '+', 'COUNT', limit)\n"
    "  for _, e in ipairs(r) do\n"
    "    if expired(e[2]) then rec = false; break end\n"
    "    out[#out + 1] = tonumber(string.match(e[1], '^(%d+)'))\n"
    "    out[#out + 1] = data(e[2])\n"
    "  end\n"
    "end\n"
    "if limit > 0 and not rec then\n"
    "  out = {ep, top, 0}\n"
    "  local r = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', limit)\n"
    "  for i = #r, 1, -1 do\n"
    "    local e = r[i]\n"
    "    if not expired(e[2]) then\n"
    "      out[#out + 1] = tonumber(string.match(e[1], '^(%d+)'))\n"
    "      out[#out + 1] = data(e[2])\n"
    "    end\n"
    "  end\n"
    "end\n"
    "if rec then out[3] = 1 end\n"
    "return out\n";

/* ARGV: offset, epoch. The cursor moves forward within the current epoch only. */
static const char ACK_SET_LUA[] =
    "if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[2] then return 0 end\n"
    "local top = tonumber(redis.call('HGET', KEYS[1], 'top') or '0')\n"
    "local cur = tonumber(redis.call('HGET', KEYS[1], 'acked') or '0')\n"
    "local off = tonumber(ARGV[1])\n"
    "if off > cur and off <= top then redis.call('HSET', KEYS[1], 'acked', off) return 1 end\n"
    "return 0\n";

/* -> {epoch, acked} (creating the meta hash like a read). ARGV: stream ttl ms, epoch cand. */
static const char ACK_GET_LUA[] =
    META_LUA("ARGV[2]", "ARGV[1]")
    "return {ep, tonumber(redis.call('HGET', KEYS[2], 'acked') or '0')}\n";

enum { CALL_APPEND, CALL_READ, CALL_ACK_SET, CALL_ACK_GET };

typedef struct call {
  struct call *next, *prev;
  gw_history_redis_t *h; /* NULL: the store is gone (the callback already ran) */
  int read;
  int kind;
  size_t limit;
  gw_history_pos_cb pos_cb;
  gw_history_read_cb read_cb;
  void *cb_ud;
} call_t;

struct gw_history_redis {
  gw_history_t table;
  gw_history_redis_config_t cfg;
  char prefix[GW_REDIS_PREFIX_MAX + 1];
  gw_redis_script_t s_append, s_read, s_ack_set, s_ack_get;
  call_t *calls;
  gw_history_redis_stats_t st;
};

static int check_channel(const char *channel) {
  if (!channel) return GW_EINVAL;
  size_t len = strnlen(channel, GW_HISTORY_CHANNEL_MAX + 1);
  return len == 0 || len > GW_HISTORY_CHANNEL_MAX ? GW_EINVAL : 0;
}

static void new_epoch(char out[17]) {
  uint64_t r = 0;
  if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) {
    struct timespec ts; /* never on Linux >= 3.17 */
    clock_gettime(CLOCK_REALTIME, &ts);
    r = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec;
  }
  snprintf(out, 17, "%016" PRIx64, r);
}

#define KEYCAP (GW_REDIS_PREFIX_MAX + 16 + GW_HISTORY_CHANNEL_MAX + 1)

static void call_unlink(gw_history_redis_t *h, call_t *k) {
  if (k->prev) k->prev->next = k->next;
  else h->calls = k->next;
  if (k->next) k->next->prev = k->prev;
  h->st.pending--;
}

static int epoch_of(const redisReply *r, gw_stream_pos_t *pos) {
  if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len > GW_HISTORY_EPOCH_MAX ||
      memchr(r->str, '\0', r->len))
    return GW_EIO;
  memcpy(pos->epoch, r->str, r->len);
  pos->epoch[r->len] = '\0';
  return 0;
}

static void finish_append(gw_history_redis_t *h, call_t *k, int status, const redisReply *r) {
  gw_stream_pos_t pos = {0};
  if (status == 0) {
    if (r->type == REDIS_REPLY_ERROR) {
      status = GW_EIO;
      h->st.errors++;
    } else if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 || epoch_of(r->element[0], &pos) ||
               r->element[1]->type != REDIS_REPLY_INTEGER || r->element[1]->integer < 1 ||
               r->element[2]->type != REDIS_REPLY_INTEGER || r->element[2]->integer < 0) {
      status = GW_EIO;
      h->st.malformed++;
    } else {
      pos.offset = (uint64_t)r->element[1]->integer;
      h->st.stored++;
      h->st.trimmed += (uint64_t)r->element[2]->integer;
    }
  } else {
    h->st.errors++;
  }
  if (k->pos_cb) k->pos_cb(k->cb_ud, status, status ? NULL : &pos);
}

static void finish_read(gw_history_redis_t *h, call_t *k, int status, const redisReply *r) {
  gw_stream_pos_t top = {0};
  gw_history_item_t *items = NULL;
  size_t n = 0;
  int rec = 0;
  if (status == 0) {
    int ok = r->type == REDIS_REPLY_ARRAY && r->elements >= 3 && (r->elements - 3) % 2 == 0 &&
             (r->elements - 3) / 2 <= k->limit && epoch_of(r->element[0], &top) == 0 &&
             r->element[1]->type == REDIS_REPLY_INTEGER && r->element[1]->integer >= 0 &&
             r->element[2]->type == REDIS_REPLY_INTEGER;
    if (r->type == REDIS_REPLY_ERROR) {
      status = GW_EIO;
      h->st.errors++;
    } else if (!ok) {
      status = GW_EIO;
      h->st.malformed++;
    } else {
      top.offset = (uint64_t)r->element[1]->integer;
      rec = r->element[2]->integer == 1;
      n = (r->elements - 3) / 2;
      if (n && !(items = malloc(n * sizeof *items))) {
        status = GW_ENOMEM;
        n = 0;
      }
      uint64_t prev = 0;
      for (size_t i = 0; status == 0 && i < n; i++) {
        const redisReply *o = r->element[3 + 2 * i], *d = r->element[4 + 2 * i];
        if (o->type != REDIS_REPLY_INTEGER || o->integer <= (long long)prev ||
            (uint64_t)o->integer > top.offset || d->type != REDIS_REPLY_STRING ||
            d->len > h->cfg.max_message_bytes) {
          status = GW_EIO;
          h->st.malformed++;
          break;
        }
        prev = (uint64_t)o->integer;
        items[i].offset = prev;
        items[i].data = d->str;
        items[i].len = d->len;
      }
      if (status == 0) h->st.reads++;
    }
  } else {
    h->st.errors++;
  }
  if (status) {
    k->read_cb(k->cb_ud, status, NULL, 0, NULL, 0);
  } else {
    k->read_cb(k->cb_ud, 0, items, n, &top, rec);
  }
  free(items);
}

static void finish_ack_set(gw_history_redis_t *h, int status, const redisReply *r) {
  if (status || r->type == REDIS_REPLY_ERROR) h->st.errors++;
  else if (r->type != REDIS_REPLY_INTEGER) h->st.malformed++;
}

static void finish_ack_get(gw_history_redis_t *h, call_t *k, int status, const redisReply *r) {
  gw_stream_pos_t pos = {0};
  if (status == 0) {
    if (r->type == REDIS_REPLY_ERROR) {
      status = GW_EIO;
      h->st.errors++;
    } else if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || epoch_of(r->element[0], &pos) ||
               r->element[1]->type != REDIS_REPLY_INTEGER || r->element[1]->integer < 0) {
      status = GW_EIO;
      h->st.malformed++;
    } else {
      pos.offset = (uint64_t)r->element[1]->integer;
    }
  } else {
    h->st.errors++;
  }
  k->pos_cb(k->cb_ud, status, status ? NULL : &pos);
}

static void on_reply(void *ud, int status, const struct redisReply *reply) {
  call_t *k = ud;
  gw_history_redis_t *h = k->h;
  if (h) {
    call_unlink(h, k);
    if (k->read) finish_read(h, k, status, reply);
    else if (k->kind == CALL_ACK_SET) finish_ack_set(h, status, reply);
    else if (k->kind == CALL_ACK_GET) finish_ack_get(h, k, status, reply);
    else finish_append(h, k, status, reply);
  }
  free(k);
}

static call_t *call_new(gw_history_redis_t *h) {
  call_t *k = calloc(1, sizeof *k);
  if (k) k->h = h;
  return k;
}

static void call_link(gw_history_redis_t *h, call_t *k) {
  k->next = h->calls;
  if (h->calls) h->calls->prev = k;
  h->calls = k;
  h->st.pending++;
}

static void keys_of(const gw_history_redis_t *h, const char *channel, char *stream, size_t *sl,
                    char *meta, size_t *ml) {
  *sl = (size_t)snprintf(stream, KEYCAP, "%sstream:%s", h->prefix, channel);
  *ml = (size_t)snprintf(meta, KEYCAP, "%sstream-meta:%s", h->prefix, channel);
}

static int r_append(void *ud, const char *channel, const void *data, size_t len,
                    const gw_history_append_opts_t *opts, gw_history_pos_cb cb, void *cb_ud) {
  gw_history_redis_t *h = ud;
  if (check_channel(channel) || (!data && len)) return GW_EINVAL;
  if (len > h->cfg.max_message_bytes) {
    h->st.refused++;
    return GW_ELIMIT;
  }
  if (!gw_redis_conn_is_up(h->cfg.conn)) return GW_EUNAVAIL;
  size_t maxlen = h->cfg.max_stream_len;
  if (opts && opts->max_len && opts->max_len < maxlen) maxlen = opts->max_len;
  uint64_t ttl = opts && opts->ttl_ms ? opts->ttl_ms : h->cfg.default_ttl_ms;
  char stream[KEYCAP], meta[KEYCAP], ml[24], tl[24], kt[24], ep[17];
  size_t sl, mlen;
  keys_of(h, channel, stream, &sl, meta, &mlen);
  new_epoch(ep);
  const char *argv[] = {stream, meta, data ? (const char *)data : "", ml, tl, kt, ep};
  size_t lens[] = {sl, mlen, len,
                   (size_t)snprintf(ml, sizeof ml, "%zu", maxlen),
                   (size_t)snprintf(tl, sizeof tl, "%" PRIu64, ttl),
                   (size_t)snprintf(kt, sizeof kt, "%" PRIu64, h->cfg.stream_ttl_ms), 16};
  call_t *k = call_new(h);
  if (!k) return GW_ENOMEM;
  k->pos_cb = cb;
  k->cb_ud = cb_ud;
  int rc = gw_redis_script_call(h->cfg.conn, &h->s_append, 2, 7, argv, lens, on_reply, k);
  if (rc) {
    free(k);
    return rc;
  }
  call_link(h, k);
  return 0;
}

static int read_call(gw_history_redis_t *h, const char *channel, const gw_stream_pos_t *since,
                     size_t limit, call_t *k) {
  if (!gw_redis_conn_is_up(h->cfg.conn)) return GW_EUNAVAIL;
  if (limit > h->cfg.max_read) limit = h->cfg.max_read;
  k->limit = limit;
  char stream[KEYCAP], meta[KEYCAP], off[24], lim[24], kt[24], ep[17];
  size_t sl, mlen;
  keys_of(h, channel, stream, &sl, meta, &mlen);
  new_epoch(ep);
  size_t elen = strnlen(since->epoch, sizeof since->epoch);
  const char *argv[] = {stream, meta, off, since->epoch, lim, kt, ep};
  size_t lens[] = {sl, mlen, (size_t)snprintf(off, sizeof off, "%" PRIu64, since->offset), elen,
                   (size_t)snprintf(lim, sizeof lim, "%zu", limit),
                   (size_t)snprintf(kt, sizeof kt, "%" PRIu64, h->cfg.stream_ttl_ms), 16};
  int rc = gw_redis_script_call(h->cfg.conn, &h->s_read, 2, 7, argv, lens, on_reply, k);
  if (rc) return rc;
  call_link(h, k);
  return 0;
}

static int r_read_since(void *ud, const char *channel, const gw_stream_pos_t *since, size_t limit,
                        gw_history_read_cb cb, void *cb_ud) {
  gw_history_redis_t *h = ud;
  if (check_channel(channel) || !since || !cb) return GW_EINVAL;
  call_t *k = call_new(h);
  if (!k) return GW_ENOMEM;
  k->read = 1;
  k->read_cb = cb;
  k->cb_ud = cb_ud;
  int rc = read_call(h, channel, since, limit, k);
  if (rc) free(k);
  return rc;
}

/* top: a read with limit 0, answered through the position callback */
typedef struct top_ctx {
  gw_history_pos_cb cb;
  void *cb_ud;
} top_ctx_t;

static void top_done(void *ud, int status, const gw_history_item_t *items, size_t n,
                     const gw_stream_pos_t *top, int recovered) {
  top_ctx_t *t = ud;
  (void)items;
  (void)n;
  (void)recovered;
  t->cb(t->cb_ud, status, status ? NULL : top);
  free(t);
}

static int r_top(void *ud, const char *channel, gw_history_pos_cb cb, void *cb_ud) {
  gw_history_redis_t *h = ud;
  if (check_channel(channel) || !cb) return GW_EINVAL;
  top_ctx_t *t = malloc(sizeof *t);
  call_t *k = call_new(h);
  if (!t || !k) {
    free(t);
    free(k);
    return GW_ENOMEM;
  }
  t->cb = cb;
  t->cb_ud = cb_ud;
  k->read = 1;
  k->read_cb = top_done;
  k->cb_ud = t;
  gw_stream_pos_t none = {0};
  int rc = read_call(h, channel, &none, 0, k);
  if (rc) {
    free(t);
    free(k);
  }
  return rc;
}

static int r_ack_set(void *ud, const char *channel, const gw_stream_pos_t *pos) {
  gw_history_redis_t *h = ud;
  if (check_channel(channel) || !pos) return GW_EINVAL;
  if (!gw_redis_conn_is_up(h->cfg.conn)) return GW_EUNAVAIL;
  char stream[KEYCAP], meta[KEYCAP], off[24];
  size_t sl, mlen;
  keys_of(h, channel, stream, &sl, meta, &mlen);
  const char *argv[] = {meta, off, pos->epoch};
  size_t lens[] = {mlen, (size_t)snprintf(off, sizeof off, "%" PRIu64, pos->offset),
                   strnlen(pos->epoch, sizeof pos->epoch)};
  call_t *k = call_new(h);
  if (!k) return GW_ENOMEM;
  k->kind = CALL_ACK_SET;
  int rc = gw_redis_script_call(h->cfg.conn, &h->s_ack_set, 1, 3, argv, lens, on_reply, k);
  if (rc) {
    free(k);
    return rc;
  }
  call_link(h, k);
  return 0;
}

static int r_ack_get(void *ud, const char *channel, gw_history_pos_cb cb, void *cb_ud) {
  gw_history_redis_t *h = ud;
  if (check_channel(channel) || !cb) return GW_EINVAL;
  if (!gw_redis_conn_is_up(h->cfg.conn)) return GW_EUNAVAIL;
  char stream[KEYCAP], meta[KEYCAP], kt[24], ep[17];
  size_t sl, mlen;
  keys_of(h, channel, stream, &sl, meta, &mlen);
  new_epoch(ep);
  const char *argv[] = {stream, meta, kt, ep};
  size_t lens[] = {sl, mlen, (size_t)snprintf(kt, sizeof kt, "%" PRIu64, h->cfg.stream_ttl_ms), 16};
  call_t *k = call_new(h);
  if (!k) return GW_ENOMEM;
  k->kind = CALL_ACK_GET;
  k->pos_cb = cb;
  k->cb_ud = cb_ud;
  int rc = gw_redis_script_call(h->cfg.conn, &h->s_ack_get, 2, 4, argv, lens, on_reply, k);
  if (rc) {
    free(k);
    return rc;
  }
  call_link(h, k);
  return 0;
}

static void r_close(void *ud) { gw_history_redis_free(ud); }

int gw_history_redis_new(const gw_history_redis_config_t *cfg, gw_history_redis_t **out) {
  *out = NULL;
  if (!cfg || !cfg->conn || (cfg->prefix && strlen(cfg->prefix) > GW_REDIS_PREFIX_MAX))
    return GW_EINVAL;
  gw_history_redis_t *h = calloc(1, sizeof *h);
  if (!h) return GW_ENOMEM;
  h->cfg = *cfg;
  snprintf(h->prefix, sizeof h->prefix, "%s", cfg->prefix ? cfg->prefix : "aivo:");
  h->cfg.prefix = h->prefix;
  if (!h->cfg.max_stream_len) h->cfg.max_stream_len = 1000;
  if (!h->cfg.max_message_bytes) h->cfg.max_message_bytes = 64 * 1024;
  if (!h->cfg.max_read) h->cfg.max_read = 1000;
  if (!h->cfg.stream_ttl_ms) h->cfg.stream_ttl_ms = 24ull * 3600 * 1000;
  gw_redis_script_init(&h->s_append, APPEND_LUA);
  gw_redis_script_init(&h->s_read, READ_LUA);
  gw_redis_script_init(&h->s_ack_set, ACK_SET_LUA);
  gw_redis_script_init(&h->s_ack_get, ACK_GET_LUA);
  h->table.append = r_append;
  h->table.read_since = r_read_since;
  h->table.top = r_top;
  h->table.ack_set = r_ack_set;
  h->table.ack_get = r_ack_get;
  h->table.close = r_close;
  h->table.name = "redis";
  h->table.ud = h;
  *out = h;
  return 0;
}

const gw_history_t *gw_history_redis_store(gw_history_redis_t *h) { return &h->table; }

void gw_history_redis_free(gw_history_redis_t *h) {
  if (!h) return;
  /* callbacks first, with GW_ECANCELED; the replies that come later find k->h NULL */
  while (h->calls) {
    call_t *k = h->calls;
    call_unlink(h, k);
    k->h = NULL;
    if (k->read) k->read_cb(k->cb_ud, GW_ECANCELED, NULL, 0, NULL, 0);
    else if (k->pos_cb) k->pos_cb(k->cb_ud, GW_ECANCELED, NULL);
  }
  free(h);
}

void gw_history_redis_stats(const gw_history_redis_t *h, gw_history_redis_stats_t *out) {
  *out = h->st;
}
