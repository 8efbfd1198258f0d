/* The Redis Streams history store against a real redis-server: offsets, epochs, trimming,
 * the recovered rule (the same as history_mem.c's), TTLs, a new epoch after FLUSHALL,
 * bounded and validated replies, GW_EUNAVAIL while down, GW_ECANCELED on close. */
#include <hiredis/hiredis.h>

#include "check.h"
#include "errors.h"
#include "history_redis.h"
#include "log.h"
#include "redis_conn.h"
#include "redis_server.h"

static gw_loop_t *loop;
static const gw_history_t *H;

typedef struct res {
  int done, status, recovered;
  gw_stream_pos_t pos, top;
  size_t n;
  uint64_t off[64];
  char data[64][32];
  size_t len[64];
} res_t;

static void on_pos(void *ud, int status, const gw_stream_pos_t *pos) {
  res_t *r = ud;
  r->done++;
  r->status = status;
  if (pos) r->pos = *pos;
}
static void on_read(void *ud, int status, const gw_history_item_t *items, size_t n,
                    const gw_stream_pos_t *top, int recovered) {
  res_t *r = ud;
  r->done++;
  r->status = status;
  r->recovered = recovered;
  r->n = n;
  if (top) r->top = *top;
  for (size_t i = 0; i < n && i < 64; i++) {
    r->off[i] = items[i].offset;
    r->len[i] = items[i].len;
    memcpy(r->data[i], items[i].data, items[i].len < 32 ? items[i].len : 31);
    r->data[i][items[i].len < 32 ? items[i].len : 31] = '\0';
  }
}
static int done(void *ud) { return ((res_t *)ud)->done > 0; }

static res_t append(const char *ch, const char *msg, size_t max_len, uint64_t ttl) {
  res_t r = {0};
  gw_history_append_opts_t o = {.max_len = max_len, .ttl_ms = ttl};
  int rc = gw_history_append(H, ch, msg, strlen(msg), &o, on_pos, &r);
  CHECK_EQ_INT(rc, 0);
  if (rc == 0) CHECK(test_run_until(loop, done, &r, 3));
  return r;
}
static res_t read_since(const char *ch, uint64_t off, const char *epoch, size_t limit) {
  res_t r = {0};
  gw_stream_pos_t since = {.offset = off};
  snprintf(since.epoch, sizeof since.epoch, "%s", epoch);
  int rc = gw_history_read_since(H, ch, &since, limit, on_read, &r);
  CHECK_EQ_INT(rc, 0);
  if (rc == 0) CHECK(test_run_until(loop, done, &r, 3));
  return r;
}
static res_t top(const char *ch) {
  res_t r = {0};
  CHECK_EQ_INT(gw_history_top(H, ch, on_pos, &r), 0);
  CHECK(test_run_until(loop, done, &r, 3));
  return r;
}

