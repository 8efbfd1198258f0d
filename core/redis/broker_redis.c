#include "broker_redis.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <uthash.h>

#include "errors.h"
#include "log.h"
#include "redis_conn.h"
#include "redis_script.h"

/* ---- the envelope ----------------------------------------------------------------------
 * 'A' 'V' 1 | flags u8 (1: position, 2: data) | origin u64 | except u64 | event_len u16 |
 * event | [offset u64 | epoch_len u8 | epoch] | [data_len u32 | data]; big-endian; nothing
 * after. Binary rather than JSON: no escaping of the JSON data, and decoding is a few bounds
 * checks. */
#define ENV_MAGIC0 'A'
#define ENV_MAGIC1 'V'
#define ENV_VERSION 1
#define ENV_F_POS 1
#define ENV_F_DATA 2
#define ENV_HEAD 22

static void put_u64(unsigned char *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (unsigned char)v;
}
static uint64_t get_u64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | p[i];
  return v;
}

long gw_broker_redis_encode(const gw_publication_t *pub, unsigned char *buf, size_t cap) {
  if (!pub || !pub->event || pub->event_len == 0 || pub->event_len > 65535 ||
      (!pub->data && pub->data_len) || pub->data_len > 0xffffffffu)
    return GW_EINVAL;
  size_t elen = pub->has_position ? strnlen(pub->position.epoch, GW_HISTORY_EPOCH_MAX + 1) : 0;
  if (elen > GW_HISTORY_EPOCH_MAX) return GW_EINVAL;
  size_t need = ENV_HEAD + pub->event_len + (pub->has_position ? 9 + elen : 0) +
                (pub->data ? 4 + pub->data_len : 0);
  if (need > cap) return GW_ELIMIT;
  unsigned char *p = buf;
  *p++ = ENV_MAGIC0;
  *p++ = ENV_MAGIC1;
  *p++ = ENV_VERSION;
  *p++ = (unsigned char)((pub->has_position ? ENV_F_POS : 0) | (pub->data ? ENV_F_DATA : 0));
  put_u64(p, pub->origin);
  p += 8;
  put_u64(p, pub->except_conn);
  p += 8;
  *p++ = (unsigned char)(pub->event_len >> 8);
  *p++ = (unsigned char)pub->event_len;
  memcpy(p, pub->event, pub->event_len);
  p += pub->event_len;
  if (pub->has_position) {
    put_u64(p, pub->position.offset);
    p += 8;
    *p++ = (unsigned char)elen;
    memcpy(p, pub->position.epoch, elen);
    p += elen;
  }
  if (pub->data) {
    uint32_t d = (uint32_t)pub->data_len;
    *p++ = (unsigned char)(d >> 24);
    *p++ = (unsigned char)(d >> 16);
    *p++ = (unsigned char)(d >> 8);
    *p++ = (unsigned char)d;
    if (pub->data_len) memcpy(p, pub->data, pub->data_len);
    p += pub->data_len;
  }
  return (long)(p - buf);
}

int gw_broker_redis_decode(const unsigned char *buf, size_t len, gw_publication_t *pub,
                           char epoch_out[GW_HISTORY_EPOCH_MAX + 1]) {
  memset(pub, 0, sizeof *pub);
  if (!buf || len < ENV_HEAD || buf[0] != ENV_MAGIC0 || buf[1] != ENV_MAGIC1 ||
      buf[2] != ENV_VERSION || (buf[3] & ~(ENV_F_POS | ENV_F_DATA)))
    return GW_EINVAL;
  int flags = buf[3];
  pub->origin = get_u64(buf + 4);
  pub->except_conn = get_u64(buf + 12);
  size_t elen = (size_t)buf[20] << 8 | buf[21];
  size_t at = ENV_HEAD;
  if (pub->origin == 0 || elen == 0 || len - at < elen) return GW_EINVAL;
  if (memchr(buf + at, '\0', elen)) return GW_EINVAL;
  pub->event = (const char *)buf + at;
  pub->event_len = elen;
  at += elen;
  if (flags & ENV_F_POS) {
    if (len - at < 9) return GW_EINVAL;
    pub->has_position = 1;
    pub->position.offset = get_u64(buf + at);
    size_t plen = buf[at + 8];
    at += 9;
    if (plen == 0 || plen > GW_HISTORY_EPOCH_MAX || len - at < plen) return GW_EINVAL;
    if (memchr(buf + at, '\0', plen)) return GW_EINVAL;
    memcpy(pub->position.epoch, buf + at, plen);
    pub->position.epoch[plen] = '\0';
    if (epoch_out) memcpy(epoch_out, pub->position.epoch, plen + 1);
    at += plen;
  }
  if (flags & ENV_F_DATA) {
    if (len - at < 4) return GW_EINVAL;
    size_t dlen = (size_t)buf[at] << 24 | (size_t)buf[at + 1] << 16 | (size_t)buf[at + 2] << 8 | buf[at + 3];
    at += 4;
    if (len - at < dlen) return GW_EINVAL;
    pub->data = (const char *)buf + at;
    pub->data_len = dlen;
    at += dlen;
  }
  return at == len ? 0 : GW_EINVAL;
}

