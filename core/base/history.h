/* The history seam: a store of message streams keyed by channel (a room name), kept so that
 * a client that lost its link can be sent what it missed (offline replay, issue 15). The
 * memory store (history_mem.h) is one implementation, Redis Streams (history_redis.h) the
 * other; the node layer appends and reads (node.h, replay.h).
 *
 * Positions. Every stream numbers its messages with offsets 1, 2, 3, ... (strictly
 * increasing, never reused) and carries an epoch: an opaque string that changes whenever the
 * stream's past is lost (the stream was created anew, evicted, expired, or the store
 * restarted). A position {offset, epoch} therefore names one message forever: a client that
 * holds {7, "a1b2"} and finds the stream at epoch "a1b2" with message 8 still kept has missed
 * nothing it cannot get back.
 *
 * Payloads are opaque bytes (the node layer decides their encoding; the store never parses
 * them). They should be protocol-neutral (the event and its JSON), never a frame of one
 * protocol.
 *
 * Calling convention (every operation, every store): the call returns a negative GW_E* code
 * when the request is refused before it starts (bad argument, no memory, store closed) and
 * then the callback never runs; otherwise it returns 0 and the callback runs exactly once,
 * with status 0 or a negative GW_E* code (a Redis store: GW_EUNAVAIL, GW_ETIMEDOUT, or
 * GW_ECANCELED when the store is closed first). The callback may run before the call
 * returns (the memory store is synchronous) or later from the loop (Redis): write callers
 * for both. Pointers handed to a callback (positions, items, payloads) are valid only until
 * it returns. An asynchronous callback's cb_ud should lead to ids (a connection id), never
 * to a connection that may be gone when the answer comes. */
#ifndef GW_HISTORY_H
#define GW_HISTORY_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define GW_HISTORY_EPOCH_MAX 32    /* bytes of an epoch string, without the NUL */
#define GW_HISTORY_CHANNEL_MAX 255 /* bytes of a channel name (room names are <= 200) */

typedef struct gw_stream_pos {
  uint64_t offset;                         /* 0: before the first message */
  char epoch[GW_HISTORY_EPOCH_MAX + 1];    /* NUL-terminated; "" names no stream */
} gw_stream_pos_t;

/* Same offset and same epoch. */
static inline int gw_stream_pos_equal(const gw_stream_pos_t *a, const gw_stream_pos_t *b) {
  return a->offset == b->offset && strncmp(a->epoch, b->epoch, sizeof a->epoch) == 0;
}

typedef struct gw_history_item {
  uint64_t offset;
  const void *data;
  size_t len;
} gw_history_item_t;

typedef struct gw_history_append_opts {
  size_t max_len;  /* keep at most this many messages in the stream (0: the store's bound) */
  uint64_t ttl_ms; /* drop each message this long after it was appended (0: the store's
                      default, which may be "never") */
} gw_history_append_opts_t;

/* append and top: pos is the message's position (append) or the stream's current one (top):
 * NULL when status < 0. */
typedef void (*gw_history_pos_cb)(void *cb_ud, int status, const gw_stream_pos_t *pos);

/* read_since: items in offset order; top is the stream's position when it was read;
 * recovered is 1 when every message after `since` up to top is in items or can be read by
 * asking again from the last item (the caller missed nothing), 0 when some are lost. */
typedef void (*gw_history_read_cb)(void *cb_ud, int status, const gw_history_item_t *items,
                                   size_t n, const gw_stream_pos_t *top, int recovered);

/* A store: the operations and the store's own data (the model: gw_rl_store_t, ratelimit.h).
 * channel is a NUL-terminated name of 1..GW_HISTORY_CHANNEL_MAX bytes.
 *
 * read_since, for a position `since` (the last message the caller has):
 *  - same epoch and nothing lost (since.offset + 1 >= the first kept offset, and since.offset
 *    <= top): the kept messages with offset > since.offset, oldest first, at most limit;
 *    recovered = 1. More than limit: ask again from the last one returned.
 *  - another epoch, a lost gap (since.offset + 1 < the first kept offset), or an offset past
 *    the top (not a position of this stream): recovered = 0, with the newest min(limit,
 *    kept) messages, oldest first (what a caller that accepts the gap can still show).
 *  - limit 0: no items, only top and recovered.
 * Reading or asking the top of a stream that does not exist creates it empty (offset 0 and a
 * new epoch), so that a position taken before the first message stays valid after it. */
typedef struct gw_history {
  int (*append)(void *ud, const char *channel, const void *data, size_t len,
                const gw_history_append_opts_t *opts, gw_history_pos_cb cb, void *cb_ud);
  int (*read_since)(void *ud, const char *channel, const gw_stream_pos_t *since, size_t limit,
                    gw_history_read_cb cb, void *cb_ud);
  int (*top)(void *ud, const char *channel, gw_history_pos_cb cb, void *cb_ud);
  /* Ack cursors (optional, NULL: none): the acknowledged position of a stream, for messages
   * that need an ack (docs/offline-replay.md). ack_set moves it forward only, and only within
   * the stream's current epoch (fire and forget: 0 when asked, no callback); ack_get
   * answers {acked offset (0: none), the stream's epoch} through cb. */
  int (*ack_set)(void *ud, const char *channel, const gw_stream_pos_t *pos);
  int (*ack_get)(void *ud, const char *channel, gw_history_pos_cb cb, void *cb_ud);
  /* Frees the store; pending callbacks run first with GW_ECANCELED. */
  void (*close)(void *ud);
  const char *name; /* "memory", "redis": for logs and /admin */
  void *ud;
} gw_history_t;

/* Calls through the table (opts NULL: the store's defaults). */
static inline int gw_history_append(const gw_history_t *h, const char *channel,
                                    const void *data, size_t len,
                                    const gw_history_append_opts_t *opts, gw_history_pos_cb cb,
                                    void *cb_ud) {
  return h->append(h->ud, channel, data, len, opts, cb, cb_ud);
}
static inline int gw_history_read_since(const gw_history_t *h, const char *channel,
                                        const gw_stream_pos_t *since, size_t limit,
                                        gw_history_read_cb cb, void *cb_ud) {
  return h->read_since(h->ud, channel, since, limit, cb, cb_ud);
}
static inline int gw_history_top(const gw_history_t *h, const char *channel,
                                 gw_history_pos_cb cb, void *cb_ud) {
  return h->top(h->ud, channel, cb, cb_ud);
}
static inline void gw_history_close(const gw_history_t *h) { h->close(h->ud); }

#endif
