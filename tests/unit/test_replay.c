/* Offline replay's C pieces (issue 15, docs/offline-replay.md): rule matching (first match
 * wins, events, keep = false shadowing), the stored payload's codec (malformed bytes from a
 * shared store refused), the hold of live events while a connection resumes (order, the
 * seam, overflow, stale holds, leaving the room), the memory store's ack cursor, and the
 * node keeping what a rule matches, with positions, before it goes out. */
#include <stdlib.h>
#include <string.h>

#include "broker_local.h"
#include "check.h"
#include "clock.h"
#include "conn.h"
#include "errors.h"
#include "history_mem.h"
#include "hold.h"
#include "node.h"
#include "replay.h"
#include "replay_rule.h"
#include "room.h"
#include "settings.h"

static char *dup(const char *s) { return strdup(s); }

/* user:* invoice (ack), room:lobby, room:* off, user:* */
static gw_replay_rule_t *make_rules(size_t *n) {
  gw_replay_rule_t *r = calloc(4, sizeof *r);
  r[0] = (gw_replay_rule_t){.channel = dup("user:*"), .clen = 5, .prefix = 1, .keep = 1, .ack = 1, .size = 10,
                            .retries = 3, .ack_timeout_ms = 100};
  r[0].events = calloc(1, sizeof(char *));
  r[0].events[0] = dup("invoice");
  r[0].n_events = 1;
  r[1] = (gw_replay_rule_t){.channel = dup("room:lobby"), .clen = 10, .keep = 1, .size = 3};
  r[2] = (gw_replay_rule_t){.channel = dup("room:*"), .clen = 5, .prefix = 1, .keep = 0};
  r[3] = (gw_replay_rule_t){.channel = dup("user:*"), .clen = 5, .prefix = 1, .keep = 1, .size = 100};
  *n = 4;
  return r;
}

static void test_rules(void) {
  size_t n;
  gw_replay_rule_t *r = make_rules(&n);
  CHECK(gw_replay_match(r, n, "user:a", "invoice", 7) == &r[0]);
  CHECK(gw_replay_match(r, n, "user:a", "note", 4) == &r[3]);
  CHECK(gw_replay_match(r, n, "user:a", "invoices", 8) == &r[3]); /* names, not prefixes */
  CHECK(gw_replay_match(r, n, "room:lobby", "x", 1) == &r[1]);
  CHECK(gw_replay_match(r, n, "room:lobby2", "x", 1) == NULL); /* room:* keep = false */
  CHECK(gw_replay_match(r, n, "other", "x", 1) == NULL);
  CHECK_EQ_INT(gw_replay_channel_kept(r, n, "room:lobby"), 1);
  CHECK_EQ_INT(gw_replay_channel_kept(r, n, "room:x"), 0);
  CHECK_EQ_INT(gw_replay_channel_kept(r, n, "user:x"), 1);
  CHECK(gw_replay_ack_rule(r, n, "user:x") == &r[0]);
  CHECK(gw_replay_ack_rule(r, n, "room:lobby") == NULL);
  gw_replay_rules_free(r, n);
}

