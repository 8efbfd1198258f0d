/* Socket.IO connection state recovery's store (docs/socketio.md "Connection state
 * recovery"): offsets, the bounded buffer of what a session was sent, and the parked
 * sessions waiting for their client to come back.
 *
 * Offsets: one per-process counter shared by every session, so a fan-out packet carries the
 * same offset for all its recipients and is still encoded once per namespace (the buffers
 * hold references to the shared packets). On the wire an offset is its decimal string.
 *
 * A buffer keeps the last packets a session was sent, oldest dropped first, bounded in
 * packets and bytes per session and in bytes for the whole process (GW_SIOR_DEFAULT_*); an
 * entry counts its packets' bytes (per reference: a shared packet counts in every buffer
 * holding it) plus GW_SIOR_ENTRY_OVERHEAD.
 * It remembers its floor: every offset at or below it is gone, so a client that says it
 * has seen offset O can be caught up exactly when O >= floor, or when nothing was ever
 * dropped (O then predates the session).
 *
 * Parking: when a session's transport is lost, its pid, sid, user, namespace, rooms and
 * buffer are parked for the maximum disconnection duration. A hidden connection watches
 * the rooms (room.h gw_room_watch: not a member, not counted in presence or limits) and its
 * protocol table (given by socketio.c) adds what is published there to the buffer. */
#ifndef GW_SIO_RECOVERY_H
#define GW_SIO_RECOVERY_H

#include <stddef.h>
#include <stdint.h>

#include <uthash.h>

#include "conn.h"
#include "msgbuf.h"

#define GW_SIOR_PID_LEN 32 /* 128 random bits in hex */
#define GW_SIOR_OFFSET_MAX 21

#define GW_SIOR_DEFAULT_MAX_PACKETS 1000               /* per session */
#define GW_SIOR_DEFAULT_MAX_BYTES (1024 * 1024)        /* per session */
#define GW_SIOR_DEFAULT_MAX_TOTAL_BYTES (256u << 20)   /* every session of the process */
#define GW_SIOR_DEFAULT_MAX_PARKED 100000              /* parked sessions */

typedef struct gw_sior_limits {
  size_t max_packets, max_bytes, max_total_bytes, max_parked;
} gw_sior_limits_t;
/* The defaults above until changed (unit tests). */
void gw_sior_set_limits(const gw_sior_limits_t *l);
const gw_sior_limits_t *gw_sior_get_limits(void);

/* ---- offsets ---------------------------------------------------------------------------- */

uint64_t gw_sior_next_offset(void); /* never 0 */
uint64_t gw_sior_last_offset(void); /* the last one given (0: none yet) */
/* The decimal string (out has GW_SIOR_OFFSET_MAX bytes); its length. */
size_t gw_sior_offset_str(uint64_t off, char *out);
/* 0 and *off for 1..20 digits, else -1. */
int gw_sior_offset_parse(const char *s, size_t len, uint64_t *off);
/* A new private id: GW_SIOR_PID_LEN hex characters and a NUL. */
void gw_sior_new_pid(char *out);

/* ---- buffers ----------------------------------------------------------------------------- */

typedef struct gw_sior_entry {
  uint64_t off;
  gw_msgbuf_t *one;   /* the packet (npkts 1) */
  gw_msgbuf_t **many; /* or the header and its attachments (npkts > 1) */
  size_t npkts, bytes;
} gw_sior_entry_t;

/* What one kept entry costs against the bounds besides its packets' bytes (its slot). */
#define GW_SIOR_ENTRY_OVERHEAD sizeof(gw_sior_entry_t)

typedef struct gw_sior_buf {
  gw_sior_entry_t *v; /* a ring: entry i is v[(head + i) % cap] */
  size_t head, n, cap;
  size_t bytes;
  uint64_t floor; /* offsets <= floor are gone */
  int trimmed;    /* something was dropped */
} gw_sior_buf_t;

/* Empty, its floor the last offset given so far. */
void gw_sior_buf_init(gw_sior_buf_t *b);
/* Keeps the packets of offset off (a reference each), dropping the oldest past the bounds;
 * when even alone it cannot be kept, everything is dropped and the floor is off. 0, or
 * GW_ENOMEM (then also dropped that way). */
int gw_sior_buf_add(gw_sior_buf_t *b, uint64_t off, gw_msgbuf_t *const *pkts, size_t npkts);
void gw_sior_buf_clear(gw_sior_buf_t *b); /* references released; floor and trimmed kept */
void gw_sior_buf_free(gw_sior_buf_t *b);  /* cleared and its memory freed */
/* 1 when a client that has seen offset off (0: none) can be caught up from b. */
int gw_sior_buf_covers(const gw_sior_buf_t *b, uint64_t off);
const gw_sior_entry_t *gw_sior_buf_at(const gw_sior_buf_t *b, size_t i);
static inline gw_msgbuf_t *const *gw_sior_entry_pkts(const gw_sior_entry_t *e) {
  return e->npkts == 1 ? &e->one : e->many;
}
/* Bytes held by every buffer of the process (live and parked). */
size_t gw_sior_total_bytes(void);

/* ---- parked sessions --------------------------------------------------------------------- */

typedef struct gw_sior_parked {
  char pid[GW_SIOR_PID_LEN + 1];
  char sid[24];
  char *user, *nsp;
  char **rooms;
  size_t nrooms;
  gw_sior_buf_t buf;
  double expires_ms;
  gw_conn_t watcher; /* watches the rooms; watcher.transport is this record */
  UT_hash_handle hh;
} gw_sior_parked_t;

/* Parks the session: from's rooms (its user channel included) are watched by a hidden
 * connection with table ops (proto Socket.IO; its fanout adds to the record's buffer) and id
 * from->id; *buf is moved into the record (left empty). The oldest parked session goes
 * when GW_SIOR_DEFAULT_MAX_PARKED are parked. NULL when out of memory (nothing parked; buf
 * untouched). */
gw_sior_parked_t *gw_sior_park(const char *pid, const char *sid, const char *nsp, const gw_conn_t *from,
                               gw_sior_buf_t *buf, double ttl_ms, const gw_conn_ops_t *ops);
/* The parked session of pid, NULL when unknown or expired (an expired one is freed). */
gw_sior_parked_t *gw_sior_find(const char *pid);
/* Unparks p: its rooms are no longer watched; the caller owns it and frees it. */
void gw_sior_unpark(gw_sior_parked_t *p);
void gw_sior_parked_free(gw_sior_parked_t *p);
/* Frees the expired ones (a timer on the main loop does it every second while any is
 * parked). */
void gw_sior_sweep(double now_ms);
size_t gw_sior_parked_count(void);
void gw_sior_free_all(void);

#endif
