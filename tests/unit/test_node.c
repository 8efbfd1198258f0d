/* The node layer with a fake broker (issue 13): a publish reaches each local member once,
 * a room is subscribed at its first local member and unsubscribed at its last (batched per
 * flush), a transport's echo of our own publications is dropped, other nodes' publications
 * are delivered; and the same with the real local broker. Rooms and connections are the
 * real hub (room.c, conn.c); the delivery table plays the layer above. */
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "broker_local.h"
#include "check.h"
#include "conn.h"
#include "errors.h"
#include "node.h"
#include "room.h"

/* ---- a fake broker: a transport we can script ----------------------------------------- */

#define MAXQ 16
typedef struct {
  gw_broker_handler_t h;
  int has_handler;
  int sync;          /* deliver to this node during publish (what every real broker does) */
  int echo;          /* keep a copy to hand back later, as Redis pub/sub does */
  int pump_in_publish; /* hand queued echoes back inside publish, before its own delivery */
  int publish_rc;    /* what publish returns (GW_EUNAVAIL: down) */
  int subscribe_rc;  /* what subscribe returns */
  int publishes;
  int sub_calls, unsub_calls;
  char subs[256], unsubs[256]; /* the last batches, "a;b;" */
  size_t last_sub_n;
  /* queued echoes: deep copies */
  struct {
    gw_publication_t p;
    char ch[64], ev[64], data[128];
  } q[MAXQ];
  int nq;
} fake_t;

static fake_t F;

static int fake_set_handler(void *ud, const gw_broker_handler_t *h) {
  (void)ud;
  F.has_handler = h != NULL;
  if (h) {
    F.h = *h;
    if (h->on_state) h->on_state(h->ud, 1);
  }
  return 0;
}

/* What the transport received meanwhile arrives (from the loop, never inside publish). */
static void fake_pump(void) {
  for (int i = 0; i < F.nq; i++) F.h.on_publication(F.h.ud, &F.q[i].p);
  F.nq = 0;
}

static int fake_publish(void *ud, const gw_publication_t *pub) {
  (void)ud;
  F.publishes++;
  if (F.echo && F.nq < MAXQ) {
    typeof(F.q[0]) *e = &F.q[F.nq++];
    e->p = *pub;
    snprintf(e->ch, sizeof e->ch, "%s", pub->channel);
    snprintf(e->ev, sizeof e->ev, "%.*s", (int)pub->event_len, pub->event);
    if (pub->data) snprintf(e->data, sizeof e->data, "%.*s", (int)pub->data_len, pub->data);
    e->p.channel = e->ch;
    e->p.event = e->ev;
    e->p.data = pub->data ? e->data : NULL;
  }
  if (F.pump_in_publish) fake_pump();
  if (F.sync && F.has_handler) F.h.on_publication(F.h.ud, pub);
  return F.publish_rc;
}

static void join_names(char *out, size_t cap, const char *const *ch, size_t n) {
  out[0] = 0;
  for (size_t i = 0; i < n; i++) {
    strncat(out, ch[i], cap - strlen(out) - 1);
    strncat(out, ";", cap - strlen(out) - 1);
  }
}

static int fake_subscribe(void *ud, const char *const *ch, size_t n) {
  (void)ud;
  F.sub_calls++;
  F.last_sub_n = n;
  join_names(F.subs, sizeof F.subs, ch, n);
  return F.subscribe_rc;
}

static int fake_unsubscribe(void *ud, const char *const *ch, size_t n) {
  (void)ud;
  F.unsub_calls++;
  join_names(F.unsubs, sizeof F.unsubs, ch, n);
  return 0;
}

static const gw_broker_t fake_broker = {
    .set_handler = fake_set_handler,
    .publish = fake_publish,
    .subscribe = fake_subscribe,
    .unsubscribe = fake_unsubscribe,
    .name = "fake",
};

static void fake_reset(void) {
  memset(&F, 0, sizeof F);
  F.sync = 1;
}

/* Another node's publication arriving through the transport. */
static void fake_remote(uint64_t origin, const char *room, const char *ev, uint64_t except) {
  gw_publication_t p = {.origin = origin, .channel = room, .event = ev, .event_len = strlen(ev),
                        .data = "1", .data_len = 1, .except_conn = except};
  F.h.on_publication(F.h.ud, &p);
}

