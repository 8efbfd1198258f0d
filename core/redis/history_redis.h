/* The history store on Redis Streams (docs/offline-replay.md): history.h's contract, shared
 * by every gateway on one Redis, so a client can resume on any node. app/cluster.c gives it to
 * the node when Redis is configured.
 *
 * Layout, per channel (docs/scaling.md):
 *  - `<prefix>stream:<channel>`: a stream whose entry ids are `<offset>-0` (reads by offset
 *    are XRANGE from `<since+1>-0`), fields d (the payload) and e (expiry, ms on Redis's
 *    clock, 0: none);
 *  - `<prefix>stream-meta:<channel>`: a hash {epoch, top}. The epoch is random, written when
 *    the hash is created (a stream's first append or read); top is the last offset. One Lua
 *    script does HINCRBY top + XADD, so an offset and its entry are written together.
 * When the meta key is lost (evicted, expired, FLUSHALL) the next access creates a new epoch
 * and drops the stream's old entries: positions from before never match again, as the
 * contract requires. Both keys get the stream TTL (stream_ttl_ms, and at least the longest
 * message TTL) again on every append.
 *
 * Trimming: XADD MAXLEN = n (exact, not ~: "~" keeps up to a macro node (100 entries) more
 * than asked, and the policy's stream size is a promise). A message TTL is kept per entry:
 * expired entries at the head are deleted on read; an expired entry behind a live one is
 * never returned and counts as lost (recovered = 0), like the memory store's "may leave
 * earlier".
 *
 * Bounds: a payload over max_message_bytes is refused (GW_ELIMIT); a read returns at most
 * max_read items; a reply that does not have the expected shape fails the call with GW_EIO
 * (counted), never trusted. */
#ifndef GW_HISTORY_REDIS_H
#define GW_HISTORY_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "history.h"
#include "redis_conn.h"

typedef struct gw_history_redis gw_history_redis_t;

typedef struct gw_history_redis_config {
  gw_redis_conn_t *conn;     /* a command connection, shared; stays the caller's */
  const char *prefix;        /* "aivo:" (copied) */
  size_t max_stream_len;     /* 0: 1000; an append's max_len is capped by it */
  size_t max_message_bytes;  /* 0: 64 KiB */
  size_t max_read;           /* 0: 1000 items per read */
  uint64_t default_ttl_ms;   /* message TTL when the append gives none; 0: never */
  uint64_t stream_ttl_ms;    /* 0: 24 h; the keys live this long after the last append */
} gw_history_redis_config_t;

typedef struct gw_history_redis_stats {
  uint64_t stored, trimmed, reads, refused, errors, malformed;
  size_t pending;
} gw_history_redis_stats_t;

int gw_history_redis_new(const gw_history_redis_config_t *cfg, gw_history_redis_t **out);
const gw_history_t *gw_history_redis_store(gw_history_redis_t *h);
/* Pending callbacks run first with GW_ECANCELED. */
void gw_history_redis_free(gw_history_redis_t *h);
void gw_history_redis_stats(const gw_history_redis_t *h, gw_history_redis_stats_t *out);

#endif
