/* The Redis broker against a real redis-server: two brokers (two nodes) in one process on
 * one Redis. Cross-node delivery exactly once, echoes recognisable by origin, batched
 * subscribe (10,000 channels in a few commands), hostile payloads dropped and counted,
 * publishes while down counted as lost with local delivery intact, kill -9 + restart
 * resubscribes, SIGSTOP noticed, presence across nodes and after a node died. */
#include <hiredis/hiredis.h>

#include "broker_redis.h"
#include "check.h"
#include "errors.h"
#include "log.h"
#include "redis_conn.h"
#include "redis_server.h"

typedef struct node {
  const gw_broker_t *br;
  gw_broker_redis_t *b;
  uint64_t id;
  int got, echoes, ups, downs;
  char last_channel[256], last_event[64], last_data[256];
  uint64_t last_origin, last_except;
  int last_has_pos;
  gw_stream_pos_t last_pos;
  int close_on_pub;
} node_t;

static void on_pub(void *ud, const gw_publication_t *p) {
  node_t *n = ud;
  if (p->origin == n->id) n->echoes++;
  n->got++;
  snprintf(n->last_channel, sizeof n->last_channel, "%s", p->channel);
  snprintf(n->last_event, sizeof n->last_event, "%.*s", (int)p->event_len, p->event);
  snprintf(n->last_data, sizeof n->last_data, "%.*s", (int)p->data_len, p->data ? p->data : "");
  n->last_origin = p->origin;
  n->last_except = p->except_conn;
  n->last_has_pos = p->has_position;
  if (p->has_position) n->last_pos = p->position;
  if (n->close_on_pub) n->br->close(n->br->ud); /* deferred by the broker */
}
static void on_state(void *ud, int up) {
  node_t *n = ud;
  if (up) n->ups++;
  else n->downs++;
}

static gw_loop_t *loop;
static gw_redis_config_t rcfg;

static void node_open(node_t *n, uint64_t id, unsigned ttl, unsigned refresh) {
  memset(n, 0, sizeof *n);
  n->id = id;
  gw_broker_redis_config_t c = {.redis = &rcfg, .loop = loop, .node_id = id,
                                .presence_ttl_ms = ttl, .presence_refresh_ms = refresh,
                                .backoff_min_ms = 50, .backoff_max_ms = 300,
                                .max_payload = 64 * 1024};
  CHECK_EQ_INT(gw_broker_redis_new(&c, &n->b), 0);
  n->br = gw_broker_redis_broker(n->b);
  gw_broker_handler_t h = {.on_publication = on_pub, .on_state = on_state, .ud = n};
  CHECK_EQ_INT(n->br->set_handler(n->br->ud, &h), 0);
}

static int up1(void *ud) {
  gw_broker_redis_stats_t st;
  gw_broker_redis_stats(((node_t *)ud)->b, &st);
  return st.up;
}
static int down1(void *ud) { return !up1(ud); }
static int got_at_least(void *ud) {
  node_t *n = ((node_t **)ud)[0];
  return n->got >= (int)(intptr_t)((void **)ud)[1];
}
static int wait_got(node_t *n, int k, double s) {
  void *arg[2] = {n, (void *)(intptr_t)k};
  return test_run_until(loop, got_at_least, arg, s);
}

static int publish(node_t *n, const char *room, const char *ev, const char *json) {
  gw_publication_t p = {.origin = n->id, .channel = room, .event = ev, .event_len = strlen(ev),
                        .data = json, .data_len = json ? strlen(json) : 0};
  return n->br->publish(n->br->ud, &p);
}

typedef struct cnt {
  int done, status;
  size_t clients, users;
} cnt_t;
static void on_count(void *ud, int status, size_t clients, size_t users) {
  cnt_t *c = ud;
  c->done++;
  c->status = status;
  c->clients = clients;
  c->users = users;
}
typedef struct lst {
  int done, status, more;
  size_t n;
  char who[8][48];
} lst_t;
static void on_list(void *ud, int status, const gw_presence_entry_t *e, size_t n, int more) {
  lst_t *l = ud;
  l->done++;
  l->status = status;
  l->n = n;
  l->more = more;
  for (size_t i = 0; i < n && i < 8; i++)
    snprintf(l->who[i], sizeof l->who[i], "%llx/%llu/%s", (unsigned long long)e[i].node,
             (unsigned long long)e[i].client, e[i].user ? e[i].user : "-");
}
static int lst_done(void *ud) { return ((lst_t *)ud)->done > 0; }
static int has(const lst_t *l, const char *who) {
  for (size_t i = 0; i < l->n && i < 8; i++)
    if (strcmp(l->who[i], who) == 0) return 1;
  return 0;
}

