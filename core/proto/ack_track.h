/* Messages that need an ack (a replay rule with ack = true, docs/offline-replay.md), sent to
 * native /ws connections: at-least-once delivery.
 *  - Every such message a connection is sent is tracked (channel, offset, the frame). The
 *    client acknowledges with `replay:ack {channel, offset, epoch}`, cumulative: every
 *    tracked message of that channel up to offset is done, and the stream's ack cursor moves
 *    (history.h ack_set; shared through Redis).
 *  - Not acknowledged within the rule's ack_timeout, the frame is sent again, then after
 *    twice that, four times..., up to `retries` times; then it is counted as failed
 *    (aivo_replay_failed_total) and no longer re-sent on this connection.
 *  - On the next connection of the user, the messages needing an ack after the cursor are
 *    sent again (and tracked again), whoever connects: at-least-once; the offset lets the
 *    client drop what it already has.
 * Bounds: GW_ACK_MAX_PENDING tracked messages per connection (more: not tracked, counted as
 * failed at once, the client still got it); a frame is shared, not copied. */
#ifndef GW_ACK_TRACK_H
#define GW_ACK_TRACK_H

#include <stdint.h>

#include "conn.h"
#include "msgbuf.h"

#define GW_ACK_MAX_PENDING 256

/* e (e->ack set) went to c as frame. */
void gw_ack_track_sent(gw_conn_t *c, const gw_event_t *e, gw_msgbuf_t *frame);
/* The client's replay:ack for channel up to pos: how many tracked messages it settled. */
size_t gw_ack_track_ack(gw_conn_t *c, const char *channel, const gw_stream_pos_t *pos);
/* c is ready (its user channel joined): what it did not acknowledge before comes again. */
void gw_ack_track_connected(gw_conn_t *c, const char *user_channel);
void gw_ack_track_forget(gw_conn_t *c);

#endif
