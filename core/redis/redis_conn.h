/* One Redis connection on the gateway's libev loop (hiredis 0.14.1 async + its libev
 * adapter), with what hiredis lacks (DESIGN.md §6): a connect timeout, AUTH and SELECT on
 * connect, a timeout on every pending command, a health PING, reconnect with capped
 * exponential backoff and jitter, an up/down callback and counters.
 *
 * This file and the other redis_* / *_redis files are the only ones that include hiredis;
 * this header does not, so that the layers above see only opaque types.
 *
 * Life of a connection: gw_redis_conn_new starts connecting at once. It is "up" once the TCP
 * connection is made and AUTH (when a password is set), SELECT (db > 0) and a PING have all
 * answered OK, within connect_timeout_ms of the attempt's start. Then:
 *  - every command gets command_timeout_ms; when the oldest pending one has no answer in time
 *    the connection is considered broken (a Redis that answers nothing answers nothing later
 *    either): it is dropped and every pending callback gets GW_ETIMEDOUT;
 *  - a command connection sends PING every ping_interval_ms (default 1000) and treats a PING
 *    unanswered after min(command_timeout_ms, 1500) ms as broken: a Redis that stops
 *    answering without closing (SIGSTOP, a dead path) is noticed within about 2.6 s;
 *  - when the link breaks (closed, timed out) every pending callback gets GW_EUNAVAIL (or
 *    GW_ETIMEDOUT as above) with reply NULL; the connection retries after a delay that starts
 *    at backoff_min_ms, doubles per failed attempt up to backoff_max_ms, and is jittered to
 *    [50 %, 100 %] of that (so many gateways do not reconnect in step). It returns to
 *    backoff_min_ms once up again.
 * A pub/sub connection (pubsub = 1) sends no PING: hiredis 0.14 cannot route a PING reply in
 * subscribed mode. Its owner pairs it with a command connection and resets it when that one
 * goes down (broker_redis.c does).
 *
 * A credentials error (AUTH refused, NOAUTH, WRONGPASS) is reported as GW_EAUTH so the
 * caller can refuse to start instead of running alone silently; the connection keeps
 * retrying meanwhile (the password may be fixed on the Redis side). */
#ifndef GW_REDIS_CONN_H
#define GW_REDIS_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "loop.h"
#include "redis_config.h"

struct redisReply; /* hiredis's; only the redis layer looks inside */

typedef struct gw_redis_conn gw_redis_conn_t;

/* status 0: reply is Redis's answer (it may be an error reply: REDIS_REPLY_ERROR); negative:
 * reply is NULL and status is GW_ETIMEDOUT, GW_EUNAVAIL (the link broke) or GW_ECANCELED
 * (the connection was freed). Runs exactly once per accepted command. */
typedef void (*gw_redis_reply_cb)(void *ud, int status, const struct redisReply *reply);

/* Messages on a pub/sub connection: every reply pushed for a subscribed channel (the
 * "subscribe"/"unsubscribe" confirmations and the "message" arrays), and once per channel a
 * NULL reply (status < 0) when the link breaks. */
typedef void (*gw_redis_push_cb)(void *ud, int status, const struct redisReply *reply);

/* up: 1 when the connection became usable, 0 when it is not (a break, or a failed attempt
 * while down: reported once per attempt with its reason, so a caller waiting at start can
 * stop at the first GW_EAUTH). err: 0 when up; GW_EAUTH, GW_ETIMEDOUT, GW_EUNAVAIL, GW_EIO
 * (e.g. SELECT refused) when down. */
typedef void (*gw_redis_state_cb)(void *ud, int up, int err);

typedef struct gw_redis_conn_opts {
  const gw_redis_config_t *cfg; /* copied */
  gw_loop_t *loop;
  int pubsub;                   /* 1: for SUBSCRIBE; no health PING */
  const char *name;             /* for logs: "commands", "pubsub" */
  gw_redis_state_cb on_state;   /* optional */
  gw_redis_push_cb on_push;     /* pubsub: required */
  void *ud;
  unsigned ping_interval_ms;    /* 0: 1000 */
  unsigned backoff_min_ms;      /* 0: 100 */
  unsigned backoff_max_ms;      /* 0: 5000 */
  size_t max_pending;           /* commands waiting for an answer at most (0: 100000); beyond
                                   it a command is refused with GW_ELIMIT, so a slow Redis
                                   cannot grow the output buffer without bound */
} gw_redis_conn_opts_t;

typedef struct gw_redis_conn_stats {
  uint64_t commands_ok;      /* replies that were not errors */
  uint64_t commands_error;   /* error replies */
  uint64_t commands_timeout; /* commands failed with GW_ETIMEDOUT */
  uint64_t commands_lost;    /* commands failed because the link broke or was freed */
  uint64_t commands_refused; /* refused at once: max_pending reached */
  uint64_t connects;         /* times the connection came up */
  uint64_t reconnects;       /* of those, after having been up before */
  uint64_t attempts;         /* connection attempts */
  uint64_t timeouts;         /* links dropped for a timeout (connect, command, PING) */
  size_t pending;            /* commands waiting for an answer now */
  int up;
  int last_error;            /* the reason of the last failure (0: none yet) */
} gw_redis_conn_stats_t;

int gw_redis_conn_new(const gw_redis_conn_opts_t *opts, gw_redis_conn_t **out);
/* Pending callbacks run first with GW_ECANCELED. Safe from inside one of the connection's
 * own callbacks (the release then happens on the next loop pass; callbacks still run
 * first). */
void gw_redis_conn_free(gw_redis_conn_t *c);
int gw_redis_conn_is_up(const gw_redis_conn_t *c);
/* 1 while one of c's callbacks is running (a free now would be deferred): owners of
 * callbacks on c defer their own release then too. */
int gw_redis_conn_in_callback(const gw_redis_conn_t *c);

/* Sends one command (argv[i] of argvlen[i] bytes, binary-safe). 0 and cb runs exactly once
 * (cb may be NULL: fire and forget), or (cb never runs) GW_EUNAVAIL when not up, GW_ELIMIT
 * when max_pending commands are waiting, GW_EINVAL, GW_ENOMEM. On a pub/sub connection,
 * SUBSCRIBE/UNSUBSCRIBE take cb NULL: their replies go to on_push. */
int gw_redis_conn_command(gw_redis_conn_t *c, int argc, const char **argv,
                          const size_t *argvlen, gw_redis_reply_cb cb, void *ud);

/* Drops the link now (when connected or connecting) with reason as the status of pending
 * callbacks, and reconnects after the backoff. */
void gw_redis_conn_reset(gw_redis_conn_t *c, int reason);

void gw_redis_conn_stats(const gw_redis_conn_t *c, gw_redis_conn_stats_t *out);

#endif
