/* The history seam and its memory store: positions (offsets from 1, random epochs), the
 * bounds per stream and in total, TTLs on an injected clock, read_since's recovered rule,
 * and callbacks that call the store again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "errors.h"
#include "history.h"
#include "history_mem.h"

static double g_now;
static double fake_clock(void *ud) {
  (void)ud;
  return g_now;
}

static gw_history_mem_config_t config(void) {
  gw_history_mem_config_t c;
  gw_history_mem_config_defaults(&c);
  c.now_ms = fake_clock;
  return c;
}

static gw_history_mem_t *store(const gw_history_mem_config_t *c) {
  gw_history_mem_t *m = NULL;
  if (!CHECK_EQ_INT(gw_history_mem_new(c, &m), 0)) abort();
  return m;
}

/* ---- synchronous capture of callbacks ---- */

typedef struct {
  int calls, status;
  gw_stream_pos_t pos;
} pos_res_t;

static void on_pos(void *ud, int status, const gw_stream_pos_t *pos) {
  pos_res_t *r = ud;
  r->calls++;
  r->status = status;
  if (pos) r->pos = *pos;
}

#define MAXI 64
typedef struct {
  int calls, status, recovered;
  size_t n;
  uint64_t offsets[MAXI];
  char data[MAXI][64];
  gw_stream_pos_t top;
} read_res_t;

static void on_read(void *ud, int status, const gw_history_item_t *items, size_t n,
                    const gw_stream_pos_t *top, int recovered) {
  read_res_t *r = ud;
  r->calls++;
  r->status = status;
  r->recovered = recovered;
  r->n = n;
  for (size_t i = 0; i < n && i < MAXI; i++) {
    r->offsets[i] = items[i].offset;
    size_t l = items[i].len < 63 ? items[i].len : 63;
    memcpy(r->data[i], items[i].data, l);
    r->data[i][l] = 0;
  }
  if (top) r->top = *top;
}

static gw_stream_pos_t append_s(const gw_history_t *h, const char *ch, const char *s,
                                const gw_history_append_opts_t *o) {
  pos_res_t r = {0};
  CHECK_EQ_INT(gw_history_append(h, ch, s, strlen(s), o, on_pos, &r), 0);
  CHECK_EQ_INT(r.calls, 1); /* the memory store answers before returning */
  CHECK_EQ_INT(r.status, 0);
  return r.pos;
}

static read_res_t read_since(const gw_history_t *h, const char *ch, uint64_t off,
                             const char *epoch, size_t limit) {
  read_res_t r = {0};
  gw_stream_pos_t since = {.offset = off};
  snprintf(since.epoch, sizeof since.epoch, "%s", epoch);
  CHECK_EQ_INT(gw_history_read_since(h, ch, &since, limit, on_read, &r), 0);
  CHECK_EQ_INT(r.calls, 1);
  return r;
}

static gw_stream_pos_t top_of(const gw_history_t *h, const char *ch) {
  pos_res_t r = {0};
  CHECK_EQ_INT(gw_history_top(h, ch, on_pos, &r), 0);
  CHECK_EQ_INT(r.calls, 1);
  return r.pos;
}

static gw_history_mem_stats_t stats(gw_history_mem_t *m) {
  gw_history_mem_stats_t st;
  gw_history_mem_stats(m, &st);
  return st;
}

