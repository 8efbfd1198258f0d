/* Rate limits: buckets keyed by strings, owned by C so that they survive policy reloads;
 * connection admission limits per IP address.
 *
 * The algorithm is a token bucket with a lazy, continuous refill (the same decisions as GCRA,
 * stored differently). A rule says: `limit` cost units per `window`, at most `burst` at once
 * (default: limit). Each bucket keeps the units in use (`level`) and when that was last
 * computed; the refill is computed on access (level -= elapsed * limit / window), so there is
 * no timer per bucket and a check is a hash lookup and a few multiplications.
 *
 * Why a token bucket:
 * - a burst of `limit` passes at once, then exactly one unit per window/limit: "100 per
 *   minute" means the first 100 of a burst pass and the 101st waits 600 ms, which is what a
 *   client expects and what `retryAfterMs` can state exactly;
 * - no window edges: a fixed window lets 2 x limit through around its boundary; a sliding log
 *   needs memory per message;
 * - GCRA would store one timestamp (the theoretical arrival time) instead of level + time;
 *   but a TAT is a debt in *time*, which a reload that changes a rule's rate would silently
 *   rescale. A level in cost units keeps its meaning when a policy edit changes the limit;
 * - a bucket whose level has drained to 0 holds no information, so deleting it is lossless:
 *   that is the idle expiry (gw_ratelimit_sweep), with no TTL to tune.
 * Refused messages take nothing from any bucket, so a client hammering a limit does not
 * extend its own wait. Several rules apply together: a message passes only when every rule
 * allows it, and only then is each bucket charged (all or nothing).
 */
#ifndef GW_RATELIMIT_H
#define GW_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include <luajit-2.1/lua.h>

#include "close_codes.h"

#define GW_RL_MAX_RULES 16    /* rules per message */
#define GW_RL_KEY_MAX 512     /* bytes per bucket key */
#define GW_RL_NAME_MAX 64     /* bytes per rule name (a metric label) */

typedef struct gw_rl_rule {
  const char *key;
  size_t keylen;
  double limit;     /* cost units per window, > 0 */
  double window_ms; /* > 0 */
  double burst;     /* bucket capacity: units that may pass at once; >= cost */
  double cost;      /* units this message takes, >= 0 */
  const char *name; /* for the per-rule metric; never NULL */
  int global;       /* scope "global": see gw_rl_store_t */
} gw_rl_rule_t;

typedef struct gw_rl_result {
  int allowed;
  size_t rule;           /* refused: index of the rule with the longest wait */
  double retry_after_ms; /* refused: when the message would pass (every rule), > 0 */
  uint32_t exceeded;     /* refused: bit i set when rule i was exceeded */
} gw_rl_result_t;

/* Checks every rule at now_ms; when all allow, charges each bucket. 0, or GW_EINVAL for a
 * rule that can never pass or is malformed (limit/window <= 0, cost > burst, n too big),
 * GW_ENOMEM when a bucket cannot be created (nothing is charged then). */
int gw_ratelimit_take(const gw_rl_rule_t *rules, size_t n, double now_ms, gw_rl_result_t *out);

/* Units in use in the bucket of key at now_ms for a rule of this rate (0 when absent). */
double gw_ratelimit_level(const char *key, size_t keylen, double limit, double window_ms,
                          double now_ms);
size_t gw_ratelimit_count(void);
/* Deletes buckets that have drained (idle); visits at most max_visits buckets per call and
 * carries on from there next time. Returns how many were deleted. */
size_t gw_ratelimit_sweep(double now_ms, size_t max_visits);
/* Frees every bucket and connection count (at exit). */
void gw_ratelimit_clear(void);

/* The seam for a bucket store shared by several gateways (Redis, the scale-out issue).
 * Rules with scope = "global" go to it: the local buckets are checked first (without
 * charging); when they allow, take() is asked for the global rules, and the local buckets are
 * charged only if it allows too. take() must be atomic over its rules (one Lua script in
 * Redis) and must not block the loop: a Redis store answers from a local mirror that it
 * reconciles asynchronously (or refuses, failing closed, when Redis is gone). Until a store is
 * set, global rules are kept in local buckets (per process), with one warning in the log. */
typedef struct gw_rl_store {
  int (*take)(void *ud, const gw_rl_rule_t *rules, size_t n, double now_ms, gw_rl_result_t *out);
  void *ud;
} gw_rl_store_t;
void gw_ratelimit_set_global_store(const gw_rl_store_t *store); /* NULL: none */

/* aivo.core.ratelimit(conn_id or nil, rule or list of rules): reads and checks the rules
 * (misuse raises: an unknown field, a missing key/limit/window, cost > burst), takes them and
 * counts refusals per rule. Returns true, or false, retry_after_ms, the 1-based index of the
 * rule with the longest wait, and how many messages of the connection were refused in a row. */
int gw_ratelimit_lua_take(lua_State *L);

/* ---- refusals, shared by every protocol ---------------------------------------------- */

typedef enum {
  GW_RL_SHAPE_ERROR,  /* {"code":"rate_limited","message":"...","retryAfterMs":N}: /ws ack
                         errors, and the `error` event of every protocol */
  GW_RL_SHAPE_ACK,    /* {"rateLimited":true,"retryAfterMs":N,"code":...,"message":...}: the
                         old service's Socket.IO ack (its clients test response.rateLimited) */
} gw_rl_shape_t;

/* Writes the JSON body of a refusal into out (NUL-terminated); returns its length. */
size_t gw_ratelimit_refusal_json(gw_rl_shape_t shape, double retry_after_ms, const char *message,
                                 char *out, size_t cap);

/* ---- connection admission ------------------------------------------------------------- */

typedef enum {
  GW_ADMIT_OK = 0,
  GW_ADMIT_IP_RATE,       /* too many new connections from this address in the last second */
  GW_ADMIT_IP_CONCURRENT, /* too many open connections from this address */
} gw_admit_t;

/* Decides whether a new connection from ip may open: per_second new connections per address
 * (0: off), max_concurrent open ones (0: off). On a refusal, *retry_after_ms says when trying
 * again makes sense (0: unknown). Does not count the connection: see conn_opened. */
gw_admit_t gw_ratelimit_admit(const char *ip, double now_ms, double per_second,
                              size_t max_concurrent, double *retry_after_ms);
/* The same with the running policy's settings and clock; counts refusals in the metrics.
 * Called by every protocol before it accepts a connection (the /ws upgrade, the Socket.IO
 * handshake); a refusal is answered with HTTP 429 and why (a short reason for the body). */
gw_admit_t gw_ratelimit_admit_now(const char *ip, double *retry_after_ms, const char **why);
/* connections.max_per_user, checked once the identity of c is known (before c joins
 * user_room, "user:<identity>"): 0, or the close code (GW_CLOSE_RATE_LIMITED) with the
 * reason filled in. Counts client connections: a /ws connection, or a Socket.IO client's
 * Engine.IO session however many namespaces it has connected as that identity (so a
 * namespace of a client that is already counted is always admitted). */
struct gw_conn;
int gw_ratelimit_admit_user(const struct gw_conn *c, const char *user_room, char *reason,
                            size_t reasonlen);
/* Open connections per address: /ws connections (the gateway) and Engine.IO sessions
 * (engineio.c; their Socket.IO namespaces are not counted again). */
void gw_ratelimit_conn_opened(const char *ip);
void gw_ratelimit_conn_closed(const char *ip);
size_t gw_ratelimit_conns_from(const char *ip);

#endif
