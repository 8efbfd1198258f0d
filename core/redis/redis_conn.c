#include "redis_conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "errors.h"
#include "log.h"

#define TICK_S 0.1 /* how often timeouts and the PING are looked at */
#define HEALTH_TIMEOUT_MAX_MS 1500u

typedef struct req {
  struct req *next;
  gw_redis_conn_t *c; /* NULL: the owner gave up on it (the callback already ran) */
  gw_redis_reply_cb cb;
  void *ud;
  double deadline;   /* loop ms */
  int kind;          /* REQ_USER, REQ_HANDSHAKE, REQ_PING */
  int auth;          /* the handshake's AUTH: an error reply is a credentials error */
  int last;          /* the handshake's final command: OK means up */
} req_t;

enum { REQ_USER, REQ_HANDSHAKE, REQ_PING };

struct gw_redis_conn {
  gw_redis_conn_opts_t o;
  gw_redis_config_t cfg;
  gw_loop_t *loop;
  redisAsyncContext *ac; /* NULL: not connected nor connecting */
  int connected;         /* TCP up (handshake may be under way) */
  int up;                /* handshake done */
  int was_up;
  int drop_status;       /* given to callbacks of the link being dropped */
  req_t *head, *tail;    /* pending, in send order (Redis answers in order) */
  req_t *ping;           /* the outstanding health PING */
  double next_ping;
  unsigned backoff_ms;
  ev_timer connect_timer, retry_timer, tick;
  int closing;
  unsigned depth; /* inside one of our callbacks */
  int free_pending;
  gw_redis_conn_stats_t st;
};

static double now_ms(const gw_redis_conn_t *c) { return ev_now(c->loop) * 1000.0; }

static unsigned health_timeout(const gw_redis_conn_t *c) {
  unsigned t = c->cfg.command_timeout_ms;
  return t < HEALTH_TIMEOUT_MAX_MS ? t : HEALTH_TIMEOUT_MAX_MS;
}

static void report(gw_redis_conn_t *c, int up, int err) {
  if (!c->o.on_state || c->closing) return;
  c->depth++;
  c->o.on_state(c->o.ud, up, err);
  c->depth--;
}

/* A failure of the same kind as the previous one (the retries of one outage) is logged at
 * debug level: one line per outage and cause, not one every backoff period. */
#define LOG_FAIL(c, reason, ...) \
  gw_log((c)->st.last_error == (reason) ? GW_LOG_DEBUG : GW_LOG_WARN, 0, __VA_ARGS__)
#define LOG_FAIL_ERR(c, reason, ...) \
  gw_log((c)->st.last_error == (reason) ? GW_LOG_DEBUG : GW_LOG_ERROR, 0, __VA_ARGS__)

static void schedule_retry(gw_redis_conn_t *c);
static void start_connect(gw_redis_conn_t *c);

/* Marks the connection down with reason and reports it (every failed attempt is reported). */
static void went_down(gw_redis_conn_t *c, int reason) {
  c->up = 0;
  c->connected = 0;
  c->ping = NULL;
  c->st.last_error = reason;
  ev_timer_stop(c->loop, &c->connect_timer);
  ev_timer_stop(c->loop, &c->tick);
  report(c, 0, reason);
  if (!c->closing) schedule_retry(c);
}

/* Drops the link: hiredis calls every pending callback with NULL (now, or right after the
 * hiredis callback we are in returns) and they get `reason`. */
static void drop(gw_redis_conn_t *c, int reason) {
  redisAsyncContext *ac = c->ac;
  if (!ac) return;
  c->ac = NULL;
  c->drop_status = reason;
  if (reason == GW_ETIMEDOUT) c->st.timeouts++;
  redisAsyncFree(ac); /* our disconnect callback sees ac != c->ac and ignores it */
  went_down(c, reason);
}

static void req_unlink(gw_redis_conn_t *c, req_t *r) {
  req_t **pp = &c->head, *prev = NULL;
  while (*pp && *pp != r) {
    prev = *pp;
    pp = &(*pp)->next;
  }
  if (!*pp) return;
  *pp = r->next;
  if (c->tail == r) c->tail = prev;
  c->st.pending--;
  if (c->ping == r) c->ping = NULL;
}

static int is_auth_error(const redisReply *r) {
  return r && r->type == REDIS_REPLY_ERROR && r->str &&
         (strncmp(r->str, "NOAUTH", 6) == 0 || strncmp(r->str, "WRONGPASS", 9) == 0 ||
          strstr(r->str, "invalid password") || strstr(r->str, "invalid username-password") ||
          strstr(r->str, "no password is set") || strstr(r->str, "without any password"));
}