static void test_offsets_and_epochs(void) {
  gw_history_mem_config_t c = config();
  gw_history_mem_t *m = store(&c), *m2 = store(&c);
  const gw_history_t *h = gw_history_mem_store(m), *h2 = gw_history_mem_store(m2);
  CHECK_STR(h->name, "memory");

  gw_stream_pos_t a1 = append_s(h, "a", "one", NULL), a2 = append_s(h, "a", "two", NULL);
  gw_stream_pos_t b1 = append_s(h, "b", "uno", NULL), a3 = append_s(h, "a", "three", NULL);
  CHECK_EQ_INT(a1.offset, 1);
  CHECK_EQ_INT(a2.offset, 2);
  CHECK_EQ_INT(a3.offset, 3);
  CHECK_EQ_INT(b1.offset, 1); /* per stream */
  CHECK_EQ_INT(strlen(a1.epoch), 16);
  CHECK_STR(a1.epoch, a2.epoch); /* one epoch while the stream lives */
  CHECK_STR(a1.epoch, a3.epoch);
  CHECK(strcmp(a1.epoch, b1.epoch) != 0);
  gw_stream_pos_t t = top_of(h, "a");
  CHECK(gw_stream_pos_equal(&t, &a3));

  /* another store (a restarted process): the same channel has another epoch */
  gw_stream_pos_t other = append_s(h2, "a", "one", NULL);
  CHECK_EQ_INT(other.offset, 1);
  CHECK(strcmp(other.epoch, a1.epoch) != 0);

  /* payloads come back byte for byte, NULs included */
  pos_res_t pr = {0};
  CHECK_EQ_INT(gw_history_append(h, "bin", "x\0y", 3, NULL, on_pos, &pr), 0);
  CHECK_EQ_INT(gw_history_append(h, "bin", NULL, 0, NULL, NULL, NULL), 0); /* no callback: fine */
  read_res_t r = read_since(h, "bin", 0, pr.pos.epoch, 10);
  CHECK_EQ_INT(r.n, 2);
  CHECK(memcmp(r.data[0], "x\0y", 3) == 0);
  CHECK_EQ_INT(r.offsets[1], 2);
  CHECK_STR(r.data[1], "");

  gw_history_mem_stats_t st = stats(m);
  CHECK_EQ_INT(st.streams, 3);
  CHECK_EQ_INT(st.items, 6);
  CHECK_EQ_INT(st.stored, 6);
  CHECK_EQ_INT(st.bytes, 3 + 3 + 3 + 5 + 3);
  gw_history_close(h);
  gw_history_mem_free(m2);
  gw_history_mem_free(NULL);
}

static void test_read_since(void) {
  gw_history_mem_config_t c = config();
  c.max_stream_len = 5;
  gw_history_mem_t *m = store(&c);
  const gw_history_t *h = gw_history_mem_store(m);
  char buf[16];
  gw_stream_pos_t p = {0};
  for (int i = 1; i <= 5; i++) {
    snprintf(buf, sizeof buf, "m%d", i);
    p = append_s(h, "ch", buf, NULL);
  }
  const char *e = p.epoch;

  /* in range: what came after, in order */
  read_res_t r = read_since(h, "ch", 2, e, 100);
  CHECK_EQ_INT(r.recovered, 1);
  if (CHECK_EQ_INT(r.n, 3)) {
    CHECK_EQ_INT(r.offsets[0], 3);
    CHECK_STR(r.data[0], "m3");
    CHECK_EQ_INT(r.offsets[2], 5);
  }
  CHECK_EQ_INT(r.top.offset, 5);
  CHECK_STR(r.top.epoch, e);
  /* from 0: everything, since nothing was trimmed yet */
  r = read_since(h, "ch", 0, e, 100);
  CHECK_EQ_INT(r.recovered, 1);
  CHECK_EQ_INT(r.n, 5);
  /* at the top: recovered, nothing to send */
  r = read_since(h, "ch", 5, e, 100);
  CHECK_EQ_INT(r.recovered, 1);
  CHECK_EQ_INT(r.n, 0);
  /* a limit pages from the oldest; asking again from the last one continues */
  r = read_since(h, "ch", 0, e, 2);
  CHECK_EQ_INT(r.recovered, 1);
  if (CHECK_EQ_INT(r.n, 2)) CHECK_EQ_INT(r.offsets[1], 2);
  r = read_since(h, "ch", 2, e, 2);
  if (CHECK_EQ_INT(r.n, 2)) CHECK_EQ_INT(r.offsets[0], 3);
  /* limit 0: only the top and the verdict */
  r = read_since(h, "ch", 1, e, 0);
  CHECK_EQ_INT(r.n, 0);
  CHECK_EQ_INT(r.recovered, 1);
  CHECK_EQ_INT(r.top.offset, 5);

  /* two more: 1 and 2 are trimmed (max 5); first kept = 3 */
  append_s(h, "ch", "m6", NULL);
  append_s(h, "ch", "m7", NULL);
  r = read_since(h, "ch", 2, e, 100); /* wants 3..7: all kept */
  CHECK_EQ_INT(r.recovered, 1);
  if (CHECK_EQ_INT(r.n, 5)) CHECK_EQ_INT(r.offsets[0], 3);
  r = read_since(h, "ch", 1, e, 100); /* wants 2..: 2 is gone */
  CHECK_EQ_INT(r.recovered, 0);
  CHECK_EQ_INT(r.n, 5); /* the available tail */
  r = read_since(h, "ch", 1, e, 2); /* the newest two of it, oldest first */
  CHECK_EQ_INT(r.recovered, 0);
  if (CHECK_EQ_INT(r.n, 2)) {
    CHECK_EQ_INT(r.offsets[0], 6);
    CHECK_EQ_INT(r.offsets[1], 7);
  }
  /* another epoch: not recovered, whatever the offset */
  r = read_since(h, "ch", 5, "0123456789abcdef", 100);
  CHECK_EQ_INT(r.recovered, 0);
  CHECK_EQ_INT(r.top.offset, 7);
  CHECK_STR(r.top.epoch, e);
  r = read_since(h, "ch", 7, "", 100);
  CHECK_EQ_INT(r.recovered, 0);
  /* an offset past the top is no position of this stream */
  r = read_since(h, "ch", 8, e, 100);
  CHECK_EQ_INT(r.recovered, 0);

  /* a stream read before its first message: {0, epoch} stays valid after it */
  gw_stream_pos_t before = top_of(h, "fresh");
  CHECK_EQ_INT(before.offset, 0);
  CHECK_EQ_INT(strlen(before.epoch), 16);
  read_res_t empty = read_since(h, "fresh", 0, before.epoch, 10);
  CHECK_EQ_INT(empty.recovered, 1);
  CHECK_EQ_INT(empty.n, 0);
  gw_stream_pos_t f1 = append_s(h, "fresh", "hello", NULL);
  CHECK_STR(f1.epoch, before.epoch);
  r = read_since(h, "fresh", before.offset, before.epoch, 10);
  CHECK_EQ_INT(r.recovered, 1);
  if (CHECK_EQ_INT(r.n, 1)) CHECK_STR(r.data[0], "hello");
  gw_history_mem_free(m);
}