/* ---- state ----------------------------------------------------------------------------- */

typedef struct sub {
  char *channel;
  UT_hash_handle hh;
} sub_t;

typedef struct pclient {
  uint64_t id;
  char *member; /* "<node>:<id>[:<user>]" */
  UT_hash_handle hh;
} pclient_t;

typedef struct pchan {
  char *channel;
  pclient_t *clients;
  UT_hash_handle hh;
} pchan_t;

typedef struct count_req {
  struct count_req *next, *prev;
  gw_broker_redis_t *b;
  gw_presence_cb cb;
  void *cb_ud;
} count_req_t;

struct gw_broker_redis {
  gw_broker_t table;
  gw_broker_redis_config_t cfg;
  gw_redis_config_t rcfg;
  gw_redis_conn_t *cmd, *sub;
  gw_broker_handler_t handler;
  int has_handler;
  int up;
  sub_t *subs;
  pchan_t *presence;
  count_req_t *counts; /* presence_count calls waiting for Redis */
  unsigned char *buf;  /* the encode buffer, reused */
  size_t bufcap;
  ev_timer refresh;
  gw_redis_script_t s_add, s_refresh, s_count, s_list;
  char node_hex[17];
  unsigned depth; /* inside a handler or presence callback */
  int free_pending;
  gw_broker_redis_stats_t st;
};

/* Calls into the node go through these, so that a close from inside one is deferred to the
 * loop's next pass instead of freeing the broker under its own feet. */
static void call_publication(gw_broker_redis_t *b, const gw_publication_t *pub) {
  if (!b->has_handler || b->free_pending) return;
  gw_broker_handler_t h = b->handler;
  b->depth++;
  h.on_publication(h.ud, pub);
  b->depth--;
}

