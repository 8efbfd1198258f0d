#include "room.h"

#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "hold.h"

static gw_room_t *g_rooms;
static gw_room_observer_t g_observer;

void gw_room_set_observer(const gw_room_observer_t *o) {
  if (o) g_observer = *o;
  else memset(&g_observer, 0, sizeof g_observer);
}

gw_room_t *gw_room_find(const char *name) {
  gw_room_t *r;
  HASH_FIND_STR(g_rooms, name, r);
  return r;
}

size_t gw_room_size(const char *name) {
  gw_room_t *r = gw_room_find(name);
  return r ? r->n : 0;
}

size_t gw_room_count(void) { return HASH_COUNT(g_rooms); }
gw_room_t *gw_room_first(void) { return g_rooms; }

static long membership_index(const gw_conn_t *c, const gw_room_t *r) {
  for (size_t i = 0; i < c->nrooms; i++)
    if (c->rooms[i].room == r) return (long)i;
  return -1;
}

int gw_room_is_member(const gw_conn_t *c, const char *name) {
  gw_room_t *r = gw_room_find(name);
  return r && membership_index(c, r) >= 0;
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  size_t ncap = *cap ? *cap * 2 : 4;
  while (ncap < need) ncap *= 2;
  void *n = realloc(*arr, ncap * elem);
  if (!n) return GW_ENOMEM;
  *arr = n;
  *cap = ncap;
  return 0;
}

/* notify: the room had members (its last one left), as opposed to a room undone by a
 * failed first join, which nobody was told about. */
static void room_free(gw_room_t *r, int notify) {
  HASH_DEL(g_rooms, r);
  if (notify && g_observer.last_member) g_observer.last_member(g_observer.ud, r->name);
  free(r->members);
  free(r->watchers);
  free(r->name);
  free(r);
}

/* A room, empty, in the table: its first member or watcher is added next. */
static gw_room_t *room_new(const char *name, size_t len) {
  gw_room_t *r = calloc(1, sizeof *r);
  if (!r || !(r->name = strdup(name))) {
    free(r);
    return NULL;
  }
  HASH_ADD_KEYPTR(hh, g_rooms, r->name, len, r);
  return r;
}

int gw_room_join(gw_conn_t *c, const char *name, size_t max_rooms) {
  size_t len = strlen(name);
  if (len == 0 || len > GW_ROOM_NAME_MAX) return GW_EINVAL;
  gw_room_t *r = gw_room_find(name);
  if (r && membership_index(c, r) >= 0) return 0;
  if (c->nrooms >= max_rooms) return GW_ELIMIT;
  int created = !r;
  if (grow((void **)&c->rooms, &c->rooms_cap, c->nrooms + 1, sizeof *c->rooms)) return GW_ENOMEM;
  if (!r && !(r = room_new(name, len))) return GW_ENOMEM;
  if (grow((void **)&r->members, &r->cap, r->n + 1, sizeof *r->members)) {
    if (created) room_free(r, 0);
    return GW_ENOMEM;
  }
  r->members[r->n].conn = c;
  r->members[r->n].slot = c->nrooms;
  c->rooms[c->nrooms].room = r;
  c->rooms[c->nrooms].pos = r->n;
  r->n++;
  c->nrooms++;
  if (created && g_observer.first_member) g_observer.first_member(g_observer.ud, r->name);
  if (g_observer.joined) g_observer.joined(g_observer.ud, r->name, c);
  if (c->resume_intent) gw_hold_on_join(c, r->name);
  return 0;
}