static void test_trimming(void) {
  gw_history_mem_config_t c = config();
  c.max_stream_len = 4;
  c.max_stream_bytes = 10;
  gw_history_mem_t *m = store(&c);
  const gw_history_t *h = gw_history_mem_store(m);

  for (int i = 0; i < 6; i++) append_s(h, "n", "a", NULL); /* by count */
  gw_history_mem_stats_t st = stats(m);
  CHECK_EQ_INT(st.items, 4);
  CHECK_EQ_INT(st.trimmed, 2);
  gw_stream_pos_t t = top_of(h, "n");
  read_res_t r = read_since(h, "n", 0, t.epoch, 10);
  CHECK_EQ_INT(r.recovered, 0);
  if (CHECK_EQ_INT(r.n, 4)) CHECK_EQ_INT(r.offsets[0], 3);

  /* an append's max_len lowers the bound for its stream, never raises it */
  gw_history_append_opts_t two = {.max_len = 2}, many = {.max_len = 100};
  append_s(h, "n", "b", &two);
  CHECK_EQ_INT(stats(m).items, 2);
  for (int i = 0; i < 6; i++) append_s(h, "n", "c", &many);
  CHECK_EQ_INT(stats(m).items, 4);

  /* by bytes: 4 + 4 fits 10, a third 4 pushes the first out */
  append_s(h, "b", "1234", NULL);
  append_s(h, "b", "5678", NULL);
  size_t trimmed = stats(m).trimmed;
  append_s(h, "b", "90ab", NULL);
  CHECK_EQ_INT(stats(m).trimmed, trimmed + 1);
  t = top_of(h, "b");
  r = read_since(h, "b", 1, t.epoch, 10);
  CHECK_EQ_INT(r.recovered, 1); /* had 1, 2 and 3 are kept */
  if (CHECK_EQ_INT(r.n, 2)) CHECK_STR(r.data[0], "5678");
  /* a message that can never fit is refused, and drops nothing */
  pos_res_t pr = {0};
  CHECK_EQ_INT(gw_history_append(h, "b", "0123456789X", 11, NULL, on_pos, &pr), GW_ELIMIT);
  CHECK_EQ_INT(pr.calls, 0);
  CHECK_EQ_INT(stats(m).refused, 1);
  CHECK_EQ_INT(top_of(h, "b").offset, 3);
  r = read_since(h, "b", 1, t.epoch, 10);
  CHECK_EQ_INT(r.n, 2);
  /* exactly the bound is fine, and takes the stream for itself */
  append_s(h, "b", "0123456789", NULL);
  r = read_since(h, "b", 3, t.epoch, 10);
  CHECK_EQ_INT(r.recovered, 1);
  if (CHECK_EQ_INT(r.n, 1)) CHECK_STR(r.data[0], "0123456789");
  CHECK_EQ_INT(stats(m).bytes, 4 + 10); /* "n" holds four 1-byte messages */
  gw_history_mem_free(m);
}

