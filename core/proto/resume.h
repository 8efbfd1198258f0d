/* The native `resume` event (docs/offline-replay.md): a reconnecting client names, per
 * stream, the last position it has; the gateway sends what it missed, in order, then the
 * live events that arrived meanwhile, none twice, and answers per stream whether the
 * position was recovered. The connection must already be a member of each stream's room
 * (its user channel always is): membership is what lets it read a stream, and it is also
 * the live subscription, taken before the history is read so nothing falls in between
 * (hub/hold.h keeps the live events until the replay is out). */
#ifndef GW_RESUME_H
#define GW_RESUME_H

#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "history.h"

#define GW_RESUME_MAX_STREAMS 16

typedef struct gw_resume_stream {
  const char *channel;
  int has_pos; /* 0: the client has nothing yet; the answer tells it where the stream is */
  gw_stream_pos_t pos;
} gw_resume_stream_t;

/* Starts the resume of n (1..GW_RESUME_MAX_STREAMS) streams; the answer goes to c as the
 * ack of id (has_id) or as a `resume` event: {"streams": {"<channel>": {"recovered": bool,
 * "offset": N, "epoch": "E", "replayed": K} | {"recovered": false, "reason": "..."}}}. */
void gw_resume_start(gw_conn_t *c, int has_id, uint64_t id, const gw_resume_stream_t *streams, size_t n);
/* Sends one event to c alone, encoded by its protocol (with the position when kept). */
void gw_resume_send_one(gw_conn_t *c, const gw_event_t *e);

#endif