/* ---- the layer above: delivery to local members, counted per connection ---------------- */

#define MAXC 16
static struct {
  gw_conn_t *conns[MAXC];
  int got[MAXC];
  uint64_t last_origin;
  char last_event[64];
  int calls;
  const char *publish_from_room; /* a delivery in this room publishes to "chained" */
} D;

static int conn_index(const gw_conn_t *c) {
  for (int i = 0; i < MAXC; i++)
    if (D.conns[i] == c) return i;
  return -1;
}

static size_t deliver(void *ud, const char *channel, const gw_publication_t *pub) {
  (void)ud;
  D.calls++;
  D.last_origin = pub->origin;
  snprintf(D.last_event, sizeof D.last_event, "%.*s", (int)pub->event_len, pub->event);
  gw_room_t *r = gw_room_find(channel);
  size_t n = 0;
  for (size_t i = 0; r && i < r->n; i++) {
    gw_conn_t *c = r->members[i].conn;
    if (c->id == pub->except_conn) continue;
    int k = conn_index(c);
    if (k >= 0) D.got[k]++;
    n++;
  }
  if (D.publish_from_room && strcmp(channel, D.publish_from_room) == 0) {
    D.publish_from_room = NULL; /* once: a plugin reacting to a message by publishing */
    gw_node_publish("chained", "re", 2, NULL, 0, 0, NULL);
  }
  return n;
}

static int wakes;
static void on_wake(void *ud) {
  (void)ud;
  wakes++;
}

static void setup(const gw_broker_t *b) {
  memset(&D, 0, sizeof D);
  for (int i = 0; i < MAXC; i++) D.conns[i] = gw_conn_new();
  wakes = 0;
  gw_node_config_t cfg = {.broker = b, .delivery = {.deliver = deliver}, .wake = on_wake};
  CHECK_EQ_INT(gw_node_init(&cfg), 0);
}

static void teardown(void) {
  for (int i = 0; i < MAXC; i++) {
    gw_room_leave_all(D.conns[i]);
    gw_conn_free(D.conns[i]);
  }
  gw_node_close();
  CHECK_EQ_INT(gw_room_count(), 0);
}

static int total_got(void) {
  int t = 0;
  for (int i = 0; i < MAXC; i++) t += D.got[i];
  return t;
}

static gw_node_stats_t stats(void) {
  gw_node_stats_t st;
  gw_node_stats(&st);
  return st;
}

/* ---- tests ----------------------------------------------------------------------------- */

static void test_publish_once(void) {
  fake_reset();
  setup(&fake_broker);
  for (int i = 0; i < 3; i++) gw_room_join(D.conns[i], "room", 10);
  gw_room_join(D.conns[3], "elsewhere", 10);
  size_t n = 99;
  CHECK_EQ_INT(gw_node_publish("room", "chat", 4, "{}", 2, 0, &n), 0);
  CHECK_EQ_INT(n, 3);
  CHECK_EQ_INT(D.got[0], 1);
  CHECK_EQ_INT(D.got[1], 1);
  CHECK_EQ_INT(D.got[2], 1);
  CHECK_EQ_INT(D.got[3], 0);
  CHECK_EQ_INT(F.publishes, 1);
  CHECK_EQ_INT(D.last_origin, gw_node_id());
  CHECK_STR(D.last_event, "chat");
  /* except: everyone but the sender */
  CHECK_EQ_INT(gw_node_publish("room", "chat", 4, "{}", 2, D.conns[1]->id, &n), 0);
  CHECK_EQ_INT(n, 2);
  CHECK_EQ_INT(D.got[1], 1);
  CHECK_EQ_INT(D.got[0], 2);
  /* a room with nobody here: no delivery, still published for other nodes */
  CHECK_EQ_INT(gw_node_publish("empty", "x", 1, NULL, 0, 0, &n), 0);
  CHECK_EQ_INT(n, 0);
  CHECK_EQ_INT(F.publishes, 3);
  gw_node_stats_t st = stats();
  CHECK_EQ_INT(st.published, 3);
  CHECK_EQ_INT(st.delivered, 5);

  /* refused before the broker sees it */
  CHECK_EQ_INT(gw_node_publish("", "x", 1, NULL, 0, 0, &n), GW_EINVAL);
  CHECK_EQ_INT(gw_node_publish(NULL, "x", 1, NULL, 0, 0, &n), GW_EINVAL);
  CHECK_EQ_INT(gw_node_publish("room", NULL, 0, NULL, 0, 0, &n), GW_EINVAL);
  CHECK_EQ_INT(gw_node_publish("room", "x", 1, NULL, 5, 0, &n), GW_EINVAL);
  CHECK_EQ_INT(F.publishes, 3);
  CHECK_EQ_INT(total_got(), 5);
  teardown();
}