static void test_ttl(void) {
  g_now = 1000;
  gw_history_mem_config_t c = config();
  c.stream_ttl_ms = 60000;
  gw_history_mem_t *m = store(&c);
  const gw_history_t *h = gw_history_mem_store(m);
  gw_history_append_opts_t ttl = {.ttl_ms = 500};

  gw_stream_pos_t p1 = append_s(h, "t", "a", &ttl);
  g_now = 1200;
  append_s(h, "t", "b", &ttl);
  g_now = 1499;
  read_res_t r = read_since(h, "t", 0, p1.epoch, 10);
  CHECK_EQ_INT(r.n, 2);
  g_now = 1500; /* "a" is due */
  r = read_since(h, "t", 0, p1.epoch, 10);
  CHECK_EQ_INT(r.recovered, 0);
  if (CHECK_EQ_INT(r.n, 1)) CHECK_STR(r.data[0], "b");
  r = read_since(h, "t", 1, p1.epoch, 10); /* had "a": nothing lost */
  CHECK_EQ_INT(r.recovered, 1);
  CHECK_EQ_INT(stats(m).expired, 1);
  g_now = 1700; /* "b" too: empty, but the epoch and the top stay */
  r = read_since(h, "t", 2, p1.epoch, 10);
  CHECK_EQ_INT(r.recovered, 1);
  CHECK_EQ_INT(r.n, 0);
  CHECK_EQ_INT(r.top.offset, 2);
  CHECK_STR(r.top.epoch, p1.epoch);
  CHECK_EQ_INT(stats(m).items, 0);

  /* a shorter TTL shortens the older ones: messages leave oldest first, no holes */
  gw_history_append_opts_t longer = {.ttl_ms = 10000}, shorter = {.ttl_ms = 100};
  append_s(h, "t", "long", &longer);   /* 3: due at 11700, shortened to 1800 */
  append_s(h, "t", "short", &shorter); /* 4: due at 1800 */
  g_now = 1799;
  CHECK_EQ_INT(read_since(h, "t", 2, p1.epoch, 10).n, 2);
  g_now = 1800;
  r = read_since(h, "t", 2, p1.epoch, 10);
  CHECK_EQ_INT(r.n, 0);
  CHECK_EQ_INT(r.recovered, 0); /* 3 and 4 were never read, and are gone */
  r = read_since(h, "t", 4, p1.epoch, 10);
  CHECK_EQ_INT(r.recovered, 1);
  /* no TTL and no default: kept */
  append_s(h, "t", "forever", NULL);
  g_now = 1e9;
  CHECK_EQ_INT(read_since(h, "t", 4, p1.epoch, 10).n, 1);

  /* an empty stream is forgotten stream_ttl_ms after its last append: a new epoch */
  gw_history_mem_config_t c2 = config();
  c2.stream_ttl_ms = 60000;
  c2.default_ttl_ms = 1000;
  gw_history_mem_t *m2 = store(&c2);
  const gw_history_t *h2 = gw_history_mem_store(m2);
  g_now = 0;
  gw_stream_pos_t q = append_s(h2, "s", "x", NULL); /* default TTL 1 s */
  g_now = 59999;
  CHECK_STR(top_of(h2, "s").epoch, q.epoch);
  CHECK_EQ_INT(top_of(h2, "s").offset, 1);
  g_now = 60000;
  gw_stream_pos_t q2 = top_of(h2, "s");
  CHECK(strcmp(q2.epoch, q.epoch) != 0);
  CHECK_EQ_INT(q2.offset, 0);
  CHECK_EQ_INT(stats(m2).streams_expired, 1);
  r = read_since(h2, "s", 1, q.epoch, 10);
  CHECK_EQ_INT(r.recovered, 0);
  gw_history_mem_free(m2);
  gw_history_mem_free(m);
}

