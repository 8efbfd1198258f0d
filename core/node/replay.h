/* Offline replay in the node layer (docs/offline-replay.md): the protocol-neutral payload
 * of a kept publication, and reading a stream since a position for a client that resumes.
 * Appending happens in gw_node_publish (node.h), so every publish path keeps alike. */
#ifndef GW_REPLAY_H
#define GW_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "history.h"
#include "replay_codec.h"
#include "replay_rule.h"

/* A read of channel since a position, in pages: cb runs once per page (items in offset
 * order, valid during the call) and last = 1 on the final call; top and recovered as
 * history.h says (recovered 0: the position is lost, the items are the newest kept). At most
 * max items in all. Items the store holds but that do not decode are skipped and counted.
 * The calling convention of history.h: a negative return means cb never runs. */
typedef void (*gw_replay_read_cb)(void *ud, int status, const gw_replay_item_t *items, size_t n,
                                  const gw_stream_pos_t *top, int recovered, int last);
int gw_node_replay_read(const char *channel, const gw_stream_pos_t *since, size_t max, gw_replay_read_cb cb,
                        void *ud);
/* The running policy's rule that keeps channel (for resumes), or NULL. */
int gw_node_replay_kept(const char *channel);

typedef struct gw_replay_stats {
  uint64_t reads, replayed, malformed;
  uint64_t acked, redelivered, failed; /* messages needing an ack (proto/ack_track.c) */
} gw_replay_stats_t;
void gw_replay_stats(gw_replay_stats_t *out);
/* The counters, for the protocol layer's ack tracking to add to. */
gw_replay_stats_t *gw_replay_stats_mut(void);
/* aivo_replay_recoveries_total{protocol, recovered}: one resume of one stream (ws) or session
 * (socketio) and whether nothing was missed. */
void gw_replay_count_recovery(const char *protocol, int recovered);

#endif