static gw_redis_conn_t *conn;
static int is_up(void *ud) { (void)ud; return gw_redis_conn_is_up(conn); }
static int is_down(void *ud) { (void)ud; return !gw_redis_conn_is_up(conn); }

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  gw_log_setup(GW_LOG_ERROR, GW_LOG_TEXT);
  loop = gw_loop_new();
  test_redis_t rs;
  if (!CHECK(test_redis_start(&rs, 0, NULL) == 0)) return check_done();
  gw_redis_config_t cfg;
  gw_redis_config_defaults(&cfg);
  cfg.port = rs.port;
  gw_redis_conn_opts_t o = {.cfg = &cfg, .loop = loop, .backoff_min_ms = 50, .backoff_max_ms = 200};
  CHECK_EQ_INT(gw_redis_conn_new(&o, &conn), 0);
  CHECK(test_run_until(loop, is_up, NULL, 5));
  gw_history_redis_config_t hc = {.conn = conn, .prefix = "aivo:", .max_stream_len = 50,
                                  .max_message_bytes = 1024, .max_read = 20,
                                  .stream_ttl_ms = 60000};
  gw_history_redis_t *hr;
  CHECK_EQ_INT(gw_history_redis_new(&hc, &hr), 0);
  H = gw_history_redis_store(hr);

  /* a position taken before the first message stays valid after it */
  res_t t0 = top("room:a");
  CHECK_EQ_INT(t0.status, 0);
  CHECK_EQ_INT(t0.pos.offset, 0);
  CHECK_EQ_INT(strlen(t0.pos.epoch), 16);
  char ep[33];
  snprintf(ep, sizeof ep, "%s", t0.pos.epoch);
  for (int i = 1; i <= 5; i++) {
    char m[16];
    snprintf(m, sizeof m, "m%d", i);
    res_t a = append("room:a", m, 0, 0);
    CHECK_EQ_INT(a.status, 0);
    CHECK_EQ_INT(a.pos.offset, i);
    CHECK_STR(a.pos.epoch, ep);
  }
  res_t r = read_since("room:a", 0, ep, 10);
  CHECK_EQ_INT(r.status, 0);
  CHECK_EQ_INT(r.recovered, 1);
  CHECK_EQ_INT(r.n, 5);
  CHECK_EQ_INT(r.off[0], 1);
  CHECK_STR(r.data[4], "m5");
  CHECK_EQ_INT(r.top.offset, 5);
  CHECK_STR(r.top.epoch, ep);
  r = read_since("room:a", 3, ep, 10);
  CHECK_EQ_INT(r.n, 2);
  CHECK_EQ_INT(r.off[0], 4);
  CHECK_EQ_INT(r.recovered, 1);
  r = read_since("room:a", 5, ep, 10); /* up to date */
  CHECK_EQ_INT(r.n, 0);
  CHECK_EQ_INT(r.recovered, 1);
  r = read_since("room:a", 0, ep, 2); /* more than limit: the oldest first, ask again */
  CHECK_EQ_INT(r.n, 2);
  CHECK_EQ_INT(r.off[1], 2);
  CHECK_EQ_INT(r.recovered, 1);
  r = read_since("room:a", 6, ep, 10); /* past the top: not a position of this stream */
  CHECK_EQ_INT(r.recovered, 0);
  CHECK_EQ_INT(r.n, 5);
  r = read_since("room:a", 2, "otherepoch", 3); /* another epoch: the newest 3 */
  CHECK_EQ_INT(r.recovered, 0);
  CHECK_EQ_INT(r.n, 3);
  CHECK_EQ_INT(r.off[0], 3);
  CHECK_EQ_INT(r.off[2], 5);
  r = read_since("room:a", 1, ep, 0); /* limit 0: top and recovered only */
  CHECK_EQ_INT(r.n, 0);
  CHECK_EQ_INT(r.recovered, 1);
  CHECK_EQ_INT(r.top.offset, 5);
  r = read_since("room:a", 0, ep, 1000); /* bounded by max_read (20) */
  CHECK_EQ_INT(r.n, 5);

  /* binary payloads round-trip */
  {
    res_t b = {0};
    const char bin[] = {'a', 0, 'b', (char)0xff};
    CHECK_EQ_INT(gw_history_append(H, "bin", bin, sizeof bin, NULL, on_pos, &b), 0);
    CHECK(test_run_until(loop, done, &b, 3));
    r = read_since("bin", 0, b.pos.epoch, 5);
    CHECK_EQ_INT(r.n, 1);
    CHECK_EQ_INT(r.len[0], 4);
    CHECK(memcmp(r.data[0], bin, 4) == 0);
  }

  /* trimming: max_len 3, exactly (MAXLEN =) */
  {
    res_t a;
    for (int i = 1; i <= 10; i++) a = append("room:t", "x", 3, 0);
    CHECK_EQ_INT(a.pos.offset, 10);
    redisReply *rep = test_redis_cmd(&rs, "XLEN aivo:stream:room:t");
    CHECK(rep && rep->integer == 3);
    freeReplyObject(rep);
    gw_history_redis_stats_t st;
    gw_history_redis_stats(hr, &st);
    CHECK_EQ_INT(st.trimmed, 7);
    r = read_since("room:t", 7, a.pos.epoch, 10); /* 8 is the first kept: nothing lost */
    CHECK_EQ_INT(r.recovered, 1);
    CHECK_EQ_INT(r.n, 3);
    r = read_since("room:t", 6, a.pos.epoch, 10); /* 7 was trimmed: a gap */
    CHECK_EQ_INT(r.recovered, 0);
    CHECK_EQ_INT(r.n, 3);
    CHECK_EQ_INT(r.off[0], 8);
    /* the keys carry the stream TTL */
    rep = test_redis_cmd(&rs, "PTTL aivo:stream:room:t");
    CHECK(rep && rep->integer > 50000 && rep->integer <= 60000);
    freeReplyObject(rep);
    rep = test_redis_cmd(&rs, "PTTL aivo:stream-meta:room:t");
    CHECK(rep && rep->integer > 50000 && rep->integer <= 60000);
    freeReplyObject(rep);
  }

  /* message TTLs: expired at the head go; an expired one behind a live one is a gap */
  {
    res_t a = append("room:ttl", "long", 0, 10000);
    append("room:ttl", "short", 0, 150);
    append("room:ttl", "forever", 0, 0);
    test_run_for(loop, 0.3);
    r = read_since("room:ttl", 0, a.pos.epoch, 10);
    CHECK_EQ_INT(r.recovered, 0);
    CHECK_EQ_INT(r.n, 2);
    CHECK_STR(r.data[0], "long");
    CHECK_STR(r.data[1], "forever");
    res_t b = append("room:ttl2", "gone", 0, 100);
    test_run_for(loop, 0.25);
    r = read_since("room:ttl2", 0, b.pos.epoch, 10);
    CHECK_EQ_INT(r.recovered, 0);
    CHECK_EQ_INT(r.n, 0);
    CHECK_EQ_INT(r.top.offset, 1);
    r = read_since("room:ttl2", 1, b.pos.epoch, 10); /* had it: nothing missed */
    CHECK_EQ_INT(r.recovered, 1);
  }

  /* FLUSHALL (or eviction): a new epoch, offsets start again, old positions do not match */
  {
    redisReply *rep = test_redis_cmd(&rs, "FLUSHALL");
    freeReplyObject(rep);
    res_t t1 = top("room:a");
    CHECK_EQ_INT(t1.pos.offset, 0);
    CHECK(strcmp(t1.pos.epoch, ep) != 0);
    r = read_since("room:a", 5, ep, 10);
    CHECK_EQ_INT(r.recovered, 0);
    res_t a = append("room:a", "new", 0, 0);
    CHECK_EQ_INT(a.pos.offset, 1);
    CHECK_STR(a.pos.epoch, t1.pos.epoch);
    /* the meta key alone lost (evicted): the stream's old entries go with the epoch */
    rep = test_redis_cmd(&rs, "DEL aivo:stream-meta:room:a");
    freeReplyObject(rep);
    a = append("room:a", "newer", 0, 0);
    CHECK_EQ_INT(a.pos.offset, 1);
    CHECK(strcmp(a.pos.epoch, t1.pos.epoch) != 0);
    r = read_since("room:a", 0, a.pos.epoch, 10);
    CHECK_EQ_INT(r.n, 1);
    CHECK_STR(r.data[0], "newer");
  }

  /* bounds and hostile replies */
  {
    char big[2048];
    memset(big, 'x', sizeof big);
    CHECK_EQ_INT(gw_history_append(H, "room:a", big, sizeof big, NULL, on_pos, NULL), GW_ELIMIT);
    gw_stream_pos_t none = {0};
    CHECK_EQ_INT(gw_history_read_since(H, "", &none, 1, on_read, NULL), GW_EINVAL);
    /* a meta hash with an absurd epoch (someone else's key, or corruption): refused */
    redisReply *rep = test_redis_cmd(&rs, "HSET aivo:stream-meta:bad epoch %s top 3",
                                     "0123456789012345678901234567890123456789");
    freeReplyObject(rep);
    res_t x = {0};
    CHECK_EQ_INT(gw_history_read_since(H, "bad", &none, 5, on_read, &x), 0);
    CHECK(test_run_until(loop, done, &x, 3));
    CHECK_EQ_INT(x.status, GW_EIO);
    gw_history_redis_stats_t st;
    gw_history_redis_stats(hr, &st);
    CHECK_EQ_INT(st.malformed, 1);
    /* a key of the wrong type: an error reply, GW_EIO */
    rep = test_redis_cmd(&rs, "SET aivo:stream-meta:str x");
    freeReplyObject(rep);
    res_t y = {0};
    CHECK_EQ_INT(gw_history_append(H, "str", "m", 1, NULL, on_pos, &y), 0);
    CHECK(test_run_until(loop, done, &y, 3));
    CHECK_EQ_INT(y.status, GW_EIO);
  }

  /* close with calls pending: GW_ECANCELED, once */
  {
    res_t p1 = {0}, p2 = {0};
    CHECK_EQ_INT(gw_history_append(H, "room:c", "m", 1, NULL, on_pos, &p1), 0);
    gw_stream_pos_t none = {0};
    CHECK_EQ_INT(gw_history_read_since(H, "room:c", &none, 5, on_read, &p2), 0);
    gw_history_close(H);
    CHECK_EQ_INT(p1.done, 1);
    CHECK_EQ_INT(p1.status, GW_ECANCELED);
    CHECK_EQ_INT(p2.done, 1);
    CHECK_EQ_INT(p2.status, GW_ECANCELED);
    test_run_for(loop, 0.2); /* the late replies find nobody */
    CHECK_EQ_INT(p1.done, 1);
  }

  /* Redis down: refused at once with GW_EUNAVAIL */
  CHECK_EQ_INT(gw_history_redis_new(&hc, &hr), 0);
  H = gw_history_redis_store(hr);
  test_redis_stop(&rs);
  CHECK(test_run_until(loop, is_down, NULL, 3));
  CHECK_EQ_INT(gw_history_append(H, "room:a", "m", 1, NULL, on_pos, NULL), GW_EUNAVAIL);
  gw_history_redis_free(hr);
  gw_redis_conn_free(conn);
  gw_loop_free(loop);
  return check_done();
}
