/* redis_conn against a real redis-server: AUTH + SELECT, a wrong password is GW_EAUTH,
 * a refused connect retries, a SIGSTOPped Redis is noticed within 3 s and pending commands
 * fail with GW_ETIMEDOUT, SIGCONT and kill -9 + restart reconnect. */
#include <hiredis/hiredis.h>

#include "check.h"
#include "errors.h"
#include "log.h"
#include "redis_conn.h"
#include "redis_server.h"

typedef struct st {
  int ups, downs, last_err;
  double down_at;
  int replies, last_status;
  char last_str[64];
} st_t;

static void on_state(void *ud, int up, int err) {
  st_t *s = ud;
  if (up) s->ups++;
  else {
    s->downs++;
    s->last_err = err;
    if (!s->down_at) s->down_at = test_now_s();
  }
}

static void on_reply(void *ud, int status, const struct redisReply *reply) {
  st_t *s = ud;
  const redisReply *r = reply;
  s->replies++;
  s->last_status = status;
  s->last_str[0] = '\0';
  if (r && r->str) snprintf(s->last_str, sizeof s->last_str, "%s", r->str);
}

static gw_redis_conn_t *conn;
static st_t S;
static int is_up(void *ud) { (void)ud; return gw_redis_conn_is_up(conn); }
static int is_down(void *ud) { (void)ud; return !gw_redis_conn_is_up(conn) && S.downs > 0; }
static int got_reply(void *ud) { return S.replies >= *(int *)ud; }
static int got_err(void *ud) { return S.last_err == *(int *)ud; }

static void cmd(const char *a, const char *b, const char *c3) {
  const char *argv[] = {a, b, c3};
  size_t lens[] = {strlen(a), b ? strlen(b) : 0, c3 ? strlen(c3) : 0};
  int n = c3 ? 3 : b ? 2 : 1;
  CHECK_EQ_INT(gw_redis_conn_command(conn, n, argv, lens, on_reply, &S), 0);
}

/* ---- a hostile "Redis": answers the handshake, then sends bytes that are not RESP ---- */
static int hostile_fd = -1, hostile_client = -1;
static ev_io hostile_io;
static ev_timer hostile_timer;
static void hostile_garbage(struct ev_loop *l, ev_timer *w, int revents) {
  (void)l;
  (void)w;
  (void)revents;
  if (hostile_client >= 0 && write(hostile_client, "?not resp\r\n", 11) < 0) perror("write");
}
static void hostile_accept(struct ev_loop *l, ev_io *w, int revents) {
  (void)revents;
  int fd = accept(w->fd, NULL, NULL);
  if (fd < 0) return;
  if (hostile_client >= 0) close(hostile_client);
  hostile_client = fd;
  if (write(fd, "+PONG\r\n", 7) < 0) perror("write"); /* the handshake's PING */
  ev_timer_stop(l, &hostile_timer);
  ev_timer_set(&hostile_timer, 0.2, 0.);
  ev_timer_start(l, &hostile_timer);
}
static int hostile_start(gw_loop_t *l) {
  hostile_fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (bind(hostile_fd, (struct sockaddr *)&a, sizeof a) || listen(hostile_fd, 4) ||
      getsockname(hostile_fd, (struct sockaddr *)&a, &len))
    return -1;
  ev_io_init(&hostile_io, hostile_accept, hostile_fd, EV_READ);
  ev_io_start(l, &hostile_io);
  ev_timer_init(&hostile_timer, hostile_garbage, 0.2, 0.);
  return ntohs(a.sin_port);
}
static void hostile_stop(gw_loop_t *l) {
  ev_io_stop(l, &hostile_io);
  ev_timer_stop(l, &hostile_timer);
  if (hostile_client >= 0) close(hostile_client);
  close(hostile_fd);
}