static void test_codec(void) {
  size_t len;
  char *p = gw_replay_encode("chat", 4, "{\"a\":1}", 7, &len);
  CHECK_EQ_INT((long long)len, 2 + 4 + 7);
  gw_replay_item_t it;
  CHECK_EQ_INT(gw_replay_decode(p, len, 9, &it), 0);
  CHECK_EQ_INT((long long)it.offset, 9);
  CHECK(it.evlen == 4 && memcmp(it.ev, "chat", 4) == 0);
  CHECK(it.jlen == 7 && memcmp(it.json, "{\"a\":1}", 7) == 0);
  free(p);
  p = gw_replay_encode("ping", 4, NULL, 0, &len);
  CHECK_EQ_INT(gw_replay_decode(p, len, 1, &it), 0);
  CHECK(it.json == NULL && it.jlen == 0);
  free(p);
  /* what a foreign or damaged store entry may hold */
  const char *bad[] = {"", "x", ":", "4:", "4:abc", "0:", "201:x", "99999:abc", "4chat"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    CHECK_EQ_INT(gw_replay_decode(bad[i], strlen(bad[i]), 1, &it), GW_EIO);
}

/* ---- holds ---------------------------------------------------------------------------- */

static uint64_t sent_offsets[64];
static size_t nsent;
static void record(gw_conn_t *c, const gw_event_t *e) {
  (void)c;
  if (nsent < 64) sent_offsets[nsent++] = e->pos->offset;
}

static gw_event_t ev_at(const char *channel, gw_stream_pos_t *pos, uint64_t off, const char *epoch) {
  pos->offset = off;
  snprintf(pos->epoch, sizeof pos->epoch, "%s", epoch);
  return (gw_event_t){"m", 1, "1", 1, channel, pos, 0};
}

static void test_hold(void) {
  gw_conn_t *c = gw_conn_new();
  CHECK_EQ_INT(gw_room_join(c, "r", 10), 0);
  CHECK_EQ_INT(gw_hold_begin(c, "r", 1), 0);
  CHECK_EQ_INT(gw_hold_begin(c, "r", 1), GW_EEXIST); /* a second resume of the same stream */
  CHECK_EQ_INT((long long)gw_hold_count(), 1);
  gw_stream_pos_t p;
  gw_event_t e = ev_at("r", &p, 5, "E");
  CHECK_EQ_INT(gw_hold_take(c, &e), 1);
  e = ev_at("r", &p, 6, "E");
  CHECK_EQ_INT(gw_hold_take(c, &e), 1);
  e = ev_at("other", &p, 1, "E");
  CHECK_EQ_INT(gw_hold_take(c, &e), 0); /* not held: goes out at once */
  gw_event_t plain = {"m", 1, NULL, 0, NULL, NULL, 0};
  CHECK_EQ_INT(gw_hold_take(c, &plain), 0); /* not kept */
  CHECK_EQ_INT((long long)gw_hold_first_offset(c, "r", "E"), 5);
  /* the replay reached 5: only 6 follows, 5 is not repeated */
  gw_stream_pos_t after = {5, "E"};
  nsent = 0;
  CHECK_EQ_INT(gw_hold_end(c, "r", &after, record), 0);
  CHECK_EQ_INT((long long)nsent, 1);
  CHECK_EQ_INT((long long)sent_offsets[0], 6);
  CHECK(c->hold == NULL); /* nothing left: freed */
  CHECK_EQ_INT((long long)gw_hold_count(), 0);

  /* another epoch after the replay (the stream started again): everything held goes */
  CHECK_EQ_INT(gw_hold_begin(c, "r", 1), 0);
  e = ev_at("r", &p, 1, "F");
  gw_hold_take(c, &e);
  nsent = 0;
  gw_hold_end(c, "r", &after, record);
  CHECK_EQ_INT((long long)nsent, 1);

  /* overflow: the resume must say recovered = false */
  CHECK_EQ_INT(gw_hold_begin(c, "r", 1), 0);
  for (uint64_t i = 1; i <= GW_HOLD_MAX_EVENTS + 5; i++) {
    e = ev_at("r", &p, i, "E");
    CHECK_EQ_INT(gw_hold_take(c, &e), 1);
  }
  gw_stream_pos_t zero = {0, "E"};
  CHECK_EQ_INT(gw_hold_end(c, "r", &zero, NULL), GW_ELIMIT);

  /* a hold from a join that no resume claims is released later, with what it held */
  CHECK_EQ_INT(gw_hold_begin(c, "r", 0), 0);
  CHECK_EQ_INT(gw_hold_begin(c, "r", 0), GW_EEXIST);
  e = ev_at("r", &p, 7, "E");
  gw_hold_take(c, &e);
  nsent = 0;
  gw_hold_release_stale(c, gw_clock_now_ms() - 60000, record); /* too young */
  CHECK_EQ_INT((long long)nsent, 0);
  gw_hold_release_stale(c, gw_clock_now_ms() + 1, record);
  CHECK_EQ_INT((long long)nsent, 1);
  CHECK(c->hold == NULL);

  /* a resume claims a join's hold; leaving the room drops the hold */
  CHECK_EQ_INT(gw_hold_begin(c, "r", 0), 0);
  CHECK_EQ_INT(gw_hold_begin(c, "r", 1), 0);
  CHECK_EQ_INT(gw_hold_begin(c, "s", 1), 0);
  for (int i = 0; i < GW_HOLD_CHANNELS - 2; i++) {
    char name[16];
    snprintf(name, sizeof name, "x%d", i);
    CHECK_EQ_INT(gw_hold_begin(c, name, 1), 0);
  }
  CHECK_EQ_INT(gw_hold_begin(c, "one-too-many", 1), GW_ELIMIT);
  gw_room_leave_all(c);
  gw_hold_free(c);
  CHECK(c->hold == NULL);
  CHECK_EQ_INT((long long)gw_hold_count(), 0);
  gw_conn_free(c);
}

/* ---- the memory store's ack cursor ------------------------------------------------------ */

static gw_stream_pos_t got;
static void on_pos(void *ud, int status, const gw_stream_pos_t *pos) {
  (void)ud;
  if (!status) got = *pos;
}

static void test_ack_cursor(void) {
  gw_history_mem_t *m;
  CHECK_EQ_INT(gw_history_mem_new(NULL, &m), 0);
  const gw_history_t *h = gw_history_mem_store(m);
  for (int i = 0; i < 3; i++) gw_history_append(h, "s", "x", 1, NULL, on_pos, NULL);
  gw_stream_pos_t top = got;
  CHECK_EQ_INT((long long)top.offset, 3);
  h->ack_get(h->ud, "s", on_pos, NULL);
  CHECK_EQ_INT((long long)got.offset, 0);
  gw_stream_pos_t a = top;
  a.offset = 2;
  CHECK_EQ_INT(h->ack_set(h->ud, "s", &a), 0);
  h->ack_get(h->ud, "s", on_pos, NULL);
  CHECK_EQ_INT((long long)got.offset, 2);
  CHECK_STR(got.epoch, top.epoch);
  a.offset = 1; /* never backwards */
  h->ack_set(h->ud, "s", &a);
  a.offset = 9; /* never past the top */
  h->ack_set(h->ud, "s", &a);
  snprintf(a.epoch, sizeof a.epoch, "other"); /* never another epoch's */
  a.offset = 3;
  h->ack_set(h->ud, "s", &a);
  h->ack_get(h->ud, "s", on_pos, NULL);
  CHECK_EQ_INT((long long)got.offset, 2);
  gw_history_mem_free(m);
}

/* ---- the node keeps before it publishes ------------------------------------------------- */

static gw_stream_pos_t delivered_pos;
static int delivered_has_pos, deliveries;
static size_t deliver(void *ud, const char *channel, const gw_publication_t *pub) {
  (void)ud, (void)channel;
  deliveries++;
  delivered_has_pos = pub->has_position;
  if (pub->has_position) delivered_pos = pub->position;
  return 1;
}

static size_t read_n;
static int read_rec, read_last;
static char read_first_ev[16];
static void on_read(void *ud, int status, const gw_replay_item_t *items, size_t n, const gw_stream_pos_t *top,
                    int recovered, int last) {
  (void)ud, (void)top;
  if (status) return;
  if (n && !read_n) snprintf(read_first_ev, sizeof read_first_ev, "%.*s", (int)items[0].evlen, items[0].ev);
  read_n += n;
  read_rec = recovered;
  read_last = last;
}

static void test_node_keeps(void) {
  gw_settings_t s;
  memset(&s, 0, sizeof s);
  s.replay = make_rules(&s.n_replay);
  s.history.max_stream_len = 1000;
  s.history.max_message_bytes = 64;
  gw_settings_set(&s);
  gw_broker_local_t *bl;
  CHECK_EQ_INT(gw_broker_local_new(&bl), 0);
  gw_history_mem_t *m;
  CHECK_EQ_INT(gw_history_mem_new(NULL, &m), 0);
  gw_node_config_t cfg = {.broker = gw_broker_local_broker(bl), .history = gw_history_mem_store(m),
                          .delivery = {.deliver = deliver}};
  CHECK_EQ_INT(gw_node_init(&cfg), 0);

  gw_node_stats_t st;
  CHECK_EQ_INT(gw_node_publish("room:lobby", "chat", 4, "1", 1, 0, NULL), 0);
  CHECK(delivered_has_pos && delivered_pos.offset == 1 && delivered_pos.epoch[0]);
  gw_stream_pos_t first = delivered_pos;
  CHECK_EQ_INT(gw_node_publish("room:lobby", "chat", 4, "2", 1, 0, NULL), 0);
  CHECK(delivered_has_pos && delivered_pos.offset == 2);
  CHECK_STR(delivered_pos.epoch, first.epoch);
  CHECK_EQ_INT(gw_node_publish("room:other", "chat", 4, "3", 1, 0, NULL), 0); /* room:* off */
  CHECK(!delivered_has_pos);
  char big[100];
  memset(big, '1', sizeof big);
  CHECK_EQ_INT(gw_node_publish("room:lobby", "chat", 4, big, sizeof big, 0, NULL), 0); /* too large: live only */
  CHECK(!delivered_has_pos);
  gw_node_stats(&st);
  CHECK_EQ_INT((long long)st.kept, 2);
  CHECK_EQ_INT((long long)st.keep_failed, 1);
  CHECK_EQ_INT(deliveries, 4);

  /* size 3: a fourth and fifth message trim the first two */
  for (int i = 0; i < 3; i++) gw_node_publish("room:lobby", "later", 5, NULL, 0, 0, NULL);
  CHECK_EQ_INT(gw_node_replay_read("room:lobby", &first, 100, on_read, NULL), 0);
  CHECK_EQ_INT(read_rec, 0); /* offset 2 was trimmed: a gap */
  CHECK_EQ_INT((long long)read_n, 3);
  CHECK_STR(read_first_ev, "later");
  CHECK_EQ_INT(read_last, 1);
  read_n = 0;
  gw_stream_pos_t at3 = first;
  at3.offset = 3;
  CHECK_EQ_INT(gw_node_replay_read("room:lobby", &at3, 100, on_read, NULL), 0);
  CHECK_EQ_INT(read_rec, 1);
  CHECK_EQ_INT((long long)read_n, 2);
  CHECK_EQ_INT(gw_node_replay_kept("room:lobby"), 1);
  CHECK_EQ_INT(gw_node_replay_kept("room:x"), 0);

  gw_node_close();
  gw_history_mem_free(m);
  gw_broker_local_free(bl);
  gw_settings_set(NULL);
  gw_replay_rules_free(s.replay, s.n_replay);
}

int main(void) {
  test_rules();
  test_codec();
  test_hold();
  test_ack_cursor();
  test_node_keeps();
  return check_done();
}