static void handshake_reply(gw_redis_conn_t *c, req_t *q, redisReply *r) {
  if (!r) return; /* the link broke: the disconnect path reports it */
  if (r->type == REDIS_REPLY_ERROR) {
    int auth = q->auth || is_auth_error(r);
    if (auth)
      LOG_FAIL_ERR(c, GW_EAUTH, "redis %s: %s:%d refused our credentials: %s (check REDIS_PASSWORD / the URL)",
               c->o.name, c->cfg.host, c->cfg.port, r->str ? r->str : "?");
    else
      LOG_FAIL_ERR(c, GW_EIO, "redis %s: %s:%d refused the connection setup: %s", c->o.name, c->cfg.host,
               c->cfg.port, r->str ? r->str : "?");
    drop(c, auth ? GW_EAUTH : GW_EIO);
    return;
  }
  if (!q->last) return;
  ev_timer_stop(c->loop, &c->connect_timer);
  c->up = 1;
  c->st.connects++;
  if (c->was_up) c->st.reconnects++;
  c->was_up = 1;
  c->st.last_error = 0;
  c->backoff_ms = 0;
  c->next_ping = now_ms(c) + (c->o.ping_interval_ms ? c->o.ping_interval_ms : 1000);
  gw_info("redis %s: connected to %s:%d", c->o.name, c->cfg.host, c->cfg.port);
  report(c, 1, 0);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv) {
  (void)ac;
  req_t *q = priv;
  gw_redis_conn_t *c = q->c;
  redisReply *r = reply;
  if (c) {
    req_unlink(c, q);
    int status = r ? 0 : c->drop_status ? c->drop_status : GW_EUNAVAIL;
    c->depth++;
    if (q->kind == REQ_USER) {
      if (r && r->type == REDIS_REPLY_ERROR) c->st.commands_error++;
      else if (r) c->st.commands_ok++;
      else if (status == GW_ETIMEDOUT) c->st.commands_timeout++;
      else c->st.commands_lost++;
      if (q->cb) q->cb(q->ud, status, r);
    } else if (q->kind == REQ_HANDSHAKE) {
      handshake_reply(c, q, r);
    } /* REQ_PING: its answer is all we wanted */
    c->depth--;
  }
  free(q);
}

static void on_push(redisAsyncContext *ac, void *reply, void *priv) {
  gw_redis_conn_t *c = priv;
  (void)ac;
  if (!c || c->closing || !c->o.on_push) return;
  c->depth++;
  c->o.on_push(c->o.ud, reply ? 0 : (c->drop_status ? c->drop_status : GW_EUNAVAIL), reply);
  c->depth--;
}

static int send_req(gw_redis_conn_t *c, int kind, int argc, const char **argv,
                    const size_t *argvlen, gw_redis_reply_cb cb, void *ud, unsigned timeout) {
  req_t *q = calloc(1, sizeof *q);
  if (!q) return GW_ENOMEM;
  q->c = c;
  q->cb = cb;
  q->ud = ud;
  q->kind = kind;
  q->deadline = now_ms(c) + timeout;
  if (redisAsyncCommandArgv(c->ac, on_reply, q, argc, argv, argvlen) != REDIS_OK) {
    free(q);
    return GW_EINVAL;
  }
  if (c->tail) c->tail->next = q;
  else c->head = q;
  c->tail = q;
  c->st.pending++;
  if (kind == REQ_PING) c->ping = q;
  return 0;
}

/* SUBSCRIBE / UNSUBSCRIBE / PSUBSCRIBE...: hiredis keeps their callbacks per channel. */
static int is_sub_cmd(const char *s, size_t len) {
  return (len == 9 && strncasecmp(s, "subscribe", 9) == 0) ||
         (len == 11 && strncasecmp(s, "unsubscribe", 11) == 0);
}

int gw_redis_conn_command(gw_redis_conn_t *c, int argc, const char **argv,
                          const size_t *argvlen, gw_redis_reply_cb cb, void *ud) {
  if (!c || argc < 1 || !argv || !argvlen) return GW_EINVAL;
  if (c->closing || !c->up || !c->ac) return GW_EUNAVAIL;
  if (is_sub_cmd(argv[0], argvlen[0])) {
    if (!c->o.pubsub || cb) return GW_EINVAL;
    return redisAsyncCommandArgv(c->ac, on_push, c, argc, argv, argvlen) == REDIS_OK ? 0 : GW_EINVAL;
  }
  if (c->st.pending >= c->o.max_pending) {
    c->st.commands_refused++;
    return GW_ELIMIT;
  }
  return send_req(c, REQ_USER, argc, argv, argvlen, cb, ud, c->cfg.command_timeout_ms);
}