/* KEYS[1] zset; ARGV ttl_ms, member, old member or "" */
static const char ADD_LUA[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "if ARGV[3] ~= '' then redis.call('ZREM', KEYS[1], ARGV[3]) end\n"
    "redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])\n"
    "redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) * 2)\n"
    "return 1\n";
/* KEYS[1] zset; ARGV ttl_ms, members... */
static const char REFRESH_LUA[] =
    "local t = redis.call('TIME')\n"
    "local exp = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])\n"
    "for i = 2, #ARGV do redis.call('ZADD', KEYS[1], exp, ARGV[i]) end\n"
    "redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) * 2)\n"
    "return #ARGV - 1\n";
/* KEYS[1] zset -> {clients, users}: expired entries are removed first */
static const char COUNT_LUA[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"
    "local m = redis.call('ZRANGE', KEYS[1], 0, -1)\n"
    "local users, n = {}, 0\n"
    "for _, v in ipairs(m) do\n"
    "  local a = string.find(v, ':', 1, true)\n"
    "  local b = a and string.find(v, ':', a + 1, true)\n"
    "  if b then local u = string.sub(v, b + 1)\n"
    "    if not users[u] then users[u] = true; n = n + 1 end end\n"
    "end\n"
    "return {#m, n}\n";

/* KEYS[1] zset; ARGV max -> {more, members...} (expired entries removed first) */
static const char LIST_LUA[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"
    "local max = tonumber(ARGV[1])\n"
    "local m = redis.call('ZRANGE', KEYS[1], 0, max)\n"
    "local more = 0\n"
    "if #m > max then more = 1; m[#m] = nil end\n"
    "table.insert(m, 1, more)\n"
    "return m\n";

static int check_channel(const char *channel) {
  if (!channel) return GW_EINVAL;
  size_t len = strnlen(channel, GW_BROKER_CHANNEL_MAX + 1);
  return len == 0 || len > GW_BROKER_CHANNEL_MAX ? GW_EINVAL : 0;
}

/* "<prefix><kind><channel>" into out (cap >= prefix + kind + 256). */
static size_t key_of(const gw_broker_redis_t *b, const char *kind, const char *channel, char *out,
                     size_t cap) {
  int n = snprintf(out, cap, "%s%s%s", b->rcfg.prefix, kind, channel);
  return n < 0 ? 0 : (size_t)n;
}
#define KEYCAP (GW_REDIS_PREFIX_MAX + 16 + GW_BROKER_CHANNEL_MAX + 1)
#define USER_MAX 1024 /* bytes of a user id in presence (presence_add refuses longer) */

/* ---- up / down ------------------------------------------------------------------------- */

static void set_up(gw_broker_redis_t *b, int up) {
  if (b->up == up) return;
  b->up = up;
  gw_info("redis broker: %s", up ? "up" : "down");
  if (b->has_handler && b->handler.on_state && !b->free_pending) {
    gw_broker_handler_t h = b->handler;
    b->depth++;
    h.on_state(h.ud, up);
    b->depth--;
  }
}

/* Sends (UN)SUBSCRIBE for channels in batches. */
static void send_subs(gw_broker_redis_t *b, const char *verb, const char *const *channels, size_t n) {
  size_t m = n < GW_BROKER_REDIS_SUB_BATCH ? n : GW_BROKER_REDIS_SUB_BATCH;
  const char **argv = malloc((m + 1) * sizeof *argv);
  size_t *lens = malloc((m + 1) * sizeof *lens);
  char (*keys)[KEYCAP] = malloc(m * sizeof *keys);
  size_t i = argv && lens && keys ? 0 : n; /* no memory: the next reconnect retries */
  while (i < n) {
    int argc = 1;
    argv[0] = verb;
    lens[0] = strlen(verb);
    for (; i < n && argc <= GW_BROKER_REDIS_SUB_BATCH; i++, argc++) {
      lens[argc] = key_of(b, "ch:", channels[i], keys[argc - 1], KEYCAP);
      argv[argc] = keys[argc - 1];
    }
    if (gw_redis_conn_command(b->sub, argc, argv, lens, NULL, NULL) == 0) {
      if (verb[0] == 'S') b->st.subscribe_cmds++;
      else b->st.unsubscribe_cmds++;
    }
  }
  free(argv);
  free(lens);
  free(keys);
}

static void resubscribe_all(gw_broker_redis_t *b) {
  size_t n = HASH_COUNT(b->subs), k = 0;
  if (!n) return;
  const char **list = malloc(n * sizeof *list);
  if (!list) return; /* retried at the next reconnect; logged by the caller's stats */
  for (sub_t *s = b->subs; s; s = s->hh.next) list[k++] = s->channel;
  send_subs(b, "SUBSCRIBE", list, k);
  free(list);
}

static void refresh_presence(gw_broker_redis_t *b);

static void update_up(gw_broker_redis_t *b) {
  set_up(b, gw_redis_conn_is_up(b->cmd) && gw_redis_conn_is_up(b->sub));
}

static void on_cmd_state(void *ud, int up, int err) {
  gw_broker_redis_t *b = ud;
  if (up) {
    refresh_presence(b); /* whatever expired meanwhile comes back at once */
  } else {
    /* a frozen Redis is noticed here (PING): the pub/sub link is as dead */
    gw_redis_conn_reset(b->sub, err ? err : GW_EUNAVAIL);
  }
  update_up(b);
}

static void on_sub_state(void *ud, int up, int err) {
  gw_broker_redis_t *b = ud;
  (void)err;
  if (up) resubscribe_all(b);
  update_up(b);
}

/* ---- receiving ------------------------------------------------------------------------- */

static void on_push(void *ud, int status, const struct redisReply *reply) {
  gw_broker_redis_t *b = ud;
  const redisReply *r = reply;
  if (status || !r) return; /* the link broke: one call per channel, nothing to do */
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || r->element[0]->type != REDIS_REPLY_STRING ||
      r->element[1]->type != REDIS_REPLY_STRING) {
    b->st.dropped_malformed++;
    return;
  }
  const char *kind = r->element[0]->str;
  const redisReply *ch = r->element[1];
  size_t plen = strlen(b->rcfg.prefix);
  /* hiredis 0.14.1 keeps a channel's callback while a SUBSCRIBE for it is in flight (its
   * pending_subs count), so an unsubscribe confirmation racing a new subscribe is harmless */
  if (strcmp(kind, "message") != 0) return; /* (un)subscribe confirmations */
  const redisReply *pl = r->element[2];
  if (pl->type != REDIS_REPLY_STRING) {
    b->st.dropped_malformed++;
    return;
  }
  if (pl->len > b->cfg.max_payload) {
    b->st.dropped_oversize++;
    return;
  }
  /* the channel must be ours: <prefix>ch:<1..255 bytes without NUL> */
  if (ch->len <= plen + 3 || ch->len - plen - 3 > GW_BROKER_CHANNEL_MAX ||
      memcmp(ch->str, b->rcfg.prefix, plen) != 0 || memcmp(ch->str + plen, "ch:", 3) != 0 ||
      memchr(ch->str, '\0', ch->len)) {
    b->st.dropped_malformed++;
    return;
  }
  char name[GW_BROKER_CHANNEL_MAX + 1];
  memcpy(name, ch->str + plen + 3, ch->len - plen - 3);
  name[ch->len - plen - 3] = '\0';
  gw_publication_t pub;
  if (gw_broker_redis_decode((const unsigned char *)pl->str, pl->len, &pub, NULL)) {
    b->st.dropped_malformed++;
    return;
  }
  pub.channel = name;
  b->st.received++;
  call_publication(b, &pub);
}

/* ---- the table ------------------------------------------------------------------------- */

static int r_set_handler(void *ud, const gw_broker_handler_t *h) {
  gw_broker_redis_t *b = ud;
  if (h && !h->on_publication) return GW_EINVAL;
  b->has_handler = h != NULL;
  if (h) b->handler = *h;
  else memset(&b->handler, 0, sizeof b->handler);
  if (h && h->on_state && b->up) h->on_state(h->ud, 1);
  return 0;
}

static void on_publish_reply(void *ud, int status, const struct redisReply *reply) {
  gw_broker_redis_t *b = ud;
  const redisReply *r = reply;
  if (status || !r || r->type == REDIS_REPLY_ERROR) b->st.publish_lost++;
}

static int r_publish(void *ud, const gw_publication_t *pub) {
  gw_broker_redis_t *b = ud;
  if (!pub || check_channel(pub->channel) || !pub->event || !pub->event_len ||
      (!pub->data && pub->data_len))
    return GW_EINVAL;
  size_t need = ENV_HEAD + pub->event_len + 9 + GW_HISTORY_EPOCH_MAX + 4 + pub->data_len;
  if (need > b->cfg.max_payload) return GW_ELIMIT; /* other nodes would drop it */
  if (need > b->bufcap) {
    unsigned char *nb = realloc(b->buf, need);
    if (!nb) return GW_ENOMEM;
    b->buf = nb;
    b->bufcap = need;
  }
  gw_publication_t p = *pub;
  p.origin = p.origin ? p.origin : b->cfg.node_id;
  long len = gw_broker_redis_encode(&p, b->buf, b->bufcap);
  if (len < 0) return (int)len;
  b->st.published++;
  int rc = GW_EUNAVAIL;
  if (gw_redis_conn_is_up(b->cmd)) {
    char key[KEYCAP];
    const char *argv[] = {"PUBLISH", key, (const char *)b->buf};
    size_t lens[] = {7, key_of(b, "ch:", pub->channel, key, sizeof key), (size_t)len};
    rc = gw_redis_conn_command(b->cmd, 3, argv, lens, on_publish_reply, b);
  }
  if (rc) b->st.publish_lost++;
  /* this node's members always (broker.h): never waits for Redis */
  call_publication(b, &p);
  return rc ? GW_EUNAVAIL : 0;
}

static int check_batch(const char *const *channels, size_t n) {
  if (!channels && n) return GW_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (check_channel(channels[i])) return GW_EINVAL;
  return 0;
}

static int r_subscribe(void *ud, const char *const *channels, size_t n) {
  gw_broker_redis_t *b = ud;
  if (check_batch(channels, n)) return GW_EINVAL;
  const char **fresh = n ? malloc(n * sizeof *fresh) : NULL;
  if (n && !fresh) return GW_ENOMEM;
  size_t k = 0;
  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    sub_t *s;
    HASH_FIND_STR(b->subs, channels[i], s);
    if (s) continue;
    s = calloc(1, sizeof *s);
    if (!s || !(s->channel = strdup(channels[i]))) {
      free(s);
      rc = GW_ENOMEM;
      break;
    }
    HASH_ADD_KEYPTR(hh, b->subs, s->channel, strlen(s->channel), s);
    fresh[k++] = s->channel;
  }
  if (k && gw_redis_conn_is_up(b->sub)) send_subs(b, "SUBSCRIBE", fresh, k);
  free(fresh);
  return rc;
}

static int r_unsubscribe(void *ud, const char *const *channels, size_t n) {
  gw_broker_redis_t *b = ud;
  if (check_batch(channels, n)) return GW_EINVAL;
  const char **gone = n ? malloc(n * sizeof *gone) : NULL;
  if (n && !gone) return GW_ENOMEM;
  sub_t **dead = n ? malloc(n * sizeof *dead) : NULL;
  if (n && !dead) {
    free(gone);
    return GW_ENOMEM;
  }
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    sub_t *s;
    HASH_FIND_STR(b->subs, channels[i], s);
    if (!s) continue;
    HASH_DEL(b->subs, s);
    dead[k] = s;
    gone[k++] = s->channel;
  }
  if (k && gw_redis_conn_is_up(b->sub)) send_subs(b, "UNSUBSCRIBE", gone, k);
  for (size_t i = 0; i < k; i++) {
    free(dead[i]->channel);
    free(dead[i]);
  }
  free(gone);
  free(dead);
  return 0;
}