static void test_echo_dropped(void) {
  fake_reset();
  F.echo = 1;
  setup(&fake_broker);
  gw_room_join(D.conns[0], "room", 10);
  gw_room_join(D.conns[1], "room", 10);
  CHECK_EQ_INT(gw_node_publish("room", "chat", 4, "{}", 2, 0, NULL), 0);
  CHECK_EQ_INT(total_got(), 2);
  fake_pump(); /* the transport hands our own publication back */
  CHECK_EQ_INT(D.got[0], 1);
  CHECK_EQ_INT(D.got[1], 1);
  CHECK_EQ_INT(stats().echoes_dropped, 1);

  /* a transport that only echoes (no delivery during publish): the node delivers at once
   * itself, and the echo is still dropped */
  F.sync = 0;
  CHECK_EQ_INT(gw_node_publish("room", "chat", 4, "{}", 2, 0, NULL), 0);
  CHECK_EQ_INT(D.got[0], 2);
  fake_pump();
  CHECK_EQ_INT(D.got[0], 2);
  CHECK_EQ_INT(D.got[1], 2);
  CHECK_EQ_INT(stats().echoes_dropped, 2);

  /* an echo of an earlier publication arriving during a publish (a transport that reads
   * inside publish) is not taken for the one under way */
  F.sync = 1;
  F.echo = 1;
  CHECK_EQ_INT(gw_node_publish("room", "first", 5, "{}", 2, 0, NULL), 0);
  CHECK_EQ_INT(D.got[0], 3);
  F.echo = 0;
  F.pump_in_publish = 1;
  uint64_t dropped = stats().echoes_dropped;
  CHECK_EQ_INT(gw_node_publish("room", "second", 6, "{}", 2, 0, NULL), 0);
  CHECK_EQ_INT(D.got[0], 4);
  CHECK_EQ_INT(D.got[1], 4);
  CHECK_STR(D.last_event, "second");
  CHECK_EQ_INT(stats().echoes_dropped, dropped + 1);
  teardown();
}

static void test_down_and_remote(void) {
  fake_reset();
  setup(&fake_broker);
  gw_room_join(D.conns[0], "room", 10);
  gw_room_join(D.conns[1], "room", 10);

  /* the transport is down: local members get it all the same, the caller learns it */
  F.sync = 0;
  F.publish_rc = GW_EUNAVAIL;
  size_t n = 0;
  CHECK_EQ_INT(gw_node_publish("room", "chat", 4, NULL, 0, 0, &n), GW_EUNAVAIL);
  CHECK_EQ_INT(n, 2);
  CHECK_EQ_INT(total_got(), 2);
  F.publish_rc = 0;
  F.sync = 1;

  /* another node's publication: delivered to our members, once */
  fake_remote(gw_node_id() + 1, "room", "news", 0);
  CHECK_EQ_INT(D.got[0], 2);
  CHECK_EQ_INT(D.got[1], 2);
  CHECK_EQ_INT(D.last_origin, gw_node_id() + 1);
  CHECK_STR(D.last_event, "news");
  /* its except_conn is a connection id of THAT node: it must not exclude ours */
  fake_remote(gw_node_id() + 1, "room", "news", D.conns[0]->id);
  CHECK_EQ_INT(D.got[0], 3);
  CHECK_EQ_INT(D.got[1], 3);
  CHECK_EQ_INT(stats().remote, 2);
  /* for a room we have no member of: nothing */
  fake_remote(gw_node_id() + 1, "nobody-here", "news", 0);
  CHECK_EQ_INT(total_got(), 6);
  teardown();
}