/* ---- timers ---------------------------------------------------------------------------- */

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop;
  (void)revents;
  gw_redis_conn_t *c = w->data;
  if (!c->ac || !c->connected) return;
  double t = now_ms(c);
  if ((c->head && c->head->deadline <= t) || (c->ping && c->ping->deadline <= t)) {
    gw_warn("redis %s: %s:%d did not answer in time: dropping the connection", c->o.name,
            c->cfg.host, c->cfg.port);
    drop(c, GW_ETIMEDOUT);
    return;
  }
  if (c->up && !c->o.pubsub && !c->ping && t >= c->next_ping) {
    const char *argv[] = {"PING"};
    size_t len[] = {4};
    c->next_ping = t + (c->o.ping_interval_ms ? c->o.ping_interval_ms : 1000);
    if (send_req(c, REQ_PING, 1, argv, len, NULL, NULL, health_timeout(c)) == GW_EINVAL)
      drop(c, GW_EIO);
  }
}

static void on_connect_timeout(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop;
  (void)revents;
  gw_redis_conn_t *c = w->data;
  if (!c->ac || c->up) return;
  LOG_FAIL(c, GW_ETIMEDOUT, "redis %s: connecting to %s:%d timed out after %u ms", c->o.name, c->cfg.host,
          c->cfg.port, c->cfg.connect_timeout_ms);
  drop(c, GW_ETIMEDOUT);
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop;
  (void)revents;
  start_connect(w->data);
}

static unsigned jitter(unsigned ms) {
  uint32_t r = 0;
  if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) r = (uint32_t)rand();
  return ms / 2 + (unsigned)(r % (ms / 2 + 1)); /* [50 %, 100 %] */
}

static void schedule_retry(gw_redis_conn_t *c) {
  unsigned lo = c->o.backoff_min_ms ? c->o.backoff_min_ms : 100;
  unsigned hi = c->o.backoff_max_ms ? c->o.backoff_max_ms : 5000;
  c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : lo;
  if (c->backoff_ms > hi) c->backoff_ms = hi;
  ev_timer_stop(c->loop, &c->retry_timer);
  ev_timer_set(&c->retry_timer, jitter(c->backoff_ms) / 1000.0, 0.);
  ev_timer_start(c->loop, &c->retry_timer);
}

/* ---- hiredis callbacks ----------------------------------------------------------------- */

static void on_connect(const redisAsyncContext *ac, int status) {
  gw_redis_conn_t *c = ac->data;
  if (!c || c->ac != ac) return;
  if (status != REDIS_OK) {
    /* hiredis frees ac itself once we return */
    LOG_FAIL(c, GW_EUNAVAIL, "redis %s: cannot connect to %s:%d: %s", c->o.name, c->cfg.host,
             c->cfg.port, ac->errstr[0] ? ac->errstr : "error");
    c->ac = NULL;
    went_down(c, GW_EUNAVAIL);
    return;
  }
  c->connected = 1;
  ev_timer_start(c->loop, &c->tick);
  /* AUTH [username] password, SELECT db, PING: all in one flight; PING's OK means up */
  int rc = 0;
  if (c->cfg.password[0]) {
    const char *argv[3] = {"AUTH"};
    size_t len[3] = {4};
    int n = 1;
    if (c->cfg.username[0]) {
      argv[n] = c->cfg.username;
      len[n++] = strlen(c->cfg.username);
    }
    argv[n] = c->cfg.password;
    len[n++] = strlen(c->cfg.password);
    rc = send_req(c, REQ_HANDSHAKE, n, argv, len, NULL, NULL, c->cfg.connect_timeout_ms);
    if (!rc) c->tail->auth = 1;
  }
  if (!rc && c->cfg.db > 0) {
    char db[16];
    int dl = snprintf(db, sizeof db, "%d", c->cfg.db);
    const char *argv[] = {"SELECT", db};
    size_t len[] = {6, (size_t)dl};
    rc = send_req(c, REQ_HANDSHAKE, 2, argv, len, NULL, NULL, c->cfg.connect_timeout_ms);
  }
  if (!rc) {
    const char *argv[] = {"PING"};
    size_t len[] = {4};
    rc = send_req(c, REQ_HANDSHAKE, 1, argv, len, NULL, NULL, c->cfg.connect_timeout_ms);
    if (!rc) c->tail->last = 1;
  }
  /* rc != 0 (no memory): no drop here, hiredis is still using ac after we return; the
   * connect timer ends the attempt */
  (void)rc;
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
  (void)status;
  gw_redis_conn_t *c = ac->data;
  if (!c || c->closing || c->ac != ac) return; /* dropped by us: already handled */
  gw_warn("redis %s: connection to %s:%d lost%s%s", c->o.name, c->cfg.host, c->cfg.port,
          ac->errstr[0] ? ": " : "", ac->errstr);
  c->ac = NULL;
  went_down(c, GW_EUNAVAIL);
}