/* ---- presence -------------------------------------------------------------------------- */

static unsigned ttl_ms(const gw_broker_redis_t *b) { return b->cfg.presence_ttl_ms; }

static void presence_send(gw_broker_redis_t *b, const char *channel, const char *member,
                          const char *old) {
  if (!gw_redis_conn_is_up(b->cmd)) return; /* sent by the refresh after the reconnect */
  char key[KEYCAP], ttl[16];
  const char *argv[] = {key, ttl, member, old ? old : ""};
  size_t lens[] = {key_of(b, "presence:", channel, key, sizeof key),
                   (size_t)snprintf(ttl, sizeof ttl, "%u", ttl_ms(b)), strlen(member),
                   old ? strlen(old) : 0};
  gw_redis_script_call(b->cmd, &b->s_add, 1, 4, argv, lens, NULL, NULL);
}

static int r_presence_add(void *ud, const char *channel, uint64_t client, const char *user) {
  gw_broker_redis_t *b = ud;
  if (check_channel(channel) || client == 0 || (user && strlen(user) > USER_MAX)) return GW_EINVAL;
  pchan_t *p;
  HASH_FIND_STR(b->presence, channel, p);
  if (!p) {
    p = calloc(1, sizeof *p);
    if (!p || !(p->channel = strdup(channel))) {
      free(p);
      return GW_ENOMEM;
    }
    HASH_ADD_KEYPTR(hh, b->presence, p->channel, strlen(p->channel), p);
  }
  size_t mlen = 16 + 1 + 20 + (user ? 1 + strlen(user) : 0) + 1;
  char *member = malloc(mlen);
  if (!member) return GW_ENOMEM; /* an empty pchan stays: freed with the broker */
  snprintf(member, mlen, "%s:%" PRIu64 "%s%s", b->node_hex, client, user ? ":" : "", user ? user : "");
  pclient_t *c;
  HASH_FIND(hh, p->clients, &client, sizeof client, c);
  char *old = NULL;
  if (c) {
    old = c->member;
  } else {
    if (!(c = calloc(1, sizeof *c))) {
      free(member);
      return GW_ENOMEM;
    }
    c->id = client;
    HASH_ADD(hh, p->clients, id, sizeof c->id, c);
    b->st.presence_entries++;
  }
  c->member = member;
  presence_send(b, channel, member, old && strcmp(old, member) ? old : NULL);
  free(old);
  return 0;
}