static void test_nested_publish(void) {
  /* a delivery that publishes again (a handler reacting): each reaches its members once */
  fake_reset();
  F.echo = 1;
  setup(&fake_broker);
  gw_room_join(D.conns[0], "room", 10);
  gw_room_join(D.conns[1], "chained", 10);
  D.publish_from_room = "room";
  CHECK_EQ_INT(gw_node_publish("room", "chat", 4, NULL, 0, 0, NULL), 0);
  CHECK_EQ_INT(D.got[0], 1);
  CHECK_EQ_INT(D.got[1], 1);
  fake_pump();
  CHECK_EQ_INT(total_got(), 2);
  CHECK_EQ_INT(stats().echoes_dropped, 2);
  teardown();
}

static void test_subscriptions(void) {
  fake_reset();
  setup(&fake_broker);
  /* first member: recorded, told to the broker at the flush, not before */
  gw_room_join(D.conns[0], "r", 10);
  CHECK_EQ_INT(F.sub_calls, 0);
  CHECK_EQ_INT(stats().pending, 1);
  CHECK_EQ_INT(wakes, 1);
  CHECK_EQ_INT(gw_node_flush(), 0);
  CHECK_EQ_INT(F.sub_calls, 1);
  CHECK_STR(F.subs, "r;");
  CHECK(gw_node_subscribed("r"));
  CHECK_EQ_INT(stats().pending, 0);
  /* more members, and members leaving while others stay: nothing to tell */
  gw_room_join(D.conns[1], "r", 10);
  gw_room_join(D.conns[2], "r", 10);
  gw_room_leave(D.conns[0], "r");
  CHECK_EQ_INT(gw_node_flush(), 0);
  CHECK_EQ_INT(F.sub_calls, 1);
  CHECK_EQ_INT(F.unsub_calls, 0);
  /* the last member leaves: unsubscribed at the flush */
  gw_room_leave(D.conns[1], "r");
  gw_room_leave_all(D.conns[2]);
  CHECK_EQ_INT(F.unsub_calls, 0);
  CHECK_EQ_INT(gw_node_flush(), 0);
  CHECK_EQ_INT(F.unsub_calls, 1);
  CHECK_STR(F.unsubs, "r;");
  CHECK(!gw_node_subscribed("r"));
  CHECK_EQ_INT(gw_node_flush(), 0); /* nothing pending: no call */
  CHECK_EQ_INT(F.sub_calls + F.unsub_calls, 2);

  /* batched: five rooms joined in one pass are one subscribe call */
  wakes = 0;
  char name[16];
  for (int i = 0; i < 5; i++) {
    snprintf(name, sizeof name, "b%d", i);
    gw_room_join(D.conns[i], name, 10);
    gw_room_join(D.conns[i + 5], name, 10);
  }
  CHECK_EQ_INT(wakes, 1); /* once per batch */
  CHECK_EQ_INT(gw_node_flush(), 0);
  CHECK_EQ_INT(F.sub_calls, 2);
  CHECK_EQ_INT(F.last_sub_n, 5);
  CHECK_EQ_INT(stats().subscribed, 5);
  /* joined and left within one pass: the broker hears nothing */
  gw_room_join(D.conns[0], "blink", 10);
  gw_room_leave(D.conns[0], "blink");
  /* left and joined again within one pass, while subscribed: nothing either */
  gw_room_leave(D.conns[0], "b0");
  gw_room_leave(D.conns[5], "b0");
  gw_room_join(D.conns[5], "b0", 10);
  CHECK_EQ_INT(gw_node_flush(), 0);
  CHECK_EQ_INT(F.sub_calls, 2);
  CHECK_EQ_INT(F.unsub_calls, 1);
  CHECK(gw_node_subscribed("b0"));
  CHECK(!gw_node_subscribed("blink"));
  /* a mixed pass: one call each way */
  gw_room_leave(D.conns[1], "b1");
  gw_room_leave(D.conns[6], "b1");
  gw_room_leave(D.conns[2], "b2");
  gw_room_leave(D.conns[7], "b2");
  gw_room_join(D.conns[0], "new", 10);
  CHECK_EQ_INT(gw_node_flush(), 0);
  CHECK_EQ_INT(F.sub_calls, 3);
  CHECK_STR(F.subs, "new;");
  CHECK_EQ_INT(F.unsub_calls, 2);
  CHECK_EQ_INT(strlen(F.unsubs), 6);
  CHECK_CONTAINS(F.unsubs, "b1;");
  CHECK_CONTAINS(F.unsubs, "b2;");
  gw_node_stats_t st = stats();
  CHECK_EQ_INT(st.subscribed, 4); /* b0, b3, b4, new */
  CHECK_EQ_INT(st.subscribes, 7);
  CHECK_EQ_INT(st.unsubscribes, 3);

  /* the broker refuses: the change stays pending and goes at the next flush */
  F.subscribe_rc = GW_EUNAVAIL;
  gw_room_join(D.conns[3], "later", 10);
  CHECK_EQ_INT(gw_node_flush(), GW_EUNAVAIL);
  CHECK(!gw_node_subscribed("later"));
  CHECK_EQ_INT(stats().pending, 1);
  CHECK_EQ_INT(stats().flush_errors, 1);
  F.subscribe_rc = 0;
  CHECK_EQ_INT(gw_node_flush(), 0);
  CHECK(gw_node_subscribed("later"));
  CHECK_STR(F.subs, "later;");

  /* down, then up: every subscribed room is subscribed again at the next flush */
  F.h.on_state(F.h.ud, 0);
  CHECK_EQ_INT(stats().broker_up, 0);
  wakes = 0;
  F.h.on_state(F.h.ud, 1);
  CHECK_EQ_INT(stats().broker_up, 1);
  CHECK_EQ_INT(wakes, 1);
  int calls = F.sub_calls;
  CHECK_EQ_INT(gw_node_flush(), 0);
  CHECK_EQ_INT(F.sub_calls, calls + 1);
  CHECK_EQ_INT(F.last_sub_n, 5);
  CHECK_CONTAINS(F.subs, "later;");
  CHECK_CONTAINS(F.subs, "b0;");
  CHECK_EQ_INT(gw_node_flush(), 0); /* once */
  CHECK_EQ_INT(F.sub_calls, calls + 1);
  F.h.on_state(F.h.ud, 1); /* up while up: nothing to redo */
  CHECK_EQ_INT(gw_node_flush(), 0);
  CHECK_EQ_INT(F.sub_calls, calls + 1);
  teardown();
}

