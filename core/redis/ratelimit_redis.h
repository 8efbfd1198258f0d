/* The global rate-limit store on Redis (issue 14): gw_rl_store_t (ratelimit.h) for rules
 * with scope = "global", shared by every gateway on one Redis: app/cluster.c sets it with
 * gw_ratelimit_set_global_store when Redis is configured.
 *
 * take() is synchronous (ratelimit.c asks it inside a message's handling) and must not
 * block the loop, so the store answers from a local mirror of each bucket and sends ONE
 * atomic Lua script per allowed check (EVALSHA, EVAL after NOSCRIPT) that applies the same
 * token bucket in Redis (same formulas as ratelimit.c, on Redis's clock) and charges every
 * rule only when all of them fit. The reply resets the mirror to Redis's level (plus this
 * node's charges still in flight), so every node sees the others' consumption one round
 * trip later. Bound: across N nodes a budget can be overrun by at most the checks that other
 * nodes allowed during one round trip before it ran out (in the tests: 100 of 100 when one
 * node is active at a time, at most 101 when two alternate); Redis itself never charges past
 * the burst, and such a late refusal is counted (over_admitted).
 *
 * While Redis is unreachable the mirror IS a local token bucket per process: global rules
 * fall back to local buckets (never refusing everything, never letting everything through);
 * the store counts each outage once (outages) and logs it once; checks decided meanwhile are
 * counted (fallback_checks). Keys: `<prefix>rl:<bucket key>`, a hash {l: level, t: ms},
 * expiring when the bucket would have drained. */
#ifndef GW_RATELIMIT_REDIS_H
#define GW_RATELIMIT_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "ratelimit.h"
#include "redis_conn.h"

typedef struct gw_rl_redis gw_rl_redis_t;

typedef struct gw_rl_redis_config {
  gw_redis_conn_t *conn; /* a command connection, shared; stays the caller's (free it after
                            the store) */
  const char *prefix;    /* "aivo:" (copied) */
  size_t max_keys;       /* mirror entries kept (0: 100000); the oldest go first */
} gw_rl_redis_config_t;

typedef struct gw_rl_redis_stats {
  uint64_t checks, allowed, refused;
  uint64_t sent;            /* scripts sent (one per allowed check while up) */
  uint64_t over_admitted;   /* allowed here, then refused by Redis (another node was faster) */
  uint64_t errors;          /* scripts that failed (timeout, link lost, error reply) */
  uint64_t fallback_checks; /* decided on the local mirror alone while Redis was down */
  uint64_t outages;         /* times Redis was found down after being up (logged once each) */
  uint64_t evicted;         /* mirror entries dropped to stay within max_keys */
  size_t keys;              /* mirror entries */
  int up;
} gw_rl_redis_stats_t;

int gw_rl_redis_new(const gw_rl_redis_config_t *cfg, gw_rl_redis_t **out);
const gw_rl_store_t *gw_rl_redis_store(gw_rl_redis_t *s);
/* Scripts still in flight are forgotten (their replies are ignored). */
void gw_rl_redis_free(gw_rl_redis_t *s);
void gw_rl_redis_stats(const gw_rl_redis_t *s, gw_rl_redis_stats_t *out);

#endif