static int r_presence_remove(void *ud, const char *channel, uint64_t client) {
  gw_broker_redis_t *b = ud;
  if (check_channel(channel)) return GW_EINVAL;
  pchan_t *p;
  HASH_FIND_STR(b->presence, channel, p);
  pclient_t *c = NULL;
  if (p) HASH_FIND(hh, p->clients, &client, sizeof client, c);
  if (!c) return GW_ENOENT;
  if (gw_redis_conn_is_up(b->cmd)) {
    /* while down the entry stays in Redis until it expires (presence_ttl_ms) */
    char key[KEYCAP];
    const char *argv[] = {"ZREM", key, c->member};
    size_t lens[] = {4, key_of(b, "presence:", channel, key, sizeof key), strlen(c->member)};
    gw_redis_conn_command(b->cmd, 3, argv, lens, NULL, NULL);
  }
  HASH_DEL(p->clients, c);
  free(c->member);
  free(c);
  b->st.presence_entries--;
  if (!p->clients) {
    HASH_DEL(b->presence, p);
    free(p->channel);
    free(p);
  }
  return 0;
}

static void refresh_presence(gw_broker_redis_t *b) {
  if (!gw_redis_conn_is_up(b->cmd)) return;
  char key[KEYCAP], ttl[16];
  size_t tlen = (size_t)snprintf(ttl, sizeof ttl, "%u", ttl_ms(b));
  for (pchan_t *p = b->presence; p; p = p->hh.next) {
    size_t n = HASH_COUNT(p->clients);
    if (!n) continue;
    const char **argv = malloc((n + 2) * sizeof *argv);
    size_t *lens = malloc((n + 2) * sizeof *lens);
    if (argv && lens) {
      argv[0] = key;
      lens[0] = key_of(b, "presence:", p->channel, key, sizeof key);
      argv[1] = ttl;
      lens[1] = tlen;
      size_t k = 2;
      for (pclient_t *c = p->clients; c; c = c->hh.next, k++) {
        argv[k] = c->member;
        lens[k] = strlen(c->member);
      }
      gw_redis_script_call(b->cmd, &b->s_refresh, 1, (int)k, argv, lens, NULL, NULL);
    }
    free(argv);
    free(lens);
  }
  b->st.presence_refreshes++;
}