/* room.c's observer on its own: first and last member, and nothing else. */
static int firsts, lasts;
static char last_first[32], last_last[32];
static int seen_room_at_last = -1;
static void obs_first(void *ud, const char *name) {
  (void)ud;
  firsts++;
  snprintf(last_first, sizeof last_first, "%s", name);
  if (!gw_room_find(name) || gw_room_size(name) != 1) firsts += 1000; /* must exist, with 1 */
}
static void obs_last(void *ud, const char *name) {
  (void)ud;
  lasts++;
  snprintf(last_last, sizeof last_last, "%s", name);
  seen_room_at_last = gw_room_find(name) != NULL;
}

static void test_room_observer(void) {
  gw_room_observer_t o = {.first_member = obs_first, .last_member = obs_last};
  gw_room_set_observer(&o);
  gw_conn_t *a = gw_conn_new(), *b = gw_conn_new();
  CHECK_EQ_INT(gw_room_join(a, "x", 10), 0);
  CHECK_EQ_INT(firsts, 1);
  CHECK_STR(last_first, "x");
  CHECK_EQ_INT(gw_room_join(a, "x", 10), 0); /* already a member */
  CHECK_EQ_INT(gw_room_join(b, "x", 10), 0);
  CHECK_EQ_INT(firsts, 1);
  CHECK_EQ_INT(gw_room_leave(a, "x"), 0);
  CHECK_EQ_INT(lasts, 0);
  CHECK_EQ_INT(gw_room_leave(a, "x"), GW_ENOENT);
  CHECK_EQ_INT(gw_room_leave(b, "x"), 0);
  CHECK_EQ_INT(lasts, 1);
  CHECK_STR(last_last, "x");
  CHECK_EQ_INT(seen_room_at_last, 0); /* gone when reported */
  /* refused joins create nothing and report nothing */
  CHECK_EQ_INT(gw_room_join(a, "", 10), GW_EINVAL);
  CHECK_EQ_INT(gw_room_join(a, "y", 0), GW_ELIMIT);
  CHECK_EQ_INT(firsts + lasts, 2);
  /* leave_all reports each room it empties */
  gw_room_join(a, "p", 10);
  gw_room_join(a, "q", 10);
  gw_room_join(b, "q", 10);
  gw_room_leave_all(a);
  CHECK_EQ_INT(lasts, 2); /* "p"; "q" still has b */
  gw_room_leave_all(b);
  CHECK_EQ_INT(lasts, 3);
  CHECK_EQ_INT(firsts, 3);
  /* unregistered: silent again */
  gw_room_set_observer(NULL);
  gw_room_join(a, "z", 10);
  gw_room_leave_all(a);
  CHECK_EQ_INT(firsts + lasts, 6);
  gw_conn_free(a);
  gw_conn_free(b);
}