static void test_sweep(void) {
  g_now = 0;
  gw_history_mem_config_t c = config();
  c.stream_ttl_ms = 10000;
  gw_history_mem_t *m = store(&c);
  const gw_history_t *h = gw_history_mem_store(m);
  gw_history_append_opts_t ttl = {.ttl_ms = 100};
  char ch[16];
  for (int i = 0; i < 10; i++) {
    snprintf(ch, sizeof ch, "s%d", i);
    append_s(h, ch, "aa", &ttl);
    append_s(h, ch, "bb", &ttl);
  }
  append_s(h, "keep", "k", NULL);
  CHECK_EQ_INT(stats(m).items, 21);
  CHECK_EQ_INT(gw_history_mem_sweep(m, 100), 0); /* nothing due */
  g_now = 100;
  /* bounded: three streams per call, without touching them otherwise */
  size_t removed = gw_history_mem_sweep(m, 3);
  CHECK(removed >= 4 && removed <= 6);
  size_t total = removed;
  for (int i = 0; i < 10 && total < 20; i++) total += gw_history_mem_sweep(m, 3);
  CHECK_EQ_INT(total, 20);
  gw_history_mem_stats_t st = stats(m);
  CHECK_EQ_INT(st.items, 1);
  CHECK_EQ_INT(st.bytes, 1);
  CHECK_EQ_INT(st.expired, 20);
  CHECK_EQ_INT(st.streams, 11); /* empty streams keep their epoch for stream_ttl_ms */
  g_now = 10000;
  removed = 0;
  for (int i = 0; i < 5; i++) removed += gw_history_mem_sweep(m, 4);
  CHECK_EQ_INT(removed, 10);
  CHECK_EQ_INT(stats(m).streams, 1);
  CHECK_EQ_INT(stats(m).streams_expired, 10);
  CHECK_EQ_INT(gw_history_mem_sweep(m, 0), 0);
  gw_history_mem_free(m);
}