static void on_refresh(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop;
  (void)revents;
  refresh_presence(w->data);
}

static void count_unlink(gw_broker_redis_t *b, count_req_t *q) {
  if (q->prev) q->prev->next = q->next;
  else b->counts = q->next;
  if (q->next) q->next->prev = q->prev;
}

static void on_count_reply(void *ud, int status, const struct redisReply *reply) {
  count_req_t *q = ud;
  const redisReply *r = reply;
  if (q->b) count_unlink(q->b, q);
  size_t clients = 0, users = 0;
  if (status == 0) {
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->type == REDIS_REPLY_INTEGER &&
        r->element[1]->type == REDIS_REPLY_INTEGER && r->element[0]->integer >= 0 &&
        r->element[1]->integer >= 0) {
      clients = (size_t)r->element[0]->integer;
      users = (size_t)r->element[1]->integer;
    } else {
      status = GW_EIO;
    }
  }
  gw_broker_redis_t *b = q->b;
  if (b) b->depth++;
  if (q->cb) q->cb(q->cb_ud, status, clients, users);
  if (b) b->depth--;
  free(q);
}

static int r_presence_count(void *ud, const char *channel, gw_presence_cb cb, void *cb_ud) {
  gw_broker_redis_t *b = ud;
  if (check_channel(channel) || !cb) return GW_EINVAL;
  if (!gw_redis_conn_is_up(b->cmd)) return GW_EUNAVAIL;
  count_req_t *q = calloc(1, sizeof *q);
  if (!q) return GW_ENOMEM;
  q->b = b;
  q->cb = cb;
  q->cb_ud = cb_ud;
  char key[KEYCAP];
  const char *argv[] = {key};
  size_t lens[] = {key_of(b, "presence:", channel, key, sizeof key)};
  int rc = gw_redis_script_call(b->cmd, &b->s_count, 1, 1, argv, lens, on_count_reply, q);
  if (rc) {
    free(q);
    return rc;
  }
  q->next = b->counts;
  if (b->counts) b->counts->prev = q;
  b->counts = q;
  return 0;
}

/* "<16 hex>:<decimal>[:<user>]" -> entry; user points into m, which hiredis NUL-terminates.
 * 0 or GW_EINVAL. */
