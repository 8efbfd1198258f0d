/* The in-memory history store (history.h): per process, synchronous (every callback runs
 * before the call returns), lost on restart — which the epochs say: each stream gets a
 * random epoch when it is created, so a position from an earlier process, or from a stream
 * that was evicted and created again, never passes for a position of the new one.
 *
 * Bounds, all enforced on every append (none is ever exceeded after a call returns):
 *  - per stream: max_stream_len messages (an append's max_len may only lower it) and
 *    max_stream_bytes payload bytes: the oldest messages are dropped ("trimmed");
 *  - in total: max_streams streams and max_total_bytes payload bytes. When a new stream or
 *    message would pass them, the least recently appended streams are evicted whole (their
 *    epoch goes with them; clients of those streams see recovered = 0). Evicting rather
 *    than refusing keeps the store a cache of what is live: refusing would let idle streams
 *    block every new one. The appending stream itself is never evicted; when it is the only
 *    one left it is trimmed instead.
 *  - a message larger than max_stream_bytes or max_total_bytes is refused (GW_ELIMIT);
 *    nothing is dropped for it.
 * Memory beyond the payload bytes: about 64 bytes per message and 200 per stream plus the
 * channel name, so at most max_streams x max_stream_len messages of overhead.
 *
 * Time: messages expire ttl_ms after their append (per append, or default_ttl_ms). Expiry
 * keeps offset order: an append with a shorter TTL than older messages shortens theirs to its
 * own, so messages always leave oldest first and a stream never has a hole (a message is
 * never kept past its TTL; it may leave earlier). A stream that holds no message is forgotten
 * stream_ttl_ms after its last append (or its creation); while it holds messages its epoch is
 * kept. Expired data is removed lazily whenever a stream is touched, and by
 * gw_history_mem_sweep() (bounded work per call) for streams nobody touches. */
#ifndef GW_HISTORY_MEM_H
#define GW_HISTORY_MEM_H

#include <stddef.h>
#include <stdint.h>

#include "history.h"

typedef struct gw_history_mem_config {
  size_t max_streams;      /* > 0 */
  size_t max_total_bytes;  /* > 0: payload bytes across every stream */
  size_t max_stream_len;   /* > 0: messages per stream */
  size_t max_stream_bytes; /* > 0: payload bytes per stream */
  uint64_t default_ttl_ms; /* for an append that gives none; 0: messages never expire */
  uint64_t stream_ttl_ms;  /* an empty stream is forgotten this long after its last append;
                              0: only the bounds remove it */
  /* The clock, in milliseconds (tests inject one); NULL: CLOCK_MONOTONIC. */
  double (*now_ms)(void *clock_ud);
  void *clock_ud;
} gw_history_mem_config_t;

/* The defaults: 10,000 streams, 64 MiB in total, 1,000 messages and 1 MiB per stream,
 * messages never expire unless an append says so, empty streams kept 24 hours. */
void gw_history_mem_config_defaults(gw_history_mem_config_t *cfg);

typedef struct gw_history_mem gw_history_mem_t;

typedef struct gw_history_mem_stats {
  size_t streams, items, bytes; /* now: streams, messages, payload bytes */
  uint64_t stored;          /* messages appended */
  uint64_t trimmed;         /* messages dropped by a length or byte bound */
  uint64_t expired;         /* messages dropped by their TTL */
  uint64_t evicted;         /* streams evicted by max_streams or max_total_bytes */
  uint64_t evicted_items;   /* the messages they held */
  uint64_t streams_expired; /* empty streams forgotten after stream_ttl_ms */
  uint64_t refused;         /* appends refused: a message larger than a bound */
} gw_history_mem_stats_t;

/* cfg NULL: the defaults. 0, GW_EINVAL for a bound of 0, GW_ENOMEM. */
int gw_history_mem_new(const gw_history_mem_config_t *cfg, gw_history_mem_t **out);
/* The store's operations table (valid until the store is freed). */
const gw_history_t *gw_history_mem_store(gw_history_mem_t *m);
void gw_history_mem_stats(const gw_history_mem_t *m, gw_history_mem_stats_t *out);
/* Removes expired messages and forgotten streams, visiting at most max_visits streams per
 * call and carrying on from there next time (call it from a periodic timer). Returns how
 * many messages and streams it removed. */
size_t gw_history_mem_sweep(gw_history_mem_t *m, size_t max_visits);
/* Frees the store (the table's close does the same). Called from one of its own callbacks,
 * the store is freed once that callback returns. NULL: nothing. */
void gw_history_mem_free(gw_history_mem_t *m);

#endif
