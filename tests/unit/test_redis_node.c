/* The node layer (core/node/node.c, the seam the gateway will use) over the Redis broker and a
 * real redis-server, with a second Redis broker in the same process playing another
 * gateway: local members get a publication once (at once, and not again when Redis echoes
 * it), another node's publication reaches them once, interest-based subscriptions follow the
 * first and last local member, local delivery goes on while Redis is down, and after a
 * restart the node's rooms are subscribed again with no member rejoining. */
#include <hiredis/hiredis.h>

#include "broker_redis.h"
#include "check.h"
#include "conn.h"
#include "errors.h"
#include "log.h"
#include "node.h"
#include "redis_server.h"
#include "room.h"

#define MAXC 4
static gw_conn_t *conns[MAXC];
static int got[MAXC];
static gw_loop_t *loop;

static size_t deliver(void *ud, const char *channel, const gw_publication_t *pub) {
  (void)ud;
  gw_room_t *r = gw_room_find(channel);
  size_t n = 0;
  for (size_t i = 0; r && i < r->n; i++) {
    gw_conn_t *c = r->members[i].conn;
    if (c->id == pub->except_conn) continue;
    for (int k = 0; k < MAXC; k++)
      if (conns[k] == c) got[k]++;
    n++;
  }
  return n;
}

static int other_got;
static void other_pub(void *ud, const gw_publication_t *p) {
  (void)ud;
  (void)p;
  other_got++;
}

static gw_broker_redis_t *mine, *other;
static int up2(void *ud) {
  (void)ud;
  gw_broker_redis_stats_t a, b;
  gw_broker_redis_stats(mine, &a);
  gw_broker_redis_stats(other, &b);
  return a.up && b.up;
}
static int down1(void *ud) {
  (void)ud;
  gw_broker_redis_stats_t a;
  gw_broker_redis_stats(mine, &a);
  return !a.up;
}
static int got_all(void *ud) {
  int want = *(int *)ud;
  for (int k = 0; k < 2; k++)
    if (got[k] < want) return 0;
  return 1;
}
static int wakes;
static void on_wake(void *ud) {
  (void)ud;
  wakes++;
}

static long numsub(test_redis_t *r, const char *ch) {
  redisReply *rep = test_redis_cmd(r, "PUBSUB NUMSUB %s", ch);
  long n = rep && rep->elements == 2 ? (long)rep->element[1]->integer : -1;
  if (rep) freeReplyObject(rep);
  return n;
}

