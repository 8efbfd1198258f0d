/* The broker seam and the local broker: synchronous delivery to the registered handler
 * (every field of a publication intact), the subscription set, presence counts, and bad
 * input refused without side effects. */
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "broker_local.h"
#include "check.h"
#include "errors.h"

typedef struct {
  int pubs, ups, downs;
  gw_publication_t last;
  char channel[64], event[64], data[256];
  /* optional behaviour inside the handler */
  const gw_broker_t *b;
  int republish;  /* publish once more to "nested" from inside the handler */
  int unregister; /* set_handler(NULL) from inside */
} rec_t;

static void on_pub(void *ud, const gw_publication_t *pub) {
  rec_t *r = ud;
  r->pubs++;
  r->last = *pub;
  /* the pointers are valid during the call only: copy what the checks read */
  snprintf(r->channel, sizeof r->channel, "%s", pub->channel);
  snprintf(r->event, sizeof r->event, "%.*s", (int)pub->event_len, pub->event);
  if (pub->data) snprintf(r->data, sizeof r->data, "%.*s", (int)pub->data_len, pub->data);
  else r->data[0] = 0;
  if (r->republish) {
    r->republish = 0;
    gw_publication_t again = {.origin = 9, .channel = "nested", .event = "e", .event_len = 1};
    r->b->publish(r->b->ud, &again);
  }
  if (r->unregister) r->b->set_handler(r->b->ud, NULL);
}

static void on_state(void *ud, int up) {
  rec_t *r = ud;
  if (up) r->ups++;
  else r->downs++;
}

static gw_broker_local_stats_t stats(gw_broker_local_t *bl) {
  gw_broker_local_stats_t st;
  gw_broker_local_stats(bl, &st);
  return st;
}

static void test_publish(void) {
  gw_broker_local_t *bl;
  CHECK_EQ_INT(gw_broker_local_new(&bl), 0);
  const gw_broker_t *b = gw_broker_local_broker(bl);
  CHECK_STR(b->name, "local");

  /* no handler yet: accepted, delivered to nobody */
  gw_publication_t p = {.origin = 77, .channel = "room", .event = "chat", .event_len = 4,
                        .data = "{\"a\":1}", .data_len = 7, .except_conn = 12};
  CHECK_EQ_INT(b->publish(b->ud, &p), 0);
  CHECK_EQ_INT(stats(bl).published, 1);
  CHECK_EQ_INT(stats(bl).delivered, 0);

  rec_t r = {.b = b};
  gw_broker_handler_t h = {.on_publication = on_pub, .on_state = on_state, .ud = &r};
  CHECK_EQ_INT(b->set_handler(b->ud, &h), 0);
  CHECK_EQ_INT(r.ups, 1); /* the local broker is up at once */
  CHECK_EQ_INT(r.downs, 0);

  /* delivered before publish returns, once, with every field */
  p.has_position = 1;
  p.position.offset = 5;
  strcpy(p.position.epoch, "abcd");
  CHECK_EQ_INT(b->publish(b->ud, &p), 0);
  CHECK_EQ_INT(r.pubs, 1);
  CHECK_EQ_INT(r.last.origin, 77);
  CHECK_STR(r.channel, "room");
  CHECK_STR(r.event, "chat");
  CHECK_STR(r.data, "{\"a\":1}");
  CHECK_EQ_INT(r.last.except_conn, 12);
  CHECK_EQ_INT(r.last.has_position, 1);
  CHECK_EQ_INT(r.last.position.offset, 5);
  CHECK_STR(r.last.position.epoch, "abcd");
  /* no data is no data; an event name is bytes with a length, not a C string */
  gw_publication_t q = {.origin = 1, .channel = "room", .event = "pingXXX", .event_len = 4};
  CHECK_EQ_INT(b->publish(b->ud, &q), 0);
  CHECK_EQ_INT(r.pubs, 2);
  CHECK_STR(r.event, "ping");
  CHECK(r.last.data == NULL);
  CHECK_EQ_INT(r.last.has_position, 0);
  /* subscribed or not: one node, the layer above finds its own members */
  CHECK(!gw_broker_local_subscribed(bl, "room"));

  /* a handler may publish again (synchronously, nested) */
  r.republish = 1;
  CHECK_EQ_INT(b->publish(b->ud, &q), 0);
  CHECK_EQ_INT(r.pubs, 4);
  CHECK_STR(r.channel, "nested");
  /* and may unregister itself: the next publish reaches nobody */
  r.unregister = 1;
  CHECK_EQ_INT(b->publish(b->ud, &q), 0);
  CHECK_EQ_INT(r.pubs, 5);
  CHECK_EQ_INT(b->publish(b->ud, &q), 0);
  CHECK_EQ_INT(r.pubs, 5);
  gw_broker_local_stats_t st = stats(bl);
  CHECK_EQ_INT(st.published, 7);
  CHECK_EQ_INT(st.delivered, 5);

  /* bad publications: refused, not delivered, not counted */
  r.unregister = 0;
  CHECK_EQ_INT(b->set_handler(b->ud, &h), 0);
  CHECK_EQ_INT(r.ups, 2);
  char longname[GW_BROKER_CHANNEL_MAX + 2];
  memset(longname, 'c', sizeof longname - 1);
  longname[sizeof longname - 1] = 0;
  gw_publication_t bad[] = {
      {.origin = 1, .channel = NULL, .event = "e", .event_len = 1},
      {.origin = 1, .channel = "", .event = "e", .event_len = 1},
      {.origin = 1, .channel = longname, .event = "e", .event_len = 1},
      {.origin = 1, .channel = "r", .event = NULL},
      {.origin = 1, .channel = "r", .event = "e", .event_len = 1, .data = NULL, .data_len = 3},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) CHECK_EQ_INT(b->publish(b->ud, &bad[i]), GW_EINVAL);
  CHECK_EQ_INT(b->publish(b->ud, NULL), GW_EINVAL);
  CHECK_EQ_INT(r.pubs, 5);
  CHECK_EQ_INT(stats(bl).published, 7);
  gw_broker_handler_t no_pub = {.on_state = on_state, .ud = &r};
  CHECK_EQ_INT(b->set_handler(b->ud, &no_pub), GW_EINVAL);
  b->close(b->ud);
}