static int parse_member(const char *m, size_t len, gw_presence_entry_t *e) {
  if (len < 19 || m[16] != ':') return GW_EINVAL;
  uint64_t node = 0, client = 0;
  for (int i = 0; i < 16; i++) {
    char ch = m[i];
    int v = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
    if (v < 0) return GW_EINVAL;
    node = node << 4 | (uint64_t)v;
  }
  size_t i = 17, digits = 0;
  for (; i < len && m[i] != ':'; i++, digits++) {
    if (m[i] < '0' || m[i] > '9' || digits >= 20) return GW_EINVAL;
    client = client * 10 + (uint64_t)(m[i] - '0');
  }
  if (!digits || !node || !client) return GW_EINVAL;
  e->node = node;
  e->client = client;
  e->user = NULL;
  if (i < len) { /* ':' then the user (may be empty) */
    size_t ulen = len - i - 1;
    if (ulen > USER_MAX || memchr(m + i + 1, '\0', ulen)) return GW_EINVAL;
    e->user = m + i + 1;
  }
  return 0;
}

typedef struct list_req {
  gw_broker_redis_t *b;
  size_t max;
  gw_presence_list_cb cb;
  void *cb_ud;
} list_req_t;

static void on_list_reply(void *ud, int status, const struct redisReply *reply) {
  list_req_t *q = ud;
  const redisReply *r = reply;
  gw_presence_entry_t *es = NULL;
  size_t n = 0;
  int more = 0;
  if (status == 0) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || r->elements - 1 > q->max ||
        r->element[0]->type != REDIS_REPLY_INTEGER) {
      status = GW_EIO;
    } else {
      more = r->element[0]->integer != 0;
      n = r->elements - 1;
      if (n && !(es = calloc(n, sizeof *es))) {
        status = GW_ENOMEM;
        n = 0;
      }
      for (size_t i = 0; status == 0 && i < n; i++) {
        const redisReply *m = r->element[1 + i];
        if (m->type != REDIS_REPLY_STRING || parse_member(m->str, m->len, &es[i]))
          status = GW_EIO; /* someone else's data under our prefix: refuse it whole */
      }
    }
  }
  if (status) n = 0;
  gw_broker_redis_t *b = q->b;
  if (b) b->depth++;
  q->cb(q->cb_ud, status, status ? NULL : es, n, more);
  if (b) b->depth--;
  free(es);
  free(q);
}

int gw_broker_redis_presence_list(gw_broker_redis_t *b, const char *channel, size_t max,
                                  gw_presence_list_cb cb, void *cb_ud) {
  if (check_channel(channel) || !cb || max == 0 || max > GW_BROKER_REDIS_LIST_MAX) return GW_EINVAL;
  if (!gw_redis_conn_is_up(b->cmd)) return GW_EUNAVAIL;
  list_req_t *q = calloc(1, sizeof *q);
  if (!q) return GW_ENOMEM;
  q->b = b;
  q->max = max;
  q->cb = cb;
  q->cb_ud = cb_ud;
  char key[KEYCAP], mx[24];
  const char *argv[] = {key, mx};
  size_t lens[] = {key_of(b, "presence:", channel, key, sizeof key),
                   (size_t)snprintf(mx, sizeof mx, "%zu", max)};
  int rc = gw_redis_script_call(b->cmd, &b->s_list, 1, 2, argv, lens, on_list_reply, q);
  if (rc) free(q);
  return rc;
}

static int r_presence_list(void *ud, const char *channel, size_t max, gw_presence_list_cb cb, void *cb_ud) {
  return gw_broker_redis_presence_list(ud, channel, max, cb, cb_ud);
}

static void r_close(void *ud) { gw_broker_redis_free(ud); }

/* ---- life ------------------------------------------------------------------------------ */