static gw_redis_conn_t *open_conn(gw_loop_t *loop, gw_redis_config_t *cfg) {
  memset(&S, 0, sizeof S);
  gw_redis_conn_opts_t o = {.cfg = cfg, .loop = loop, .on_state = on_state, .ud = &S,
                            .backoff_min_ms = 50, .backoff_max_ms = 400};
  gw_redis_conn_t *c = NULL;
  CHECK_EQ_INT(gw_redis_conn_new(&o, &c), 0);
  return c;
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  gw_log_setup(GW_LOG_ERROR, GW_LOG_TEXT);
  gw_loop_t *loop = gw_loop_new();
  test_redis_t r;
  if (!CHECK(test_redis_start(&r, 0, "s3cret pw") == 0)) return check_done();

  gw_redis_config_t cfg;
  gw_redis_config_defaults(&cfg);
  cfg.port = r.port;
  cfg.db = 3;
  snprintf(cfg.password, sizeof cfg.password, "s3cret pw");

  /* AUTH and SELECT on connect: a SET lands in db 3 */
  conn = open_conn(loop, &cfg);
  CHECK(test_run_until(loop, is_up, NULL, 5));
  CHECK_EQ_INT(S.ups, 1);
  cmd("SET", "k", "v3");
  int one = 1;
  CHECK(test_run_until(loop, got_reply, &one, 2));
  CHECK_EQ_INT(S.last_status, 0);
  redisReply *rep = test_redis_cmd(&r, "SELECT 3");
  freeReplyObject(rep);
  redisContext *sc = test_redis_sync(&r);
  rep = redisCommand(sc, "SELECT 3");
  freeReplyObject(rep);
  rep = redisCommand(sc, "GET k");
  CHECK(rep && rep->type == REDIS_REPLY_STRING && strcmp(rep->str, "v3") == 0);
  freeReplyObject(rep);
  redisFree(sc);
  /* an error reply is a reply: status 0, counted as an error */
  cmd("NOSUCHCOMMAND", NULL, NULL);
  int two = 2;
  CHECK(test_run_until(loop, got_reply, &two, 2));
  CHECK_EQ_INT(S.last_status, 0);
  gw_redis_conn_stats_t st;
  gw_redis_conn_stats(conn, &st);
  CHECK_EQ_INT(st.commands_error, 1);
  CHECK(st.commands_ok >= 1);
  gw_redis_conn_free(conn);

  /* a wrong password: GW_EAUTH, never up */
  snprintf(cfg.password, sizeof cfg.password, "wrong");
  conn = open_conn(loop, &cfg);
  int eauth = GW_EAUTH;
  CHECK(test_run_until(loop, got_err, &eauth, 3));
  CHECK_EQ_INT(S.ups, 0);
  CHECK_EQ_INT(S.last_err, GW_EAUTH);
  gw_redis_conn_free(conn);
  /* no password on a Redis that requires one: GW_EAUTH too (NOAUTH) */
  cfg.password[0] = '\0';
  conn = open_conn(loop, &cfg);
  CHECK(test_run_until(loop, got_err, &eauth, 3));
  CHECK_EQ_INT(S.ups, 0);
  gw_redis_conn_free(conn);
  /* SELECT of a database that does not exist: GW_EIO, distinct from a credentials error */
  snprintf(cfg.password, sizeof cfg.password, "s3cret pw");
  cfg.db = 999;
  conn = open_conn(loop, &cfg);
  int eio = GW_EIO;
  CHECK(test_run_until(loop, got_err, &eio, 3));
  CHECK_EQ_INT(S.ups, 0);
  gw_redis_conn_free(conn);
  cfg.db = 3;

  /* commands are refused while not up, and the callback never runs */
  conn = open_conn(loop, &cfg);
  {
    const char *argv[] = {"PING"};
    size_t lens[] = {4};
    CHECK_EQ_INT(gw_redis_conn_command(conn, 1, argv, lens, on_reply, &S), GW_EUNAVAIL);
  }
  CHECK(test_run_until(loop, is_up, NULL, 5));

  /* SIGSTOP: a pending command fails with GW_ETIMEDOUT and the link is down within 3 s */
  cfg.command_timeout_ms = 2000;
  test_redis_signal(&r, SIGSTOP);
  double stopped = test_now_s();
  S.replies = 0;
  S.down_at = 0;
  cmd("GET", "k", NULL);
  CHECK(test_run_until(loop, is_down, NULL, 5));
  double took = S.down_at - stopped;
  printf("SIGSTOP noticed after %.2f s\n", took);
  CHECK(took > 0 && took < 3.0);
  CHECK_EQ_INT(S.replies, 1);
  CHECK_EQ_INT(S.last_status, GW_ETIMEDOUT);
  CHECK_EQ_INT(S.last_err, GW_ETIMEDOUT);
  gw_redis_conn_stats(conn, &st);
  CHECK_EQ_INT(st.commands_timeout, 1);
  CHECK_EQ_INT(st.pending, 0);
  /* while stopped, attempts time out (connect timeout) instead of hanging */
  test_run_for(loop, 0.5);
  test_redis_signal(&r, SIGCONT);
  CHECK(test_run_until(loop, is_up, NULL, 8));
  gw_redis_conn_stats(conn, &st);
  CHECK(st.reconnects >= 1);

  /* kill -9: pending commands fail with GW_EUNAVAIL; retries back off; a restart on the same
   * port reconnects */
  int port = r.port;
  S.replies = 0;
  S.downs = 0;
  cmd("BLPOP", "nothing", "0"); /* pending until the link breaks */
  test_run_for(loop, 0.1);
  test_redis_stop(&r);
  CHECK(test_run_until(loop, is_down, NULL, 3));
  CHECK_EQ_INT(S.last_status, GW_EUNAVAIL);
  gw_redis_conn_stats(conn, &st);
  uint64_t attempts = st.attempts;
  test_run_for(loop, 1.0);
  gw_redis_conn_stats(conn, &st);
  /* backoff 50 ms doubling to 400 ms: a few attempts per second, not hundreds */
  CHECK(st.attempts > attempts && st.attempts - attempts < 12);
  CHECK(test_redis_start(&r, port, "s3cret pw") == 0);
  CHECK(test_run_until(loop, is_up, NULL, 5));
  cmd("GET", "k", NULL); /* db 3 was not saved: nil, but answered */
  int n1 = 2;
  CHECK(test_run_until(loop, got_reply, &n1, 2));
  CHECK_EQ_INT(S.last_status, 0);

  /* free with a command pending: its callback runs with GW_ECANCELED */
  S.replies = 0;
  cmd("BLPOP", "nothing", "0");
  gw_redis_conn_free(conn);
  CHECK_EQ_INT(S.replies, 1);
  CHECK_EQ_INT(S.last_status, GW_ECANCELED);

  /* a bound on pending commands: a slow Redis cannot grow the queue without limit */
  {
    memset(&S, 0, sizeof S);
    gw_redis_conn_opts_t o = {.cfg = &cfg, .loop = loop, .on_state = on_state, .ud = &S,
                              .max_pending = 3};
    CHECK_EQ_INT(gw_redis_conn_new(&o, &conn), 0);
    CHECK(test_run_until(loop, is_up, NULL, 5));
    cmd("BLPOP", "nothing", "0");
    cmd("PING", NULL, NULL);
    cmd("PING", NULL, NULL);
    const char *argv[] = {"PING"};
    size_t lens[] = {4};
    CHECK_EQ_INT(gw_redis_conn_command(conn, 1, argv, lens, on_reply, &S), GW_ELIMIT);
    gw_redis_conn_stats(conn, &st);
    CHECK_EQ_INT(st.commands_refused, 1);
    CHECK_EQ_INT(st.pending, 3);
    gw_redis_conn_free(conn);
    CHECK_EQ_INT(S.replies, 3); /* the accepted ones: GW_ECANCELED */
  }

  /* a peer that sends what is not the Redis protocol: the link is dropped (pending commands
   * fail with GW_EUNAVAIL), never trusted, and the connection tries again */
  {
    gw_redis_config_t hc = cfg;
    hc.password[0] = '\0';
    hc.db = 0;
    hc.port = hostile_start(loop);
    CHECK(hc.port > 0);
    conn = open_conn(loop, &hc);
    CHECK(test_run_until(loop, is_up, NULL, 3));
    S.replies = 0;
    cmd("GET", "k", NULL); /* never answered: the garbage comes instead */
    CHECK(test_run_until(loop, is_down, NULL, 3));
    CHECK_EQ_INT(S.replies, 1);
    CHECK_EQ_INT(S.last_status, GW_EUNAVAIL);
    CHECK(test_run_until(loop, is_up, NULL, 3)); /* it reconnects (and is fooled again) */
    gw_redis_conn_free(conn);
    hostile_stop(loop);
  }

  /* nothing listening: attempts fail with GW_EUNAVAIL and go on */
  cfg.port = test_free_port();
  conn = open_conn(loop, &cfg);
  int eun = GW_EUNAVAIL;
  CHECK(test_run_until(loop, got_err, &eun, 2));
  test_run_for(loop, 0.5);
  gw_redis_conn_stats(conn, &st);
  CHECK(st.attempts >= 2);
  gw_redis_conn_free(conn);

  test_redis_stop(&r);
  gw_loop_free(loop);
  return check_done();
}