static int cnt_done(void *ud) { return ((cnt_t *)ud)->done > 0; }
static cnt_t count(node_t *n, const char *room) {
  cnt_t c = {0};
  int rc = n->br->presence_count(n->br->ud, room, on_count, &c);
  CHECK_EQ_INT(rc, 0);
  if (rc == 0) CHECK(test_run_until(loop, cnt_done, &c, 3));
  return c;
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  gw_log_setup(GW_LOG_ERROR, GW_LOG_TEXT);
  loop = gw_loop_new();
  test_redis_t r;
  if (!CHECK(test_redis_start(&r, 0, NULL) == 0)) return check_done();
  gw_redis_config_defaults(&rcfg);
  rcfg.port = r.port;

  /* the envelope round-trips, positions included */
  {
    unsigned char buf[512];
    gw_publication_t p = {.origin = 7, .channel = "x", .event = "ev", .event_len = 2,
                          .data = "{\"a\":1}", .data_len = 7, .has_position = 1, .except_conn = 9};
    p.position.offset = 42;
    snprintf(p.position.epoch, sizeof p.position.epoch, "e1");
    long len = gw_broker_redis_encode(&p, buf, sizeof buf);
    CHECK(len > 0);
    gw_publication_t q;
    CHECK_EQ_INT(gw_broker_redis_decode(buf, (size_t)len, &q, NULL), 0);
    CHECK_EQ_INT(q.origin, 7);
    CHECK_EQ_INT(q.except_conn, 9);
    CHECK_EQ_INT(q.position.offset, 42);
    CHECK_STR(q.position.epoch, "e1");
    CHECK_EQ_INT(q.data_len, 7);
    /* every truncation and one extra byte are refused */
    int refused = 0;
    for (long i = 0; i < len; i++) refused += gw_broker_redis_decode(buf, (size_t)i, &q, NULL) != 0;
    CHECK_EQ_INT(refused, len);
    buf[len] = 0;
    CHECK_EQ_INT(gw_broker_redis_decode(buf, (size_t)len + 1, &q, NULL), GW_EINVAL);
  }

  node_t A, B;
  node_open(&A, 0xA1, 0, 0);
  node_open(&B, 0xB2, 0, 0);
  CHECK(test_run_until(loop, up1, &A, 5) && test_run_until(loop, up1, &B, 5));
  CHECK_EQ_INT(A.ups, 1);
  const char *room1[] = {"room1"};
  CHECK_EQ_INT(B.br->subscribe(B.br->ud, room1, 1), 0);
  test_run_for(loop, 0.1);

  /* A publishes: A's handler at once (local), B's exactly once, with A's origin */
  CHECK_EQ_INT(publish(&A, "room1", "chat", "{\"t\":\"hi\"}"), 0);
  CHECK_EQ_INT(A.got, 1);
  CHECK_EQ_INT(A.echoes, 1); /* the local delivery of its own publication */
  CHECK(wait_got(&B, 1, 2));
  test_run_for(loop, 0.1);
  CHECK_EQ_INT(B.got, 1);
  CHECK_STR(B.last_channel, "room1");
  CHECK_STR(B.last_event, "chat");
  CHECK_STR(B.last_data, "{\"t\":\"hi\"}");
  CHECK_EQ_INT(B.last_origin, 0xA1);
  CHECK_EQ_INT(A.got, 1); /* A is not subscribed: nothing comes back */

  /* A subscribed too: its own publication comes back from Redis, recognisable by origin */
  CHECK_EQ_INT(A.br->subscribe(A.br->ud, room1, 1), 0);
  CHECK_EQ_INT(A.br->subscribe(A.br->ud, room1, 1), 0); /* idempotent */
  test_run_for(loop, 0.1);
  A.got = A.echoes = B.got = 0;
  CHECK_EQ_INT(publish(&B, "room1", "e2", NULL), 0);
  CHECK(wait_got(&A, 1, 2));
  test_run_for(loop, 0.1);
  CHECK_EQ_INT(A.got, 1);
  CHECK_EQ_INT(A.echoes, 0);
  CHECK_EQ_INT(B.got, 2); /* local + the echo from Redis */
  CHECK_EQ_INT(B.echoes, 2);
  CHECK_EQ_INT(B.last_origin, 0xB2);

  /* batch subscribe: 10,000 channels are a few SUBSCRIBE commands */
  {
    static char names[10000][16];
    static const char *list[10000];
    for (int i = 0; i < 10000; i++) {
      snprintf(names[i], sizeof names[i], "r%d", i);
      list[i] = names[i];
    }
    long before = test_redis_calls(&r, "subscribe");
    CHECK_EQ_INT(B.br->subscribe(B.br->ud, list, 10000), 0);
    test_run_for(loop, 0.5);
    long after = test_redis_calls(&r, "subscribe");
    printf("10000 channels: %ld SUBSCRIBE commands\n", after - before);
    CHECK(after - before >= 1 && after - before <= 3);
    gw_broker_redis_stats_t st;
    gw_broker_redis_stats(B.b, &st);
    CHECK_EQ_INT(st.subscriptions, 10001);
    redisReply *rep = test_redis_cmd(&r, "PUBSUB NUMSUB aivo:ch:r9999");
    CHECK(rep && rep->elements == 2 && rep->element[1]->integer == 1);
    freeReplyObject(rep);
    B.got = 0;
    CHECK_EQ_INT(publish(&A, "r9999", "deep", NULL), 0);
    CHECK(wait_got(&B, 1, 2));
    /* unsubscribe in a batch too; a node without members receives nothing */
    before = test_redis_calls(&r, "unsubscribe");
    CHECK_EQ_INT(B.br->unsubscribe(B.br->ud, list, 10000), 0);
    test_run_for(loop, 0.5);
    CHECK(test_redis_calls(&r, "unsubscribe") - before <= 3);
    rep = test_redis_cmd(&r, "PUBSUB NUMSUB aivo:ch:r9999");
    CHECK(rep && rep->elements == 2 && rep->element[1]->integer == 0);
    freeReplyObject(rep);
    B.got = 0;
    publish(&A, "r9999", "deep", NULL);
    test_run_for(loop, 0.2);
    CHECK_EQ_INT(B.got, 0);
  }

  /* unsubscribe then subscribe again before the confirmation: still delivered */
  CHECK_EQ_INT(B.br->unsubscribe(B.br->ud, room1, 1), 0);
  CHECK_EQ_INT(B.br->subscribe(B.br->ud, room1, 1), 0);
  test_run_for(loop, 0.2);
  B.got = 0;
  publish(&A, "room1", "again", NULL);
  CHECK(wait_got(&B, 1, 2));

  /* hostile messages on our channel: garbage, a huge one, a wrong type: dropped and counted */
  {
    gw_broker_redis_stats_t st0, st;
    gw_broker_redis_stats(B.b, &st0);
    B.got = 0;
    redisReply *rep = test_redis_cmd(&r, "PUBLISH aivo:ch:room1 garbage");
    freeReplyObject(rep);
    unsigned char bad[64];
    gw_publication_t p = {.origin = 5, .event = "e", .event_len = 1, .data = "{}", .data_len = 2};
    long len = gw_broker_redis_encode(&p, bad, sizeof bad);
    bad[21] = 200; /* event length past the end */
    rep = test_redis_cmd(&r, "PUBLISH aivo:ch:room1 %b", bad, (size_t)len);
    freeReplyObject(rep);
    size_t hn = 200 * 1024;
    char *huge = malloc(hn);
    memset(huge, 'x', hn);
    rep = test_redis_cmd(&r, "PUBLISH aivo:ch:room1 %b", huge, hn);
    freeReplyObject(rep);
    free(huge);
    test_run_for(loop, 0.3);
    gw_broker_redis_stats(B.b, &st);
    CHECK_EQ_INT(st.dropped_malformed - st0.dropped_malformed, 2);
    CHECK_EQ_INT(st.dropped_oversize - st0.dropped_oversize, 1);
    CHECK_EQ_INT(B.got, 0);
    /* and the next good one still arrives */
    publish(&A, "room1", "ok", NULL);
    CHECK(wait_got(&B, 1, 2));
  }

  /* presence across nodes */
  CHECK_EQ_INT(A.br->presence_add(A.br->ud, "room1", 1, "alice"), 0);
  CHECK_EQ_INT(A.br->presence_add(A.br->ud, "room1", 2, "alice"), 0);
  CHECK_EQ_INT(B.br->presence_add(B.br->ud, "room1", 1, "bob"), 0); /* same conn id, other node */
  CHECK_EQ_INT(B.br->presence_add(B.br->ud, "room1", 2, NULL), 0);
  test_run_for(loop, 0.1); /* B's adds travel on B's connection: no order with A's count */
  cnt_t c = count(&A, "room1");
  CHECK_EQ_INT(c.status, 0);
  CHECK_EQ_INT(c.clients, 4);
  CHECK_EQ_INT(c.users, 2);
  CHECK_EQ_INT(B.br->presence_add(B.br->ud, "room1", 2, "carol"), 0); /* replaces the user */
  c = count(&B, "room1");
  CHECK_EQ_INT(c.clients, 4);
  CHECK_EQ_INT(c.users, 3);
  CHECK_EQ_INT(A.br->presence_remove(A.br->ud, "room1", 2), 0);
  CHECK_EQ_INT(A.br->presence_remove(A.br->ud, "room1", 2), GW_ENOENT);
  test_run_for(loop, 0.1);
  c = count(&B, "room1");
  CHECK_EQ_INT(c.clients, 3);
  /* identities across nodes, bounded */
  {
    lst_t l = {0};
    CHECK_EQ_INT(gw_broker_redis_presence_list(B.b, "room1", 10, on_list, &l), 0);
    CHECK(test_run_until(loop, lst_done, &l, 3));
    CHECK_EQ_INT(l.status, 0);
    CHECK_EQ_INT(l.n, 3);
    CHECK_EQ_INT(l.more, 0);
    CHECK(has(&l, "a1/1/alice") && has(&l, "b2/1/bob") && has(&l, "b2/2/carol"));
    lst_t l2 = {0};
    CHECK_EQ_INT(gw_broker_redis_presence_list(B.b, "room1", 2, on_list, &l2), 0);
    CHECK(test_run_until(loop, lst_done, &l2, 3));
    CHECK_EQ_INT(l2.n, 2);
    CHECK_EQ_INT(l2.more, 1);
    CHECK_EQ_INT(gw_broker_redis_presence_list(B.b, "room1", 0, on_list, &l2), GW_EINVAL);
    /* a foreign member under our key: the list is refused, not half-trusted */
    redisReply *rep = test_redis_cmd(&r, "ZADD aivo:presence:room1 99999999999999 garbage");
    freeReplyObject(rep);
    lst_t l3 = {0};
    CHECK_EQ_INT(gw_broker_redis_presence_list(B.b, "room1", 10, on_list, &l3), 0);
    CHECK(test_run_until(loop, lst_done, &l3, 3));
    CHECK_EQ_INT(l3.status, GW_EIO);
    rep = test_redis_cmd(&r, "ZREM aivo:presence:room1 garbage");
    freeReplyObject(rep);
  }

  /* a node that dies without removing its entries (SIGKILL): gone after its TTL */
  {
    node_t D;
    node_open(&D, 0xD4, 1000, 300);
    CHECK(test_run_until(loop, up1, &D, 5));
    CHECK_EQ_INT(D.br->presence_add(D.br->ud, "room1", 1, "dave"), 0);
    test_run_for(loop, 1.2); /* a live node keeps its entries past the TTL (refreshes) */
    c = count(&A, "room1");
    CHECK_EQ_INT(c.clients, 4);
    CHECK_EQ_INT(c.users, 4);
    gw_broker_redis_free(D.b); /* dies: no removal, no refresh */
    test_run_for(loop, 1.1);
    c = count(&A, "room1");
    CHECK_EQ_INT(c.clients, 3);
    CHECK_EQ_INT(c.users, 3);
  }

  /* kill -9: both nodes go down; a publish is lost for the others but delivered locally */
  int port = r.port;
  test_redis_stop(&r);
  CHECK(test_run_until(loop, down1, &A, 3) && test_run_until(loop, down1, &B, 3));
  CHECK(A.downs >= 1);
  {
    gw_broker_redis_stats_t st0, st;
    gw_broker_redis_stats(A.b, &st0);
    A.got = 0;
    CHECK_EQ_INT(publish(&A, "room1", "while-down", NULL), GW_EUNAVAIL);
    CHECK_EQ_INT(A.got, 1);
    gw_broker_redis_stats(A.b, &st);
    CHECK_EQ_INT(st.publish_lost - st0.publish_lost, 1);
    cnt_t c2 = {0};
    CHECK_EQ_INT(A.br->presence_count(A.br->ud, "room1", on_count, &c2), GW_EUNAVAIL);
    /* subscriptions recorded while down are sent after the reconnect */
    const char *late[] = {"late-room"};
    CHECK_EQ_INT(B.br->subscribe(B.br->ud, late, 1), 0);
  }
  /* restart on the same port (an empty Redis): both resubscribe without being told */
  CHECK(test_redis_start(&r, port, NULL) == 0);
  CHECK(test_run_until(loop, up1, &A, 5) && test_run_until(loop, up1, &B, 5));
  test_run_for(loop, 0.2);
  B.got = 0;
  CHECK_EQ_INT(publish(&A, "room1", "after-restart", NULL), 0);
  CHECK_EQ_INT(publish(&A, "late-room", "late", NULL), 0);
  CHECK(wait_got(&B, 2, 2));
  CHECK_STR(B.last_event, "late");
  /* presence entries come back with the reconnect (the live nodes re-add theirs) */
  c = count(&A, "room1");
  CHECK_EQ_INT(c.clients, 3);

  /* SIGSTOP: down within 3 s; SIGCONT: up, and delivery resumes */
  {
    test_redis_signal(&r, SIGSTOP);
    double t0 = test_now_s();
    CHECK(test_run_until(loop, down1, &B, 4));
    double took = test_now_s() - t0;
    printf("broker: SIGSTOP noticed after %.2f s\n", took);
    CHECK(took < 3.0);
    test_redis_signal(&r, SIGCONT);
    CHECK(test_run_until(loop, up1, &A, 6) && test_run_until(loop, up1, &B, 6));
    test_run_for(loop, 0.2);
    B.got = 0;
    publish(&A, "room1", "after-stop", NULL);
    CHECK(wait_got(&B, 1, 2));
  }

  /* a node closing its broker from inside its own handler: released on the next pass */
  {
    node_t E;
    node_open(&E, 0xE5, 0, 0);
    CHECK(test_run_until(loop, up1, &E, 5));
    E.br->subscribe(E.br->ud, room1, 1);
    test_run_for(loop, 0.1);
    E.close_on_pub = 1;
    publish(&A, "room1", "bye", NULL);
    CHECK(wait_got(&E, 1, 2));
    test_run_for(loop, 0.1);
    CHECK_EQ_INT(E.got, 1);
  }

  /* a wrong password: the broker reports GW_EAUTH (the gateway refuses to start) */
  {
    test_redis_t rp;
    CHECK(test_redis_start(&rp, 0, "right") == 0);
    gw_redis_config_t bad = rcfg;
    bad.port = rp.port;
    snprintf(bad.password, sizeof bad.password, "wrong");
    gw_broker_redis_config_t bc = {.redis = &bad, .loop = loop, .node_id = 0xF6};
    gw_broker_redis_t *fb;
    CHECK_EQ_INT(gw_broker_redis_new(&bc, &fb), 0);
    double until = test_now_s() + 3;
    while (gw_broker_redis_last_error(fb) != GW_EAUTH && test_now_s() < until) ev_run(loop, EVRUN_ONCE);
    CHECK_EQ_INT(gw_broker_redis_last_error(fb), GW_EAUTH);
    gw_broker_redis_stats_t st;
    gw_broker_redis_stats(fb, &st);
    CHECK_EQ_INT(st.up, 0);
    gw_broker_redis_free(fb);
    test_redis_stop(&rp);
  }

  /* close with a count pending: its callback runs with GW_ECANCELED */
  {
    cnt_t c3 = {0};
    CHECK_EQ_INT(A.br->presence_count(A.br->ud, "room1", on_count, &c3), 0);
    A.br->close(A.br->ud);
    CHECK_EQ_INT(c3.done, 1);
    CHECK_EQ_INT(c3.status, GW_ECANCELED);
  }
  gw_broker_redis_free(B.b);
  test_redis_stop(&r);
  gw_loop_free(loop);
  return check_done();
}