int gw_broker_redis_new(const gw_broker_redis_config_t *cfg, gw_broker_redis_t **out) {
  *out = NULL;
  if (!cfg || !cfg->redis || !cfg->loop || !cfg->node_id) return GW_EINVAL;
  gw_broker_redis_t *b = calloc(1, sizeof *b);
  if (!b) return GW_ENOMEM;
  b->cfg = *cfg;
  b->rcfg = *cfg->redis;
  b->cfg.redis = &b->rcfg;
  if (!b->cfg.max_payload) b->cfg.max_payload = GW_BROKER_REDIS_PAYLOAD_MAX_DEFAULT;
  if (!b->cfg.presence_ttl_ms) b->cfg.presence_ttl_ms = 30000;
  if (!b->cfg.presence_refresh_ms) b->cfg.presence_refresh_ms = 10000;
  if (b->cfg.presence_refresh_ms >= b->cfg.presence_ttl_ms) {
    free(b);
    return GW_EINVAL;
  }
  snprintf(b->node_hex, sizeof b->node_hex, "%016" PRIx64, cfg->node_id);
  gw_redis_script_init(&b->s_add, ADD_LUA);
  gw_redis_script_init(&b->s_refresh, REFRESH_LUA);
  gw_redis_script_init(&b->s_count, COUNT_LUA);
  gw_redis_script_init(&b->s_list, LIST_LUA);
  b->table.set_handler = r_set_handler;
  b->table.publish = r_publish;
  b->table.subscribe = r_subscribe;
  b->table.unsubscribe = r_unsubscribe;
  b->table.presence_add = r_presence_add;
  b->table.presence_remove = r_presence_remove;
  b->table.presence_count = r_presence_count;
  b->table.presence_list = r_presence_list;
  b->table.close = r_close;
  b->table.name = "redis";
  b->table.ud = b;
  gw_redis_conn_opts_t o = {.cfg = &b->rcfg, .loop = cfg->loop, .ud = b,
                            .ping_interval_ms = cfg->ping_interval_ms,
                            .backoff_min_ms = cfg->backoff_min_ms,
                            .backoff_max_ms = cfg->backoff_max_ms};
  o.name = "commands";
  o.on_state = on_cmd_state;
  int rc = gw_redis_conn_new(&o, &b->cmd);
  if (rc == 0) {
    o.name = "pubsub";
    o.pubsub = 1;
    o.on_state = on_sub_state;
    o.on_push = on_push;
    rc = gw_redis_conn_new(&o, &b->sub);
  }
  if (rc) {
    gw_broker_redis_free(b);
    return rc;
  }
  double every = b->cfg.presence_refresh_ms / 1000.0;
  ev_timer_init(&b->refresh, on_refresh, every, every);
  b->refresh.data = b;
  ev_timer_start(cfg->loop, &b->refresh);
  *out = b;
  return 0;
}

const gw_broker_t *gw_broker_redis_broker(gw_broker_redis_t *b) { return &b->table; }

static void deferred_free(int revents, void *arg) {
  (void)revents;
  gw_broker_redis_t *b = arg;
  b->free_pending = 0;
  b->depth = 0;
  gw_broker_redis_free(b);
}

void gw_broker_redis_free(gw_broker_redis_t *b) {
  if (!b || b->free_pending) return;
  if (b->depth || gw_redis_conn_in_callback(b->cmd) || gw_redis_conn_in_callback(b->sub)) {
    b->free_pending = 1;
    b->has_handler = 0;
    ev_once(b->cfg.loop, -1, 0, 0., deferred_free, b);
    return;
  }
  if (b->cfg.loop) ev_timer_stop(b->cfg.loop, &b->refresh);
  b->has_handler = 0;
  gw_redis_conn_free(b->sub); /* pending count callbacks get GW_ECANCELED from the cmd conn */
  gw_redis_conn_free(b->cmd);
  for (count_req_t *q = b->counts; q; q = q->next) q->b = NULL; /* only if the free was deferred */
  sub_t *s, *stmp;
  HASH_ITER(hh, b->subs, s, stmp) {
    HASH_DEL(b->subs, s);
    free(s->channel);
    free(s);
  }
  pchan_t *p, *ptmp;
  HASH_ITER(hh, b->presence, p, ptmp) {
    pclient_t *c, *ctmp;
    HASH_ITER(hh, p->clients, c, ctmp) {
      HASH_DEL(p->clients, c);
      free(c->member);
      free(c);
    }
    HASH_DEL(b->presence, p);
    free(p->channel);
    free(p);
  }
  free(b->buf);
  free(b);
}

void gw_broker_redis_stats(const gw_broker_redis_t *b, gw_broker_redis_stats_t *out) {
  *out = b->st;
  out->subscriptions = HASH_COUNT(b->subs);
  out->up = b->up;
}

void gw_broker_redis_conn_stats(const gw_broker_redis_t *b, struct gw_redis_conn_stats *cmd,
                                struct gw_redis_conn_stats *sub) {
  if (cmd) gw_redis_conn_stats(b->cmd, cmd);
  if (sub) gw_redis_conn_stats(b->sub, sub);
}

int gw_broker_redis_last_error(const gw_broker_redis_t *b) {
  gw_redis_conn_stats_t st;
  gw_redis_conn_stats(b->cmd, &st);
  return st.last_error;
}

gw_redis_conn_t *gw_broker_redis_command_conn(gw_broker_redis_t *b) { return b->cmd; }