static void test_totals(void) {
  g_now = 0;
  gw_history_mem_config_t c = config();
  c.max_streams = 3;
  c.max_total_bytes = 100;
  c.max_stream_bytes = 60;
  gw_history_mem_t *m = store(&c);
  const gw_history_t *h = gw_history_mem_store(m);

  gw_stream_pos_t a = append_s(h, "a", "1", NULL);
  append_s(h, "b", "1", NULL);
  append_s(h, "c", "1", NULL);
  append_s(h, "a", "2", NULL); /* "a" is now the most recently appended; "b" the least */
  append_s(h, "d", "1", NULL); /* a fourth stream: "b" goes */
  gw_history_mem_stats_t st = stats(m);
  CHECK_EQ_INT(st.streams, 3);
  CHECK_EQ_INT(st.evicted, 1);
  CHECK_EQ_INT(st.evicted_items, 1);
  CHECK_STR(top_of(h, "a").epoch, a.epoch);
  CHECK_EQ_INT(top_of(h, "a").offset, 2);
  /* "b" was forgotten: asking creates it anew (offset 0, another epoch), evicting "c" */
  CHECK_EQ_INT(top_of(h, "b").offset, 0);
  CHECK_EQ_INT(stats(m).evicted, 2);

  /* total bytes: 50 + 50 fill it; another 50 in a third stream evicts the oldest */
  char fifty[51];
  memset(fifty, 'x', 50);
  fifty[50] = 0;
  gw_history_mem_t *m2;
  c.max_streams = 100;
  CHECK_EQ_INT(gw_history_mem_new(&c, &m2), 0);
  const gw_history_t *h2 = gw_history_mem_store(m2);
  append_s(h2, "p", fifty, NULL);
  append_s(h2, "q", fifty, NULL);
  CHECK_EQ_INT(stats(m2).bytes, 100);
  append_s(h2, "r", fifty, NULL);
  st = stats(m2);
  CHECK_EQ_INT(st.bytes, 100);
  CHECK_EQ_INT(st.evicted, 1);
  CHECK_EQ_INT(top_of(h2, "q").offset, 1); /* "p" went, "q" stayed */
  /* alone, a stream is trimmed rather than evicted */
  gw_history_mem_t *m3;
  c.max_stream_bytes = 100;
  CHECK_EQ_INT(gw_history_mem_new(&c, &m3), 0);
  const gw_history_t *h3 = gw_history_mem_store(m3);
  for (int i = 0; i < 5; i++) append_s(h3, "solo", fifty, NULL);
  st = stats(m3);
  CHECK_EQ_INT(st.bytes, 100);
  CHECK_EQ_INT(st.items, 2);
  CHECK_EQ_INT(st.trimmed, 3);
  CHECK_EQ_INT(st.evicted, 0);

  /* a random workload never passes a bound */
  gw_history_mem_config_t rc = config();
  rc.max_streams = 8;
  rc.max_total_bytes = 2000;
  rc.max_stream_len = 20;
  rc.max_stream_bytes = 500;
  gw_history_mem_t *m4 = store(&rc);
  const gw_history_t *h4 = gw_history_mem_store(m4);
  srand(42);
  char payload[300], ch[16];
  memset(payload, 'p', sizeof payload);
  int over = 0, bad_offset = 0;
  uint64_t last[20] = {0};
  char epochs[20][GW_HISTORY_EPOCH_MAX + 1] = {{0}};
  for (int i = 0; i < 5000; i++) {
    int k = rand() % 20;
    snprintf(ch, sizeof ch, "ch%d", k);
    size_t len = (size_t)(rand() % 300);
    pos_res_t pr = {0};
    if (gw_history_append(h4, ch, payload, len, NULL, on_pos, &pr) != 0) over++;
    /* offsets go up by one while the epoch holds; a new epoch starts again at 1 */
    if (strcmp(pr.pos.epoch, epochs[k]) == 0 ? pr.pos.offset != last[k] + 1 : pr.pos.offset != 1)
      bad_offset++;
    last[k] = pr.pos.offset;
    memcpy(epochs[k], pr.pos.epoch, sizeof epochs[k]);
    gw_history_mem_stats_t s4 = stats(m4);
    if (s4.bytes > rc.max_total_bytes || s4.streams > rc.max_streams ||
        s4.items > rc.max_streams * rc.max_stream_len)
      over++;
  }
  CHECK_EQ_INT(over, 0);
  CHECK_EQ_INT(bad_offset, 0);
  CHECK(stats(m4).evicted > 0);
  gw_history_mem_free(m4);
  gw_history_mem_free(m3);
  gw_history_mem_free(m2);
  gw_history_mem_free(m);
}