static void other_publish(const char *room, uint64_t except) {
  gw_publication_t p = {.origin = 0x07, .channel = room, .event = "x", .event_len = 1,
                        .data = "1", .data_len = 1, .except_conn = except};
  const gw_broker_t *b = gw_broker_redis_broker(other);
  CHECK_EQ_INT(b->publish(b->ud, &p), 0);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  gw_log_setup(GW_LOG_ERROR, GW_LOG_TEXT);
  loop = gw_loop_new();
  test_redis_t r;
  if (!CHECK(test_redis_start(&r, 0, NULL) == 0)) return check_done();
  gw_redis_config_t rc;
  gw_redis_config_defaults(&rc);
  rc.port = r.port;

  uint64_t id = 0x1234;
  gw_broker_redis_config_t bc = {.redis = &rc, .loop = loop, .node_id = id,
                                 .backoff_min_ms = 50, .backoff_max_ms = 300};
  CHECK_EQ_INT(gw_broker_redis_new(&bc, &mine), 0);
  bc.node_id = 0x07;
  CHECK_EQ_INT(gw_broker_redis_new(&bc, &other), 0);
  gw_broker_handler_t oh = {.on_publication = other_pub};
  const gw_broker_t *ob = gw_broker_redis_broker(other);
  ob->set_handler(ob->ud, &oh);
  const char *room[] = {"room"};
  ob->subscribe(ob->ud, room, 1);
  CHECK(test_run_until(loop, up2, NULL, 5));

  for (int k = 0; k < MAXC; k++) conns[k] = gw_conn_new();
  gw_node_config_t cfg = {.broker = gw_broker_redis_broker(mine), .delivery = {.deliver = deliver},
                          .id = id, .wake = on_wake};
  CHECK_EQ_INT(gw_node_init(&cfg), 0);

  /* first local members: one subscription at the flush */
  gw_room_join(conns[0], "room", 10);
  gw_room_join(conns[1], "room", 10);
  CHECK_EQ_INT(gw_node_flush(), 0);
  test_run_for(loop, 0.1);
  CHECK_EQ_INT(numsub(&r, "aivo:ch:room"), 2); /* this node and the other */
  CHECK(gw_node_subscribed("room"));

  /* publish: both local members at once, the other node once, the echo dropped */
  size_t delivered = 0;
  CHECK_EQ_INT(gw_node_publish("room", "chat", 4, "{}", 2, 0, &delivered), 0);
  CHECK_EQ_INT(delivered, 2);
  CHECK_EQ_INT(got[0], 1);
  test_run_for(loop, 0.2);
  CHECK_EQ_INT(got[0], 1);
  CHECK_EQ_INT(got[1], 1);
  CHECK_EQ_INT(other_got, 1); /* the other node: once */
  gw_node_stats_t ns;
  gw_node_stats(&ns);
  CHECK_EQ_INT(ns.echoes_dropped, 1);

  /* another node's publication: each local member once; its except_conn is not ours */
  int want = 2;
  other_publish("room", conns[0]->id);
  CHECK(test_run_until(loop, got_all, &want, 2));
  test_run_for(loop, 0.1);
  CHECK_EQ_INT(got[0], 2);
  CHECK_EQ_INT(got[1], 2);
  gw_node_stats(&ns);
  CHECK_EQ_INT(ns.remote, 1);

  /* last local member gone: unsubscribed; the room's traffic no longer reaches this node */
  gw_room_leave(conns[0], "room");
  gw_room_leave(conns[1], "room");
  CHECK_EQ_INT(gw_node_flush(), 0);
  test_run_for(loop, 0.1);
  CHECK_EQ_INT(numsub(&r, "aivo:ch:room"), 1);
  gw_broker_redis_stats_t bs;
  gw_broker_redis_stats(mine, &bs);
  uint64_t received = bs.received;
  other_publish("room", 0);
  test_run_for(loop, 0.2);
  gw_broker_redis_stats(mine, &bs);
  CHECK_EQ_INT(bs.received, received);

  /* Redis killed: local delivery goes on; restarted: subscribed again without rejoining */
  gw_room_join(conns[0], "room", 10);
  gw_room_join(conns[1], "room", 10);
  CHECK_EQ_INT(gw_node_flush(), 0);
  test_run_for(loop, 0.1);
  int port = r.port;
  test_redis_stop(&r);
  CHECK(test_run_until(loop, down1, NULL, 3));
  memset(got, 0, sizeof got);
  CHECK_EQ_INT(gw_node_publish("room", "chat", 4, NULL, 0, 0, &delivered), GW_EUNAVAIL);
  CHECK_EQ_INT(delivered, 2);
  CHECK_EQ_INT(got[0], 1);
  CHECK(test_redis_start(&r, port, NULL) == 0);
  CHECK(test_run_until(loop, up2, NULL, 5));
  gw_node_flush(); /* the gateway flushes on wake; the broker also resubscribed itself */
  test_run_for(loop, 0.2);
  CHECK_EQ_INT(numsub(&r, "aivo:ch:room"), 2);
  want = 2;
  other_publish("room", 0);
  CHECK(test_run_until(loop, got_all, &want, 2));

  for (int k = 0; k < MAXC; k++) {
    gw_room_leave_all(conns[k]);
    gw_conn_free(conns[k]);
  }
  gw_node_close();
  gw_broker_redis_free(mine);
  gw_broker_redis_free(other);
  test_redis_stop(&r);
  gw_loop_free(loop);
  return check_done();
}