/* Removes membership i of c, keeping both index arrays consistent (swap with the last). */
static void remove_membership(gw_conn_t *c, size_t i) {
  gw_room_t *r = c->rooms[i].room;
  size_t pos = c->rooms[i].pos;
  if (g_observer.left) g_observer.left(g_observer.ud, r->name, c);
  if (c->hold) { /* what was held for it is not the member's any more */
    gw_stream_pos_t none = {0, ""};
    gw_hold_end(c, r->name, &none, NULL);
  }

  size_t last = r->n - 1;
  if (pos != last) {
    r->members[pos] = r->members[last];
    r->members[pos].conn->rooms[r->members[pos].slot].pos = pos;
  }
  r->n--;

  size_t clast = c->nrooms - 1;
  if (i != clast) {
    c->rooms[i] = c->rooms[clast];
    gw_room_t *moved_room = c->rooms[i].room;
    moved_room->members[c->rooms[i].pos].slot = i;
  }
  c->nrooms--;

  if (r->n == 0 && r->nw == 0) room_free(r, 1);
}

int gw_room_leave(gw_conn_t *c, const char *name) {
  gw_room_t *r = gw_room_find(name);
  long i = r ? membership_index(c, r) : -1;
  if (i < 0) return GW_ENOENT;
  remove_membership(c, (size_t)i);
  return 0;
}

void gw_room_leave_all(gw_conn_t *c) {
  while (c->nrooms) remove_membership(c, c->nrooms - 1);
}

size_t gw_room_fanout(const char *room, const gw_event_t *e, uint64_t except_id) {
  gw_room_t *r = gw_room_find(room);
  if (!r) return 0;
  /* each protocol's encoding, shared by all its recipients */
  void *cache[GW_PROTO_COUNT] = {0};
  const gw_conn_ops_t *used[GW_PROTO_COUNT] = {0};
  size_t sent = 0;
  for (size_t i = 0; i < r->n; i++) {
    gw_conn_t *c = r->members[i].conn;
    if (c->id == except_id || c->close_code || !c->ops || !c->ops->fanout) continue;
    if (c->hold && gw_hold_take(c, e)) { /* it is resuming this stream: sent after the replay */
      sent++;
      continue;
    }
    unsigned p = (unsigned)c->ops->proto < GW_PROTO_COUNT ? (unsigned)c->ops->proto : 0;
    used[p] = c->ops;
    if (c->ops->fanout(&cache[p], c, e) == 0) sent++;
  }
  for (size_t i = 0; i < r->nw; i++) { /* not counted: they are not members */
    gw_conn_t *w = r->watchers[i];
    if (!w->ops || !w->ops->fanout) continue;
    unsigned p = (unsigned)w->ops->proto < GW_PROTO_COUNT ? (unsigned)w->ops->proto : 0;
    used[p] = w->ops;
    w->ops->fanout(&cache[p], w, e);
  }
  for (unsigned p = 0; p < GW_PROTO_COUNT; p++)
    if (used[p] && cache[p] && used[p]->fanout_end) used[p]->fanout_end(cache[p]);
  return sent;
}

int gw_room_watch(gw_conn_t *w, const char *name) {
  size_t len = strlen(name);
  if (len == 0 || len > GW_ROOM_NAME_MAX) return GW_EINVAL;
  gw_room_t *r = gw_room_find(name);
  if (r)
    for (size_t i = 0; i < r->nw; i++)
      if (r->watchers[i] == w) return 0;
  int created = !r;
  if (!r && !(r = room_new(name, len))) return GW_ENOMEM;
  if (grow((void **)&r->watchers, &r->wcap, r->nw + 1, sizeof *r->watchers)) {
    if (created) room_free(r, 0);
    return GW_ENOMEM;
  }
  r->watchers[r->nw++] = w;
  if (created && g_observer.first_member) g_observer.first_member(g_observer.ud, r->name);
  return 0;
}

void gw_room_unwatch(gw_conn_t *w, const char *name) {
  gw_room_t *r = gw_room_find(name);
  if (!r) return;
  for (size_t i = 0; i < r->nw; i++) {
    if (r->watchers[i] != w) continue;
    r->watchers[i] = r->watchers[--r->nw];
    if (r->n == 0 && r->nw == 0) room_free(r, 1);
    return;
  }
}