static void test_bad_input(void) {
  gw_history_mem_config_t c = config();
  gw_history_mem_t *m = store(&c);
  const gw_history_t *h = gw_history_mem_store(m);
  pos_res_t pr = {0};
  read_res_t rr = {0};
  char longname[GW_HISTORY_CHANNEL_MAX + 2];
  memset(longname, 'n', sizeof longname - 1);
  longname[sizeof longname - 1] = 0;
  gw_stream_pos_t since = {0};
  CHECK_EQ_INT(gw_history_append(h, "", "x", 1, NULL, on_pos, &pr), GW_EINVAL);
  CHECK_EQ_INT(gw_history_append(h, NULL, "x", 1, NULL, on_pos, &pr), GW_EINVAL);
  CHECK_EQ_INT(gw_history_append(h, longname, "x", 1, NULL, on_pos, &pr), GW_EINVAL);
  CHECK_EQ_INT(gw_history_append(h, "c", NULL, 1, NULL, on_pos, &pr), GW_EINVAL);
  CHECK_EQ_INT(gw_history_read_since(h, "c", NULL, 10, on_read, &rr), GW_EINVAL);
  CHECK_EQ_INT(gw_history_read_since(h, "c", &since, 10, NULL, NULL), GW_EINVAL);
  CHECK_EQ_INT(gw_history_read_since(h, "", &since, 10, on_read, &rr), GW_EINVAL);
  CHECK_EQ_INT(gw_history_top(h, longname, on_pos, &pr), GW_EINVAL);
  CHECK_EQ_INT(pr.calls + rr.calls, 0); /* refused: no callback */
  CHECK_EQ_INT(stats(m).streams, 0);   /* and nothing created */
  longname[GW_HISTORY_CHANNEL_MAX] = 0;  /* exactly the maximum is fine */
  CHECK_EQ_INT(gw_history_append(h, longname, "x", 1, NULL, on_pos, &pr), 0);
  gw_history_mem_free(m);

  gw_history_mem_t *bad = (gw_history_mem_t *)1;
  gw_history_mem_config_t z = config();
  z.max_streams = 0;
  CHECK_EQ_INT(gw_history_mem_new(&z, &bad), GW_EINVAL);
  CHECK(bad == NULL);
  z = config();
  z.max_stream_bytes = 0;
  CHECK_EQ_INT(gw_history_mem_new(&z, &bad), GW_EINVAL);
  CHECK_EQ_INT(gw_history_mem_new(NULL, &bad), 0); /* the defaults */
  gw_history_mem_free(bad);
}

/* A callback that appends to the same store while holding the items of a read: the items
 * stay readable (ASan would report a use after free), and the store is consistent after. */
typedef struct {
  const gw_history_t *h;
  gw_history_mem_t *m;
  const char *expect; /* every item handed to the callback */
  int ok;
  int close_inside;
} reentry_t;

static void on_read_reenter(void *ud, int status, const gw_history_item_t *items, size_t n,
                            const gw_stream_pos_t *top, int recovered) {
  reentry_t *r = ud;
  (void)status, (void)top, (void)recovered;
  for (int i = 0; i < 10; i++) /* trims every item handed to us (max_stream_len 3) */
    gw_history_append(r->h, "re", "newer", 5, NULL, NULL, NULL);
  r->ok = n == 3;
  for (size_t i = 0; i < n; i++)
    if (items[i].len != strlen(r->expect) || memcmp(items[i].data, r->expect, items[i].len) != 0)
      r->ok = 0;
  if (r->close_inside) gw_history_close(r->h); /* freed once we return */
}

static void test_reentry(void) {
  gw_history_mem_config_t c = config();
  c.max_stream_len = 3;
  gw_history_mem_t *m = store(&c);
  const gw_history_t *h = gw_history_mem_store(m);
  gw_stream_pos_t p = {0};
  for (int i = 0; i < 3; i++) p = append_s(h, "re", "old", NULL);
  reentry_t r = {.h = h, .m = m, .expect = "old"};
  gw_stream_pos_t since = {.offset = 0};
  memcpy(since.epoch, p.epoch, sizeof since.epoch);
  CHECK_EQ_INT(gw_history_read_since(h, "re", &since, 10, on_read_reenter, &r), 0);
  CHECK(r.ok);
  gw_history_mem_stats_t st = stats(m);
  CHECK_EQ_INT(st.items, 3);
  CHECK_EQ_INT(st.trimmed, 10);
  CHECK_EQ_INT(top_of(h, "re").offset, 13);

  /* closing from inside a callback: the store goes once the callback returns (LSan: no
   * leak; ASan: no use after free) */
  reentry_t r2 = {.h = h, .m = m, .expect = "newer", .close_inside = 1};
  since.offset = 10;
  CHECK_EQ_INT(gw_history_read_since(h, "re", &since, 10, on_read_reenter, &r2), 0);
  CHECK(r2.ok);
}

int main(void) {
  test_offsets_and_epochs();
  test_read_since();
  test_trimming();
  test_ttl();
  test_sweep();
  test_totals();
  test_bad_input();
  test_reentry();
  return check_done();
}
