/* The cluster (docs/scaling.md): which broker carries publications between gateways. Alone
 * (no Redis configured) it is the local broker, today's behaviour, said in one log line;
 * with Redis (--redis, REDIS_URL, REDIS_HOST..., redis.*) the Redis broker, the global
 * rate-limit store on the same command connection, the aivo_redis_* metrics, /readyz's
 * Redis rule and GET /admin/cluster. The app layer is the only one that knows which. */
#ifndef GW_CLUSTER_H
#define GW_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "broker.h"
#include "loop.h"
#include "settings.h"
#include "strbuf.h"

/* Picks and starts the broker from s->redis, the environment and cli_url (--redis, NULL:
 * none). With Redis it waits up to redis.connect_timeout for the first connection, so that a
 * wrong password stops the start (GW_EAUTH) instead of leaving a gateway silently alone; a
 * Redis not reachable yet is logged and retried in the background. 0, or an error with a
 * message in err (a bad URL or variable, a refused password, out of memory). */
int gw_cluster_start(gw_loop_t *loop, const gw_settings_t *s, const char *cli_url, uint64_t node_id,
                     char *err, size_t errlen);
void gw_cluster_stop(void);
const gw_broker_t *gw_cluster_broker(void);
/* The store of messages kept for replay: Redis Streams with Redis, else memory
 * (docs/offline-replay.md). */
const gw_history_t *gw_cluster_history(void);
/* Expired kept messages of streams nobody touched (the memory store), a bounded pass. */
void gw_cluster_sweep(void);
typedef struct gw_cluster_history_counts {
  uint64_t trimmed, expired, errors; /* since start */
  size_t streams, messages, bytes;   /* now (memory store; 0 with Redis) */
} gw_cluster_history_counts_t;
void gw_cluster_history_counts(gw_cluster_history_counts_t *out);
/* 1 when Redis is configured (several gateways as one). */
int gw_cluster_redis(void);

/* /readyz: 0 when ready; 1 when not (redis.required and Redis is down). note: a line for the
 * body ("" when there is nothing to say). */
int gw_cluster_not_ready(char *note, size_t cap);
/* The aivo_redis_* gauges and counters from the connections' counters (at each scrape). */
void gw_cluster_refresh_metrics(void);
/* GET /admin/cluster: node id, broker, Redis address (no password), state, subscriptions,
 * commands, reconnects, lost publishes, global rate-limit store. */
void gw_cluster_status(gw_strbuf_t *out);
/* A reload that changes redis.* cannot move a running gateway to another Redis: warned. */
void gw_cluster_settings_changed(const gw_settings_t *s);

#endif