static void collect(void *ud, const char *channel) {
  char *out = ud;
  strcat(out, channel);
  strcat(out, ";");
}

static void test_subscriptions(void) {
  gw_broker_local_t *bl;
  CHECK_EQ_INT(gw_broker_local_new(&bl), 0);
  const gw_broker_t *b = gw_broker_local_broker(bl);
  const char *ab[] = {"a", "b"}, *bc[] = {"b", "c"}, *a[] = {"a"}, *zz[] = {"zz"};
  CHECK_EQ_INT(b->subscribe(b->ud, ab, 2), 0);
  CHECK(gw_broker_local_subscribed(bl, "a"));
  CHECK(gw_broker_local_subscribed(bl, "b"));
  CHECK(!gw_broker_local_subscribed(bl, "c"));
  CHECK(!gw_broker_local_subscribed(bl, NULL));
  /* idempotent: "b" twice is one subscription */
  CHECK_EQ_INT(b->subscribe(b->ud, bc, 2), 0);
  gw_broker_local_stats_t st = stats(bl);
  CHECK_EQ_INT(st.channels, 3);
  CHECK_EQ_INT(st.subscribes, 3);
  char seen[64] = "";
  gw_broker_local_each_channel(bl, collect, seen);
  CHECK_EQ_INT(strlen(seen), 6);
  CHECK_CONTAINS(seen, "a;");
  CHECK_CONTAINS(seen, "c;");

  CHECK_EQ_INT(b->unsubscribe(b->ud, a, 1), 0);
  CHECK(!gw_broker_local_subscribed(bl, "a"));
  CHECK_EQ_INT(b->unsubscribe(b->ud, a, 1), 0); /* unknown: a no-op */
  CHECK_EQ_INT(b->unsubscribe(b->ud, zz, 1), 0);
  CHECK_EQ_INT(b->subscribe(b->ud, NULL, 0), 0); /* an empty batch */
  st = stats(bl);
  CHECK_EQ_INT(st.channels, 2);
  CHECK_EQ_INT(st.unsubscribes, 1);

  /* one bad name refuses the whole batch, nothing changes */
  const char *mixed[] = {"d", ""}, *mixed2[] = {"b", NULL};
  CHECK_EQ_INT(b->subscribe(b->ud, mixed, 2), GW_EINVAL);
  CHECK(!gw_broker_local_subscribed(bl, "d"));
  CHECK_EQ_INT(b->unsubscribe(b->ud, mixed2, 2), GW_EINVAL);
  CHECK(gw_broker_local_subscribed(bl, "b"));
  CHECK_EQ_INT(b->subscribe(b->ud, NULL, 1), GW_EINVAL);
  CHECK_EQ_INT(stats(bl).channels, 2);
  gw_broker_local_free(bl); /* with subscriptions left: LSan checks they are freed */
  gw_broker_local_free(NULL);
}

typedef struct {
  int calls, status;
  size_t clients, users;
} count_t;

static void on_count(void *ud, int status, size_t clients, size_t users) {
  count_t *c = ud;
  c->calls++;
  c->status = status;
  c->clients = clients;
  c->users = users;
}

static count_t count(const gw_broker_t *b, const char *ch) {
  count_t c = {0};
  CHECK_EQ_INT(b->presence_count(b->ud, ch, on_count, &c), 0);
  CHECK_EQ_INT(c.calls, 1);
  CHECK_EQ_INT(c.status, 0);
  return c;
}