/* The whole path on the real local broker: today's behaviour. */
static void test_local_broker(void) {
  gw_broker_local_t *bl;
  CHECK_EQ_INT(gw_broker_local_new(&bl), 0);
  setup(gw_broker_local_broker(bl));
  CHECK_EQ_INT(stats().broker_up, 1);
  gw_room_join(D.conns[0], "room", 10);
  gw_room_join(D.conns[1], "room", 10);
  /* published before the flush: local members get it (one node, synchronous) */
  size_t n = 0;
  CHECK_EQ_INT(gw_node_publish("room", "chat", 4, "{\"x\":1}", 7, 0, &n), 0);
  CHECK_EQ_INT(n, 2);
  CHECK_EQ_INT(D.calls, 1); /* delivered once, through the broker's handler */
  CHECK(!gw_broker_local_subscribed(bl, "room"));
  CHECK_EQ_INT(gw_node_flush(), 0);
  CHECK(gw_broker_local_subscribed(bl, "room"));
  CHECK_EQ_INT(gw_node_publish("room", "chat", 4, NULL, 0, D.conns[0]->id, &n), 0);
  CHECK_EQ_INT(n, 1);
  CHECK_EQ_INT(D.got[0], 1);
  CHECK_EQ_INT(D.got[1], 2);
  gw_broker_local_stats_t bst;
  gw_broker_local_stats(bl, &bst);
  CHECK_EQ_INT(bst.published, 2);
  CHECK_EQ_INT(bst.delivered, 2);
  CHECK_EQ_INT(stats().echoes_dropped, 0);

  /* presence through the node */
  CHECK_EQ_INT(gw_node_presence_add("room", D.conns[0]->id, "alice"), 0);
  CHECK_EQ_INT(gw_node_presence_add("room", D.conns[1]->id, "alice"), 0);
  size_t clients, users;
  gw_broker_local_presence(bl, "room", &clients, &users);
  CHECK_EQ_INT(clients, 2);
  CHECK_EQ_INT(users, 1);
  CHECK_EQ_INT(gw_node_presence_remove("room", D.conns[0]->id), 0);
  CHECK_EQ_INT(gw_node_presence_remove("room", D.conns[0]->id), GW_ENOENT);

  gw_room_leave_all(D.conns[0]);
  gw_room_leave_all(D.conns[1]);
  CHECK_EQ_INT(gw_node_flush(), 0);
  CHECK(!gw_broker_local_subscribed(bl, "room"));
  CHECK(gw_node_history() == NULL);
  teardown();
  gw_broker_local_free(bl);
}

