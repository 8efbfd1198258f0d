/* Live events held back for a connection while it resumes a stream (docs/offline-replay.md):
 * the connection is already a member of the room, so live publications reach it while the
 * history is being read; they wait here, and once the missed messages are sent the held ones
 * after the last replayed offset follow. Nothing is lost or repeated at the seam.
 *
 * Bounds: GW_HOLD_CHANNELS streams resuming at once per connection, GW_HOLD_MAX_EVENTS events
 * and GW_HOLD_MAX_BYTES bytes held per connection; past them the hold overflows: further
 * events of that connection's held streams are dropped and the resume reports recovered =
 * false, so the client knows to reload. */
#ifndef GW_HOLD_H
#define GW_HOLD_H

#include <stddef.h>
#include <stdint.h>

#include "conn.h"

#define GW_HOLD_CHANNELS 16
#define GW_HOLD_MAX_EVENTS 10000
#define GW_HOLD_MAX_BYTES (4u << 20)

/* Starts holding channel's kept events for c. claim 1: for a resume under way (GW_EEXIST
 * when another resume holds it; a hold started at join is taken over); claim 0: at a join of
 * a connection that said it will resume (c->resume_intent), released by its resume or, if
 * none comes, by gw_hold_release_stale. 0, GW_ELIMIT (GW_HOLD_CHANNELS already), GW_EEXIST,
 * GW_ENOMEM. */
int gw_hold_begin(gw_conn_t *c, const char *channel, int claim);
/* Ends the unclaimed holds of c started before `before_ms` (gw_clock_now_ms), sending what
 * they held (the client never resumed: it gets the live events late rather than never). */
void gw_hold_release_stale(gw_conn_t *c, double before_ms, void (*send)(gw_conn_t *c, const gw_event_t *e));
/* A connection with resume_intent joined channel: held when a replay rule keeps it. */
void gw_hold_on_join(gw_conn_t *c, const char *channel);
#define GW_HOLD_UNCLAIMED_MS 10000.0 /* how long a hold waits for its resume */
/* From the fan-out: 1 when e (a kept event) is for a held channel of c and was kept here. */
int gw_hold_take(gw_conn_t *c, const gw_event_t *e);
/* Ends the hold of channel: its held events after `after` (same epoch and a higher offset, or
 * another epoch: a stream started again) go to send(c, e) in the order they came; the others
 * are dropped. Returns 0, or GW_ELIMIT when the hold overflowed for this channel (events were
 * lost: the caller answers recovered = false). */
int gw_hold_end(gw_conn_t *c, const char *channel, const gw_stream_pos_t *after,
                void (*send)(gw_conn_t *c, const gw_event_t *e));
/* The lowest held offset of channel in epoch (0: none held): a gap between the replay and
 * the live events is read again. */
uint64_t gw_hold_first_offset(const gw_conn_t *c, const char *channel, const char *epoch);
void gw_hold_free(gw_conn_t *c);
size_t gw_hold_count(void); /* connections with a hold (a sweep has nothing to do at 0) */

#endif