static void start_connect(gw_redis_conn_t *c) {
  if (c->closing || c->ac) return;
  c->st.attempts++;
  c->drop_status = 0;
  redisAsyncContext *ac = redisAsyncConnect(c->cfg.host, c->cfg.port);
  if (!ac) {
    went_down(c, GW_ENOMEM);
    return;
  }
  if (ac->err) {
    LOG_FAIL(c, GW_EUNAVAIL, "redis %s: cannot connect to %s:%d: %s", c->o.name, c->cfg.host,
             c->cfg.port, ac->errstr);
    redisAsyncFree(ac);
    went_down(c, GW_EUNAVAIL);
    return;
  }
  ac->data = c;
  c->ac = ac;
  if (redisLibevAttach(c->loop, ac) != REDIS_OK ||
      redisAsyncSetConnectCallback(ac, on_connect) != REDIS_OK ||
      redisAsyncSetDisconnectCallback(ac, on_disconnect) != REDIS_OK) {
    drop(c, GW_EIO);
    return;
  }
  ev_timer_stop(c->loop, &c->connect_timer);
  ev_timer_set(&c->connect_timer, c->cfg.connect_timeout_ms / 1000.0, 0.);
  ev_timer_start(c->loop, &c->connect_timer);
}

/* ---- life ------------------------------------------------------------------------------ */

int gw_redis_conn_new(const gw_redis_conn_opts_t *opts, gw_redis_conn_t **out) {
  *out = NULL;
  if (!opts || !opts->cfg || !opts->loop || (opts->pubsub && !opts->on_push)) return GW_EINVAL;
  if (!opts->cfg->host[0] || opts->cfg->port <= 0 || !opts->cfg->connect_timeout_ms ||
      !opts->cfg->command_timeout_ms)
    return GW_EINVAL;
  gw_redis_conn_t *c = calloc(1, sizeof *c);
  if (!c) return GW_ENOMEM;
  c->o = *opts;
  if (!c->o.name) c->o.name = opts->pubsub ? "pubsub" : "commands";
  if (!c->o.max_pending) c->o.max_pending = 100000;
  c->cfg = *opts->cfg;
  c->loop = opts->loop;
  ev_timer_init(&c->connect_timer, on_connect_timeout, 1., 0.);
  ev_timer_init(&c->retry_timer, on_retry, 1., 0.);
  ev_timer_init(&c->tick, on_tick, TICK_S, TICK_S);
  c->connect_timer.data = c->retry_timer.data = c->tick.data = c;
  *out = c;
  start_connect(c);
  return 0;
}

static void really_free(gw_redis_conn_t *c) {
  ev_timer_stop(c->loop, &c->connect_timer);
  ev_timer_stop(c->loop, &c->retry_timer);
  ev_timer_stop(c->loop, &c->tick);
  redisAsyncContext *ac = c->ac;
  c->ac = NULL;
  c->drop_status = GW_ECANCELED;
  /* pending callbacks run now with GW_ECANCELED (on_reply and on_push still see c) */
  if (ac) redisAsyncFree(ac);
  /* whatever hiredis did not hand back (it always does; belt and braces) */
  for (req_t *q = c->head; q; q = q->next) q->c = NULL;
  c->o.on_push = NULL;
  free(c);
}

static void deferred_free(int revents, void *arg) {
  (void)revents;
  really_free(arg);
}

void gw_redis_conn_free(gw_redis_conn_t *c) {
  if (!c || c->free_pending) return;
  c->closing = 1;
  if (c->depth) {
    /* inside a hiredis callback: hiredis would only defer its own free and then call our
     * callbacks on freed memory; the loop's next pass is a safe place */
    c->free_pending = 1;
    ev_once(c->loop, -1, 0, 0., deferred_free, c);
    return;
  }
  really_free(c);
}

int gw_redis_conn_is_up(const gw_redis_conn_t *c) { return c && c->up; }

int gw_redis_conn_in_callback(const gw_redis_conn_t *c) { return c && c->depth > 0; }

void gw_redis_conn_reset(gw_redis_conn_t *c, int reason) {
  if (!c || c->closing) return;
  if (c->ac) {
    drop(c, reason);
  }
}

void gw_redis_conn_stats(const gw_redis_conn_t *c, gw_redis_conn_stats_t *out) {
  *out = c->st;
  out->up = c->up;
}