static void test_init(void) {
  gw_node_config_t none = {0};
  CHECK_EQ_INT(gw_node_init(&none), GW_EINVAL);
  CHECK_EQ_INT(gw_node_init(NULL), GW_EINVAL);
  gw_node_config_t no_deliver = {.broker = &fake_broker};
  CHECK_EQ_INT(gw_node_init(&no_deliver), GW_EINVAL);
  gw_broker_t partial = fake_broker;
  partial.subscribe = NULL;
  gw_node_config_t no_sub = {.broker = &partial, .delivery = {.deliver = deliver}};
  CHECK_EQ_INT(gw_node_init(&no_sub), GW_EINVAL);
  CHECK_EQ_INT(gw_node_publish("room", "x", 1, NULL, 0, 0, NULL), GW_EINVAL); /* not ready */
  CHECK_EQ_INT(gw_node_flush(), 0);

  fake_reset();
  gw_node_config_t cfg = {.broker = &fake_broker, .delivery = {.deliver = deliver}, .id = 42};
  CHECK_EQ_INT(gw_node_init(&cfg), 0);
  CHECK_EQ_INT(gw_node_id(), 42);
  CHECK_EQ_INT(gw_node_init(&cfg), GW_EINVAL); /* once */
  /* the fake has no presence: refused, not a crash */
  CHECK_EQ_INT(gw_node_presence_add("room", 1, "u"), GW_EINVAL);
  CHECK_EQ_INT(gw_node_presence_remove("room", 1), GW_EINVAL);
  CHECK_EQ_INT(gw_node_presence_count("room", NULL, NULL), GW_EINVAL);
  /* up again with nothing subscribed: a flush has nothing to send */
  F.h.on_state(F.h.ud, 0);
  F.h.on_state(F.h.ud, 1);
  CHECK_EQ_INT(gw_node_flush(), 0);
  CHECK_EQ_INT(F.sub_calls, 0);
  gw_node_close();
  CHECK(!F.has_handler); /* unregistered from the broker */
  /* random ids: never 0, different per process (here: per init) */
  cfg.id = 0;
  CHECK_EQ_INT(gw_node_init(&cfg), 0);
  uint64_t id1 = gw_node_id();
  gw_node_close();
  CHECK_EQ_INT(gw_node_init(&cfg), 0);
  uint64_t id2 = gw_node_id();
  gw_node_close();
  CHECK(id1 != 0 && id2 != 0 && id1 != id2);
  /* after close, rooms report to nobody */
  gw_conn_t *c = gw_conn_new();
  gw_room_join(c, "after", 10);
  gw_room_leave_all(c);
  gw_conn_free(c);
}

/* ---- presence and the disconnect control event ---------------------------------------------- */

static struct {
  int closes, code;
  char reason[128];
} K;
static void rec_close(gw_conn_t *c, int code, const char *reason) {
  (void)c;
  K.closes++;
  K.code = code;
  snprintf(K.reason, sizeof K.reason, "%s", reason);
}
static const gw_conn_ops_t rec_ops = {.close = rec_close};

static struct {
  int calls, status, more;
  size_t n, clients, users;
  uint64_t node[8], conn[8];
  char user[8][16];
} L;
static void on_list(void *ud, int status, const gw_presence_entry_t *e, size_t n, int more) {
  (void)ud;
  L.calls++, L.status = status, L.n = n, L.more = more;
  for (size_t i = 0; i < n && i < 8; i++) {
    L.node[i] = e[i].node, L.conn[i] = e[i].client;
    snprintf(L.user[i], sizeof L.user[i], "%s", e[i].user ? e[i].user : "-");
  }
}
static void on_count(void *ud, int status, size_t clients, size_t users) {
  (void)ud;
  L.calls++, L.status = status, L.clients = clients, L.users = users;
}

