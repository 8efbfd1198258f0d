/* Socket.IO connection state recovery's store (sio_recovery.h): offsets, the buffer's
 * bounds (packets and bytes per session, bytes for the process) and what it can still
 * catch up, parked sessions watching their rooms (room.h watchers: fan-out, no membership)
 * and their expiry. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "conn.h"
#include "room.h"
#include "sio_recovery.h"

static gw_msgbuf_t *pkt(size_t len) {
  gw_msgbuf_t *b = gw_msgbuf_new(len, 0);
  memset(gw_msgbuf_payload(b), 'x', len);
  return b;
}

/* Adds one packet costing `cost` against the bounds (its bytes and an entry's overhead) at
 * the next offset; returns the offset. */
static uint64_t add(gw_sior_buf_t *b, size_t cost) {
  uint64_t off = gw_sior_next_offset();
  gw_msgbuf_t *p = pkt(cost - GW_SIOR_ENTRY_OVERHEAD);
  CHECK_EQ_INT(gw_sior_buf_add(b, off, &p, 1), 0);
  gw_msgbuf_unref(p);
  return off;
}

static void test_offsets(void) {
  char s[GW_SIOR_OFFSET_MAX];
  uint64_t v = 0;
  CHECK_EQ_INT(gw_sior_offset_str(18446744073709551615ull, s), 20);
  CHECK_STR(s, "18446744073709551615");
  CHECK_EQ_INT(gw_sior_offset_parse(s, strlen(s), &v), 0);
  CHECK(v == 18446744073709551615ull);
  CHECK_EQ_INT(gw_sior_offset_parse("18446744073709551616", 20, &v), -1); /* overflows */
  CHECK_EQ_INT(gw_sior_offset_parse("12a", 3, &v), -1);
  CHECK_EQ_INT(gw_sior_offset_parse("", 0, &v), -1);
  CHECK_EQ_INT(gw_sior_offset_parse("-1", 2, &v), -1);
  uint64_t a = gw_sior_next_offset(), b = gw_sior_next_offset();
  CHECK(a != 0 && b == a + 1 && gw_sior_last_offset() == b);
  char p1[GW_SIOR_PID_LEN + 1], p2[GW_SIOR_PID_LEN + 1];
  gw_sior_new_pid(p1);
  gw_sior_new_pid(p2);
  CHECK_EQ_INT(strlen(p1), GW_SIOR_PID_LEN);
  CHECK(strspn(p1, "0123456789abcdef") == GW_SIOR_PID_LEN);
  CHECK(strcmp(p1, p2) != 0);
}

