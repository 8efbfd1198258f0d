/* Rooms: named sets of connections, for local fan-out. Membership lives here, in C, so it
 * survives policy reloads; a room disappears with its last member. */
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
gw_room_t *gw_room_first(void); /* iteration: for (r = first; r; r = r->hh.next) */

#endif