static void test_presence(int with_broker_presence) {
  gw_broker_local_t *bl;
  CHECK_EQ_INT(gw_broker_local_new(&bl), 0);
  memset(&D, 0, sizeof D);
  for (int i = 0; i < 3; i++) D.conns[i] = gw_conn_new();
  gw_conn_set_user(D.conns[0], "ann");
  gw_conn_set_user(D.conns[1], "ann");
  gw_conn_set_user(D.conns[2], "bob");
  gw_node_config_t cfg = {.broker = gw_broker_local_broker(bl), .delivery = {.deliver = deliver}, .id = 77,
                          .presence = with_broker_presence};
  CHECK_EQ_INT(gw_node_init(&cfg), 0);
  for (int i = 0; i < 3; i++) gw_room_join(D.conns[i], "p", 10);
  size_t clients, users;
  gw_broker_local_presence(bl, "p", &clients, &users);
  /* with presence on, every join is an entry at the broker; off, nothing is written */
  CHECK_EQ_INT(clients, with_broker_presence ? 3 : 0);
  memset(&L, 0, sizeof L);
  CHECK_EQ_INT(gw_node_presence_count("p", on_count, NULL), 0);
  CHECK_EQ_INT(L.calls, 1);
  CHECK_EQ_INT(L.clients, 3);
  CHECK_EQ_INT(L.users, 2); /* ann twice, bob */
  memset(&L, 0, sizeof L);
  CHECK_EQ_INT(gw_node_presence_list("p", 2, on_list, NULL), 0);
  CHECK_EQ_INT(L.calls, 1);
  CHECK_EQ_INT(L.n, 2);
  CHECK_EQ_INT(L.more, 1); /* 3 present, 2 asked */
  CHECK(L.node[0] == 77 && L.node[1] == 77); /* this node's id, never 0 */
  CHECK_EQ_INT(gw_node_presence_list("", 2, on_list, NULL), GW_EINVAL);
  gw_room_leave(D.conns[0], "p");
  gw_broker_local_presence(bl, "p", &clients, &users);
  CHECK_EQ_INT(clients, with_broker_presence ? 2 : 0);
  memset(&L, 0, sizeof L);
  CHECK_EQ_INT(gw_node_presence_list("p", 10, on_list, NULL), 0);
  CHECK_EQ_INT(L.n, 2);
  CHECK_EQ_INT(L.more, 0);

  /* the reserved prefix cannot be published; the disconnect control closes the members
   * (the reason's quote becomes '?': it crosses brokers unescaped) */
  for (int i = 0; i < 3; i++) D.conns[i]->ops = &rec_ops;
  memset(&K, 0, sizeof K);
  size_t n = 9;
  CHECK_EQ_INT(gw_node_publish("p", "$aivo:disconnect", 16, "{\"code\":4001}", 13, 0, &n), GW_EINVAL);
  CHECK_EQ_INT(n, 0);
  CHECK_EQ_INT(K.closes, 0);
  CHECK_EQ_INT(D.calls, 0);
  memset(&K, 0, sizeof K);
  CHECK_EQ_INT(gw_node_disconnect("p", 4001, "bye \"now\"", &n), 0);
  CHECK_EQ_INT(n, 2);
  CHECK_EQ_INT(K.closes, 2);
  CHECK_EQ_INT(K.code, 4001);
  CHECK_STR(K.reason, "bye ?now?");
  CHECK_EQ_INT(D.calls, 0); /* closed, not delivered as an event */

  for (int i = 0; i < 3; i++) {
    D.conns[i]->ops = NULL;
    gw_room_leave_all(D.conns[i]);
    gw_conn_free(D.conns[i]);
  }
  gw_broker_local_presence(bl, "p", &clients, &users);
  CHECK_EQ_INT(clients, 0);
  gw_node_close();
  gw_broker_local_free(bl);
}

static void test_count_distinct(void) {
  const char *u[] = {"bob", NULL, "ann", "bob", NULL, "ann", "cy"};
  CHECK_EQ_INT(gw_node_count_distinct(u, 7), 3); /* NULLs (anonymous) do not count */
  const char *none[] = {NULL, NULL};
  CHECK_EQ_INT(gw_node_count_distinct(none, 2), 0);
  CHECK_EQ_INT(gw_node_count_distinct(NULL, 0), 0);
}

int main(void) {
  test_count_distinct();
  test_presence(1);
  test_presence(0);
  test_room_observer();
  test_init();
  test_publish_once();
  test_echo_dropped();
  test_down_and_remote();
  test_nested_publish();
  test_subscriptions();
  test_local_broker();
  CHECK_EQ_INT(gw_room_count(), 0);
  CHECK_EQ_INT(gw_conn_count(), 0);
  return check_done();
}