static void test_bounds(void) {
  gw_sior_limits_t l = {4, 1000, 100000, 10};
  gw_sior_set_limits(&l);
  gw_sior_buf_t b;
  uint64_t before = gw_sior_next_offset();
  gw_sior_buf_init(&b);
  CHECK(gw_sior_buf_covers(&b, 0));      /* nothing received: everything is here */
  CHECK(gw_sior_buf_covers(&b, before)); /* an offset from before the session */
  uint64_t o[10];
  for (int i = 0; i < 4; i++) o[i] = add(&b, 100);
  CHECK_EQ_INT(b.n, 4);
  CHECK_EQ_INT(b.bytes, 400);
  CHECK_EQ_INT(gw_sior_total_bytes(), 400);
  CHECK(!b.trimmed);
  /* the count bound: the oldest goes, offsets at or after it stay covered */
  o[4] = add(&b, 100);
  CHECK_EQ_INT(b.n, 4);
  CHECK(b.trimmed);
  CHECK(gw_sior_buf_at(&b, 0)->off == o[1]);
  CHECK(!gw_sior_buf_covers(&b, 0));
  CHECK(!gw_sior_buf_covers(&b, before));
  CHECK(gw_sior_buf_covers(&b, o[0])); /* it had the dropped one: the rest is here */
  CHECK(gw_sior_buf_covers(&b, o[3]));
  /* the byte bound: 1000 per session */
  o[5] = add(&b, 700);
  CHECK(b.bytes <= 1000);
  CHECK(gw_sior_buf_at(&b, b.n - 1)->off == o[5]);
  CHECK_EQ_INT(b.n, 4); /* 100 + 100 + 100 + 700 */
  CHECK_EQ_INT(b.bytes, 1000);
  CHECK(!gw_sior_buf_covers(&b, o[0]));
  CHECK(gw_sior_buf_covers(&b, o[1]));
  o[7] = add(&b, 150); /* two more go for 150 bytes */
  CHECK_EQ_INT(b.n, 3);
  CHECK_EQ_INT(b.bytes, 950);
  CHECK(!gw_sior_buf_covers(&b, o[2]));
  CHECK(gw_sior_buf_covers(&b, o[3]));
  /* larger than a session may hold: everything goes, only its own offset covers */
  o[6] = add(&b, 1001);
  CHECK_EQ_INT(b.n, 0);
  CHECK_EQ_INT(b.bytes, 0);
  CHECK(!gw_sior_buf_covers(&b, o[5]));
  CHECK(gw_sior_buf_covers(&b, o[6]));
  CHECK_EQ_INT(gw_sior_total_bytes(), 0);
  /* the process-wide bound: two sessions share 1500 bytes */
  l.max_total_bytes = 1500;
  gw_sior_set_limits(&l);
  gw_sior_buf_t c;
  gw_sior_buf_init(&c);
  add(&b, 500);
  add(&b, 400);
  add(&c, 500);
  CHECK_EQ_INT(gw_sior_total_bytes(), 1400);
  uint64_t oc = add(&c, 500); /* c gives up its own oldest */
  CHECK_EQ_INT(c.n, 1);
  CHECK(gw_sior_buf_at(&c, 0)->off == oc);
  CHECK_EQ_INT(b.n, 2);
  CHECK(gw_sior_total_bytes() <= 1500);
  add(&c, 700); /* cannot fit even alone: c is emptied */
  CHECK_EQ_INT(c.n, 0);
  CHECK_EQ_INT(gw_sior_total_bytes(), 900);
  /* packets with attachments are one entry */
  gw_msgbuf_t *two[2] = {pkt(10), pkt(20)};
  uint64_t om = gw_sior_next_offset();
  CHECK_EQ_INT(gw_sior_buf_add(&c, om, two, 2), 0);
  CHECK_EQ_INT(two[0]->refs, 2);
  const gw_sior_entry_t *e = gw_sior_buf_at(&c, 0);
  CHECK(e && e->npkts == 2 && e->bytes == 30 + GW_SIOR_ENTRY_OVERHEAD && gw_sior_entry_pkts(e)[1] == two[1]);
  gw_sior_buf_free(&c);
  CHECK_EQ_INT(two[0]->refs, 1); /* references released */
  gw_msgbuf_unref(two[0]);
  gw_msgbuf_unref(two[1]);
  gw_sior_buf_free(&b);
  CHECK_EQ_INT(gw_sior_total_bytes(), 0);
  gw_sior_limits_t d = {GW_SIOR_DEFAULT_MAX_PACKETS, GW_SIOR_DEFAULT_MAX_BYTES, GW_SIOR_DEFAULT_MAX_TOTAL_BYTES,
                        GW_SIOR_DEFAULT_MAX_PARKED};
  gw_sior_set_limits(&d);
}

/* The parked watcher's table: what reaches its rooms lands in its buffer. */
static int watcher_fanout(void **cache, gw_conn_t *w, const gw_event_t *e) {
  (void)cache;
  gw_sior_parked_t *p = w->transport;
  gw_msgbuf_t *b = gw_msgbuf_from(e->ev, e->evlen, 0);
  gw_sior_buf_add(&p->buf, gw_sior_next_offset(), &b, 1);
  gw_msgbuf_unref(b);
  return 1;
}
static const gw_conn_ops_t watcher_ops = {.proto = GW_PROTO_SOCKETIO, .fanout = watcher_fanout};

static int live_got;
static int live_fanout(void **cache, gw_conn_t *c, const gw_event_t *e) {
  (void)cache, (void)c, (void)e;
  live_got++;
  return 0;
}
static const gw_conn_ops_t live_ops = {.proto = GW_PROTO_WS, .fanout = live_fanout};