static void test_presence(void) {
  gw_broker_local_t *bl;
  CHECK_EQ_INT(gw_broker_local_new(&bl), 0);
  const gw_broker_t *b = gw_broker_local_broker(bl);
  count_t c = count(b, "lobby");
  CHECK_EQ_INT(c.clients, 0);
  CHECK_EQ_INT(c.users, 0);

  /* alice twice (two tabs), bob once, one anonymous connection */
  CHECK_EQ_INT(b->presence_add(b->ud, "lobby", 1, "alice"), 0);
  CHECK_EQ_INT(b->presence_add(b->ud, "lobby", 2, "alice"), 0);
  CHECK_EQ_INT(b->presence_add(b->ud, "lobby", 3, "bob"), 0);
  CHECK_EQ_INT(b->presence_add(b->ud, "lobby", 4, NULL), 0);
  CHECK_EQ_INT(b->presence_add(b->ud, "other", 1, "alice"), 0);
  c = count(b, "lobby");
  CHECK_EQ_INT(c.clients, 4);
  CHECK_EQ_INT(c.users, 2);
  CHECK_EQ_INT(count(b, "other").clients, 1);
  CHECK_EQ_INT(stats(bl).presence_channels, 2);

  /* adding a client again replaces its user: no double count */
  CHECK_EQ_INT(b->presence_add(b->ud, "lobby", 3, "bob"), 0);
  CHECK_EQ_INT(count(b, "lobby").clients, 4);
  CHECK_EQ_INT(b->presence_add(b->ud, "lobby", 3, "carol"), 0);
  c = count(b, "lobby");
  CHECK_EQ_INT(c.clients, 4);
  CHECK_EQ_INT(c.users, 2); /* alice, carol: bob is gone */
  CHECK_EQ_INT(b->presence_add(b->ud, "lobby", 4, "dave"), 0); /* anonymous -> dave */
  CHECK_EQ_INT(count(b, "lobby").users, 3);

  /* a user stays present while any of their connections is */
  CHECK_EQ_INT(b->presence_remove(b->ud, "lobby", 1), 0);
  c = count(b, "lobby");
  CHECK_EQ_INT(c.clients, 3);
  CHECK_EQ_INT(c.users, 3);
  CHECK_EQ_INT(b->presence_remove(b->ud, "lobby", 2), 0);
  CHECK_EQ_INT(count(b, "lobby").users, 2);
  CHECK_EQ_INT(b->presence_remove(b->ud, "lobby", 2), GW_ENOENT);
  CHECK_EQ_INT(b->presence_remove(b->ud, "nowhere", 2), GW_ENOENT);
  size_t clients, users;
  gw_broker_local_presence(bl, "lobby", &clients, &users);
  CHECK_EQ_INT(clients, 2);
  CHECK_EQ_INT(users, 2);
  CHECK_EQ_INT(b->presence_remove(b->ud, "lobby", 3), 0);
  CHECK_EQ_INT(b->presence_remove(b->ud, "lobby", 4), 0);
  CHECK_EQ_INT(count(b, "lobby").clients, 0);
  CHECK_EQ_INT(stats(bl).presence_channels, 1); /* an empty channel is freed */

  /* bad input */
  CHECK_EQ_INT(b->presence_add(b->ud, "", 1, "x"), GW_EINVAL);
  CHECK_EQ_INT(b->presence_add(b->ud, "lobby", 0, "x"), GW_EINVAL); /* 0 is never a conn id */
  CHECK_EQ_INT(b->presence_remove(b->ud, NULL, 1), GW_EINVAL);
  count_t none = {0};
  CHECK_EQ_INT(b->presence_count(b->ud, "", on_count, &none), GW_EINVAL);
  CHECK_EQ_INT(b->presence_count(b->ud, "lobby", NULL, NULL), GW_EINVAL);
  CHECK_EQ_INT(none.calls, 0);
  CHECK_EQ_INT(stats(bl).presence_channels, 1);
  b->close(b->ud); /* "other" still holds alice: freed (LSan) */
}

static void test_strerror(void) {
  CHECK_STR(gw_strerror(0), "success");
  CHECK_STR(gw_strerror(GW_ENOMEM), "out of memory");
  CHECK_STR(gw_strerror(GW_EUNAVAIL), "backend unavailable");
  CHECK_STR(gw_strerror(GW_ECANCELED), "canceled");
  CHECK_STR(gw_strerror(-1000), "unknown error");
  CHECK_STR(gw_strerror(5), "unknown error");
  /* every code has its own text */
  int distinct = 1;
  for (int i = GW_ECANCELED; i <= 0; i++)
    for (int j = i + 1; j <= 0; j++)
      if (strcmp(gw_strerror(i), gw_strerror(j)) == 0) distinct = 0;
  CHECK(distinct);
}

int main(void) {
  test_publish();
  test_subscriptions();
  test_presence();
  test_strerror();
  return check_done();
}
