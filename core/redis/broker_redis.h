/* The Redis broker (issue 14): broker.h's contract over Redis pub/sub, with presence in
 * Redis sorted sets. The gateway uses it when Redis is configured (app/cluster.c); see
 * docs/scaling.md for the names, the payload and the failure behaviour.
 *
 * Two connections (redis_conn.h): one for commands (PUBLISH, presence scripts, health PING)
 * and one in SUBSCRIBE mode. The broker is up when both are; when the command connection
 * goes down the pub/sub one is reset too (a frozen Redis is noticed by the PING).
 *
 * Channels: room `R` is the Redis channel `<prefix>ch:R` (user channels are rooms named
 * "user:<id>", so `aivo:ch:user:42`). Payload: a binary envelope (broker_redis.c,
 * docs/scaling.md) with the origin node id, except_conn, event, optional stream position
 * and JSON data; at most max_payload bytes. A message from Redis that is larger, malformed,
 * or on a channel outside the prefix is dropped and counted, never delivered.
 *
 * Presence: `<prefix>presence:<channel>`, a sorted set whose members are
 * `<node id hex>:<client>[:<user>]` and whose scores are expiry times (Redis's clock, ms).
 * The live node re-adds its own entries every presence_refresh_ms; counts ignore and remove
 * expired entries, so the entries of a node that died disappear within presence_ttl_ms of
 * its last refresh. */
#ifndef GW_BROKER_REDIS_H
#define GW_BROKER_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "broker.h"
#include "loop.h"
#include "redis_config.h"

#define GW_BROKER_REDIS_PAYLOAD_MAX_DEFAULT ((size_t)1 << 20)
#define GW_BROKER_REDIS_SUB_BATCH 4096 /* channels per SUBSCRIBE / UNSUBSCRIBE command */

typedef struct gw_broker_redis gw_broker_redis_t;

typedef struct gw_broker_redis_config {
  const gw_redis_config_t *redis; /* copied; prefix included */
  gw_loop_t *loop;
  uint64_t node_id;               /* != 0: this node's origin id (node.h gw_node_id()) */
  size_t max_payload;             /* 0: GW_BROKER_REDIS_PAYLOAD_MAX_DEFAULT (1 MiB) */
  unsigned presence_ttl_ms;       /* 0: 30000 */
  unsigned presence_refresh_ms;   /* 0: 10000; must be < presence_ttl_ms */
  /* passed to both connections (0: their defaults, redis_conn.h) */
  unsigned ping_interval_ms, backoff_min_ms, backoff_max_ms;
} gw_broker_redis_config_t;

typedef struct gw_broker_redis_stats {
  uint64_t published;        /* publish() calls accepted */
  uint64_t publish_lost;     /* not handed to Redis (down) or failed there:
                                aivo_redis_publish_lost_total */
  uint64_t received;         /* publications from Redis handed to the handler (echoes too) */
  uint64_t dropped_malformed;/* messages from Redis that were not a valid envelope */
  uint64_t dropped_oversize; /* messages over max_payload */
  uint64_t subscribe_cmds, unsubscribe_cmds; /* commands sent (a batch is one) */
  uint64_t presence_refreshes;
  size_t subscriptions;      /* channels subscribed (intent): aivo_redis_subscriptions */
  size_t presence_entries;   /* this node's own entries */
  int up;                    /* aivo_redis_up */
} gw_broker_redis_stats_t;

int gw_broker_redis_new(const gw_broker_redis_config_t *cfg, gw_broker_redis_t **out);
const gw_broker_t *gw_broker_redis_broker(gw_broker_redis_t *b);
/* Same as the table's close(): pending presence_count callbacks run with GW_ECANCELED. */
void gw_broker_redis_free(gw_broker_redis_t *b);
void gw_broker_redis_stats(const gw_broker_redis_t *b, gw_broker_redis_stats_t *out);
/* The two connections' counters (commands, timeouts, reconnects, pending). */
struct gw_redis_conn_stats;
void gw_broker_redis_conn_stats(const gw_broker_redis_t *b, struct gw_redis_conn_stats *cmd,
                                struct gw_redis_conn_stats *sub);
/* The command connection, for the other Redis stores (ratelimit_redis.h, history_redis.h)
 * to share: one TCP connection and one health check for all of them. */
struct gw_redis_conn;
struct gw_redis_conn *gw_broker_redis_command_conn(gw_broker_redis_t *b);
/* The reason the command connection last failed (GW_EAUTH for a wrong password), 0 when
 * none: the gateway refuses to start on GW_EAUTH. */
int gw_broker_redis_last_error(const gw_broker_redis_t *b);

/* Who is present in a channel across every node: broker.h's presence_list (at most
 * GW_BROKER_PRESENCE_LIST_MAX entries, expired ones excluded, soonest to expire first);
 * GW_EUNAVAIL while down. */
#define GW_BROKER_REDIS_LIST_MAX GW_BROKER_PRESENCE_LIST_MAX
int gw_broker_redis_presence_list(gw_broker_redis_t *b, const char *channel, size_t max,
                                  gw_presence_list_cb cb, void *cb_ud);

/* Encodes / decodes the envelope (exposed for tests and other transports). encode returns
 * the size, or GW_ELIMIT when it would exceed cap. decode validates everything and points
 * into buf (pub->channel is left to the caller); 0 or GW_EINVAL. */
long gw_broker_redis_encode(const gw_publication_t *pub, unsigned char *buf, size_t cap);
int gw_broker_redis_decode(const unsigned char *buf, size_t len, gw_publication_t *pub,
                           char epoch_out[GW_HISTORY_EPOCH_MAX + 1]);

#endif