static void test_parked(void) {
  gw_conn_t *c = gw_conn_new(), *other = gw_conn_new();
  c->ops = &live_ops;
  other->ops = &live_ops;
  gw_conn_set_user(c, "alice");
  CHECK_EQ_INT(gw_room_join(c, "user:alice", 10), 0);
  CHECK_EQ_INT(gw_room_join(c, "lobby", 10), 0);
  CHECK_EQ_INT(gw_room_join(other, "lobby", 10), 0);
  gw_sior_buf_t buf;
  gw_sior_buf_init(&buf);
  add(&buf, 100);
  char pid[GW_SIOR_PID_LEN + 1];
  gw_sior_new_pid(pid);
  gw_sior_parked_t *p = gw_sior_park(pid, "sid1", "/", c, &buf, 60000, &watcher_ops);
  CHECK(p != NULL);
  if (!p) return;
  CHECK_EQ_INT(buf.n, 0); /* moved */
  CHECK_EQ_INT(p->buf.n, 1);
  CHECK_EQ_INT(p->nrooms, 2);
  /* the connection goes; its rooms stay, watched, without members of it */
  gw_room_leave_all(c);
  gw_conn_free(c);
  CHECK(gw_room_find("user:alice") != NULL);
  CHECK_EQ_INT(gw_room_size("user:alice"), 0);
  CHECK_EQ_INT(gw_room_size("lobby"), 1);
  gw_event_t e = {"hello", 5, NULL, 0, NULL, NULL, 0};
  live_got = 0;
  CHECK_EQ_INT(gw_room_fanout("lobby", &e, 0), 1); /* the watcher is not counted */
  CHECK_EQ_INT(live_got, 1);
  CHECK_EQ_INT(gw_room_fanout("user:alice", &e, 0), 0);
  CHECK_EQ_INT(p->buf.n, 3);
  CHECK(gw_sior_find(pid) == p);
  CHECK(gw_sior_find("0123") == NULL);
  CHECK_EQ_INT(gw_sior_parked_count(), 1);
  gw_sior_unpark(p);
  CHECK(gw_sior_find(pid) == NULL);
  CHECK(gw_room_find("user:alice") == NULL); /* its last watcher gone */
  CHECK_EQ_INT(gw_room_size("lobby"), 1);
  gw_sior_parked_free(p);

  /* expiry: found no more once expired, and freed */
  gw_conn_t *d = gw_conn_new();
  gw_conn_set_user(d, "bob");
  CHECK_EQ_INT(gw_room_join(d, "user:bob", 10), 0);
  gw_sior_buf_init(&buf);
  add(&buf, 100);
  gw_sior_new_pid(pid);
  p = gw_sior_park(pid, "sid2", "/", d, &buf, 0, &watcher_ops);
  CHECK(p != NULL);
  gw_room_leave_all(d);
  gw_conn_free(d);
  CHECK(gw_sior_find(pid) == NULL);
  CHECK_EQ_INT(gw_sior_parked_count(), 0);
  CHECK(gw_room_find("user:bob") == NULL);

  /* the bound on parked sessions: the oldest goes */
  gw_sior_limits_t l = *gw_sior_get_limits();
  l.max_parked = 2;
  gw_sior_set_limits(&l);
  char pids[3][GW_SIOR_PID_LEN + 1];
  for (int i = 0; i < 3; i++) {
    gw_conn_t *x = gw_conn_new();
    gw_conn_set_user(x, "carol");
    gw_sior_buf_init(&buf);
    gw_sior_new_pid(pids[i]);
    CHECK(gw_sior_park(pids[i], "s", "/", x, &buf, 60000, &watcher_ops) != NULL);
    gw_conn_free(x);
  }
  CHECK_EQ_INT(gw_sior_parked_count(), 2);
  CHECK(gw_sior_find(pids[0]) == NULL);
  CHECK(gw_sior_find(pids[2]) != NULL);
  gw_sior_free_all();
  CHECK_EQ_INT(gw_sior_parked_count(), 0);
  CHECK_EQ_INT(gw_sior_total_bytes(), 0);
  gw_room_leave_all(other);
  gw_conn_free(other);
  CHECK_EQ_INT(gw_room_count(), 0);
}

static void test_room_watchers(void) {
  gw_conn_t w = {0};
  w.id = 99;
  w.ops = &live_ops;
  live_got = 0;
  CHECK(gw_room_watch(&w, "") != 0);
  CHECK_EQ_INT(gw_room_watch(&w, "r"), 0);
  CHECK_EQ_INT(gw_room_watch(&w, "r"), 0); /* once */
  gw_room_t *r = gw_room_find("r");
  CHECK(r && r->n == 0 && r->nw == 1);
  gw_conn_t *m = gw_conn_new();
  m->ops = &live_ops;
  CHECK_EQ_INT(gw_room_join(m, "r", 10), 0);
  gw_event_t e = {"x", 1, NULL, 0, NULL, NULL, 0};
  CHECK_EQ_INT(gw_room_fanout("r", &e, 0), 1);
  CHECK_EQ_INT(live_got, 2);
  gw_room_leave_all(m);
  CHECK(gw_room_find("r") != NULL); /* the watcher keeps it */
  gw_room_unwatch(&w, "r");
  CHECK(gw_room_find("r") == NULL);
  gw_conn_free(m);
}

int main(void) {
  test_offsets();
  test_bounds();
  test_parked();
  test_room_watchers();
  return check_done();
}
