/* Rooms: named sets of connections, for local fan-out. Membership lives here, in C, so it
 * survives policy reloads; a room disappears with its last member. The room's first and
 * last member are reported to an observer (the node layer subscribes and unsubscribes the
 * room's channel at the broker). */
#ifndef GW_ROOM_H
#define GW_ROOM_H

#include <stddef.h>

#include "conn.h"

#define GW_ROOM_NAME_MAX 200

typedef struct gw_member {
  gw_conn_t *conn;
  size_t slot; /* index of this room in conn->rooms */
} gw_member_t;

struct gw_room {
  char *name;
  gw_member_t *members;
  size_t n, cap;
  /* watchers (gw_room_watch): not members, but they get its fan-out and keep it alive */
  gw_conn_t **watchers;
  size_t nw, wcap;
  UT_hash_handle hh;
};

/* 0 when joined (or already a member); GW_ELIMIT at max_rooms; GW_EINVAL for a bad name. */
int gw_room_join(gw_conn_t *c, const char *name, size_t max_rooms);
/* 0 when left, GW_ENOENT when it was not a member. */
int gw_room_leave(gw_conn_t *c, const char *name);
void gw_room_leave_all(gw_conn_t *c);
int gw_room_is_member(const gw_conn_t *c, const char *name);
gw_room_t *gw_room_find(const char *name);
size_t gw_room_size(const char *name);
size_t gw_room_count(void);
/* Sends an event to every local member of room but except_id (0: none), encoded once per
 * protocol through the members' tables (conn.h); returns how many got it. */
size_t gw_room_fanout(const char *room, const gw_event_t *e, uint64_t except_id);
gw_room_t *gw_room_first(void); /* iteration: for (r = first; r; r = r->hh.next) */

/* Watchers: a connection that is not in the connection table and not a member (not counted
 * by gw_room_size, presence or limits; no joined/left report) but receives the room's
 * fan-out after its members, and keeps the room (and so the node's subscription to its
 * channel) alive: a parked Socket.IO session collecting what it misses (sio_recovery.h).
 * A room is created by its first member or watcher and goes with the last of both. 0 (also
 * when already watching), GW_EINVAL for a bad name, GW_ENOMEM. */
int gw_room_watch(gw_conn_t *w, const char *name);
void gw_room_unwatch(gw_conn_t *w, const char *name);

/* Called when a room is created by its first member (after the join, so the room exists
 * with that member) and when its last member leaves (the room is already gone: finding it
 * gives NULL). name is valid during the call only. The observer must not join or leave
 * rooms from these calls: it records, and acts later (node.c flushes once per loop pass). */
typedef struct gw_room_observer {
  void (*first_member)(void *ud, const char *name);
  void (*last_member)(void *ud, const char *name);
  /* every join and leave (optional): cluster-wide presence (node.c) */
  void (*joined)(void *ud, const char *name, const gw_conn_t *c);
  void (*left)(void *ud, const char *name, const gw_conn_t *c);
  void *ud;
} gw_room_observer_t;
/* The observer is copied; NULL: none. One at a time (the node layer). */
void gw_room_set_observer(const gw_room_observer_t *o);

#endif
