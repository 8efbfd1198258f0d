/* Rooms and the connection table: membership in both directions (room -> members and
 * conn -> rooms, each indexing the other), limits, names, and connection ids/attributes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "conn.h"
#include "errors.h"
#include "room.h"

#define NO_LIMIT ((size_t)1 << 30)

/* Both back-indexes agree, from the rooms' side and from the connections' side.
 * Returns the number of broken entries (0 = consistent). */
static int broken_indexes(gw_conn_t *const *conns, size_t nconns, const char *const *names,
                          size_t nnames) {
  int bad = 0;
  for (size_t k = 0; k < nnames; k++) {
    gw_room_t *r = gw_room_find(names[k]);
    if (!r) continue;
    if (r->n == 0) bad++; /* an empty room must have been freed */
    for (size_t i = 0; i < r->n; i++) {
      gw_conn_t *c = r->members[i].conn;
      size_t slot = r->members[i].slot;
      if (!c || slot >= c->nrooms) {
        bad++;
        continue;
      }
      if (c->rooms[slot].room != r || c->rooms[slot].pos != i) bad++;
    }
  }
  for (size_t j = 0; j < nconns; j++) {
    gw_conn_t *c = conns[j];
    for (size_t s = 0; s < c->nrooms; s++) {
      gw_room_t *r = c->rooms[s].room;
      size_t pos = c->rooms[s].pos;
      if (!r || pos >= r->n || r->members[pos].conn != c || r->members[pos].slot != s) bad++;
      for (size_t t = s + 1; t < c->nrooms; t++)
        if (c->rooms[t].room == r) bad++; /* joined twice */
    }
  }
  return bad;
}

static void test_basics(void) {
  gw_conn_t *a = gw_conn_new(), *b = gw_conn_new();
  CHECK_EQ_INT(gw_room_count(), 0);
  CHECK_EQ_INT(gw_room_size("lobby"), 0);
  CHECK(gw_room_find("lobby") == NULL);
  CHECK(!gw_room_is_member(a, "lobby"));

  CHECK_EQ_INT(gw_room_join(a, "lobby", 10), 0);
  CHECK(gw_room_is_member(a, "lobby"));
  CHECK(!gw_room_is_member(b, "lobby"));
  CHECK_EQ_INT(gw_room_size("lobby"), 1);
  CHECK_EQ_INT(gw_room_count(), 1);
  gw_room_t *r = gw_room_find("lobby");
  if (CHECK(r != NULL)) CHECK_STR(r->name, "lobby");

  /* joining again is a no-op that succeeds */
  CHECK_EQ_INT(gw_room_join(a, "lobby", 10), 0);
  CHECK_EQ_INT(gw_room_size("lobby"), 1);
  CHECK_EQ_INT(a->nrooms, 1);

  CHECK_EQ_INT(gw_room_join(b, "lobby", 10), 0);
  CHECK_EQ_INT(gw_room_size("lobby"), 2);
  CHECK_EQ_INT(gw_room_join(b, "other", 10), 0);
  CHECK_EQ_INT(gw_room_count(), 2);
  gw_conn_t *both[] = {a, b};
  const char *names[] = {"lobby", "other"};
  CHECK_EQ_INT(broken_indexes(both, 2, names, 2), 0);

  /* room names are compared exactly */
  CHECK(!gw_room_is_member(a, "Lobby"));
  CHECK(!gw_room_is_member(a, "lobb"));

  CHECK_EQ_INT(gw_room_leave(a, "lobby"), 0);
  CHECK(!gw_room_is_member(a, "lobby"));
  CHECK_EQ_INT(gw_room_leave(a, "lobby"), GW_ENOENT); /* not a member any more */
  CHECK_EQ_INT(gw_room_leave(a, "nowhere"), GW_ENOENT);
  CHECK_EQ_INT(gw_room_leave(a, "other"), GW_ENOENT); /* exists, but a is not in it */
  CHECK_EQ_INT(gw_room_size("lobby"), 1);
  CHECK_EQ_INT(broken_indexes(both, 2, names, 2), 0);

  /* the last member leaving frees the room */
  CHECK_EQ_INT(gw_room_leave(b, "lobby"), 0);
  CHECK(gw_room_find("lobby") == NULL);
  CHECK_EQ_INT(gw_room_size("lobby"), 0);
  CHECK_EQ_INT(gw_room_count(), 1);

  /* a freed room can be created again */
  CHECK_EQ_INT(gw_room_join(a, "lobby", 10), 0);
  CHECK_EQ_INT(gw_room_size("lobby"), 1);

  gw_room_leave_all(a);
  gw_room_leave_all(b);
  CHECK_EQ_INT(a->nrooms, 0);
  CHECK_EQ_INT(b->nrooms, 0);
  CHECK_EQ_INT(gw_room_count(), 0);
  gw_room_leave_all(a); /* nothing left to leave */
  CHECK_EQ_INT(gw_room_count(), 0);
  gw_conn_free(a);
  gw_conn_free(b);
}

static void test_names(void) {
  gw_conn_t *c = gw_conn_new();
  char name[GW_ROOM_NAME_MAX + 2];
  CHECK_EQ_INT(gw_room_join(c, "", 10), GW_EINVAL);
  memset(name, 'n', GW_ROOM_NAME_MAX);
  name[GW_ROOM_NAME_MAX] = 0;
  CHECK_EQ_INT(gw_room_join(c, name, 10), 0); /* exactly the maximum is fine */
  CHECK_EQ_INT(gw_room_size(name), 1);
  name[GW_ROOM_NAME_MAX] = 'n';
  name[GW_ROOM_NAME_MAX + 1] = 0;
  CHECK_EQ_INT(gw_room_join(c, name, 10), GW_EINVAL);
  CHECK(gw_room_find(name) == NULL);
  CHECK_EQ_INT(c->nrooms, 1);
  CHECK_EQ_INT(gw_room_count(), 1);
  /* any bytes are a valid name: UTF-8, spaces, separators */
  CHECK_EQ_INT(gw_room_join(c, "user:alice", 10), 0);
  CHECK_EQ_INT(gw_room_join(c, "caf\xc3\xa9 room", 10), 0);
  CHECK(gw_room_is_member(c, "caf\xc3\xa9 room"));
  gw_room_leave_all(c);
  CHECK_EQ_INT(gw_room_count(), 0);
  gw_conn_free(c);
}

static void test_max_rooms(void) {
  gw_conn_t *c = gw_conn_new(), *d = gw_conn_new();
  char name[32];
  for (int i = 0; i < 5; i++) {
    snprintf(name, sizeof name, "r%d", i);
    CHECK_EQ_INT(gw_room_join(c, name, 5), 0);
  }
  CHECK_EQ_INT(gw_room_join(c, "r5", 5), GW_ELIMIT);
  CHECK(gw_room_find("r5") == NULL); /* a refused join leaves no empty room behind */
  CHECK_EQ_INT(c->nrooms, 5);
  /* at the limit, a room already joined is still "joined" */
  CHECK_EQ_INT(gw_room_join(c, "r3", 5), 0);
  /* the limit is per connection: d may still join */
  CHECK_EQ_INT(gw_room_join(d, "r5", 5), 0);
  CHECK_EQ_INT(gw_room_join(c, "r5", 5), GW_ELIMIT); /* r5 exists now; still refused */
  CHECK_EQ_INT(gw_room_size("r5"), 1);
  /* leaving one makes room */
  CHECK_EQ_INT(gw_room_leave(c, "r0"), 0);
  CHECK_EQ_INT(gw_room_join(c, "r5", 5), 0);
  CHECK_EQ_INT(gw_room_size("r5"), 2);
  /* a limit of 0 refuses every join */
  gw_conn_t *e = gw_conn_new();
  CHECK_EQ_INT(gw_room_join(e, "r1", 0), GW_ELIMIT);
  gw_room_leave_all(c);
  gw_room_leave_all(d);
  CHECK_EQ_INT(gw_room_count(), 0);
  gw_conn_free(c);
  gw_conn_free(d);
  gw_conn_free(e);
}

/* One connection in many rooms, many connections in one room, and random join/leave
 * sequences, each step checked against a plain membership matrix. */
enum { NC = 12, NR = 40 };

static void check_model(gw_conn_t *const *conns, const char *const *names,
                        unsigned char model[NC][NR], int *bad) {
  size_t nonempty = 0;
  for (int r = 0; r < NR; r++) {
    size_t n = 0;
    for (int c = 0; c < NC; c++) {
      n += model[c][r];
      if (gw_room_is_member(conns[c], names[r]) != model[c][r]) (*bad)++;
    }
    if (gw_room_size(names[r]) != n) (*bad)++;
    if ((gw_room_find(names[r]) != NULL) != (n > 0)) (*bad)++;
    nonempty += n > 0;
  }
  if (gw_room_count() != nonempty) (*bad)++;
  for (int c = 0; c < NC; c++) {
    size_t n = 0;
    for (int r = 0; r < NR; r++) n += model[c][r];
    if (conns[c]->nrooms != n) (*bad)++;
  }
  *bad += broken_indexes(conns, NC, names, NR);
}

static void test_random(void) {
  gw_conn_t *conns[NC];
  char namebuf[NR][16];
  const char *names[NR];
  static unsigned char model[NC][NR];
  memset(model, 0, sizeof model);
  for (int c = 0; c < NC; c++) conns[c] = gw_conn_new();
  for (int r = 0; r < NR; r++) {
    snprintf(namebuf[r], sizeof namebuf[r], "room-%d", r);
    names[r] = namebuf[r];
  }
  int bad = 0;

  /* one connection in every room, then out of them in an interleaved order */
  for (int r = 0; r < NR; r++) {
    if (gw_room_join(conns[0], names[r], NO_LIMIT)) bad++;
    model[0][r] = 1;
  }
  check_model(conns, names, model, &bad);
  for (int r = 0; r < NR; r += 2) {
    if (gw_room_leave(conns[0], names[r])) bad++;
    model[0][r] = 0;
    check_model(conns, names, model, &bad);
  }
  /* every connection in one room, then the middle ones leave */
  for (int c = 0; c < NC; c++) {
    if (gw_room_join(conns[c], names[1], NO_LIMIT)) bad++;
    model[c][1] = 1;
  }
  check_model(conns, names, model, &bad);
  for (int c = 3; c < 9; c++) {
    if (gw_room_leave(conns[c], names[1])) bad++;
    model[c][1] = 0;
    check_model(conns, names, model, &bad);
  }
  CHECK_EQ_INT(bad, 0);

  srand(20240611);
  int joins = 0, leaves = 0, leave_alls = 0;
  for (int step = 0; step < 6000; step++) {
    int c = rand() % NC, r = rand() % NR, op = rand() % 100;
    if (op < 55) {
      if (gw_room_join(conns[c], names[r], NO_LIMIT) != 0) bad++;
      model[c][r] = 1;
      joins++;
    } else if (op < 99) {
      int rc = gw_room_leave(conns[c], names[r]);
      if (rc != (model[c][r] ? 0 : GW_ENOENT)) bad++;
      model[c][r] = 0;
      leaves++;
    } else {
      gw_room_leave_all(conns[c]);
      memset(model[c], 0, sizeof model[c]);
      leave_alls++;
    }
    check_model(conns, names, model, &bad);
  }
  CHECK_EQ_INT(bad, 0);
  CHECK(joins > 0 && leaves > 0 && leave_alls > 0);

  for (int c = 0; c < NC; c++) {
    gw_room_leave_all(conns[c]);
    memset(model[c], 0, sizeof model[c]);
    check_model(conns, names, model, &bad);
  }
  CHECK_EQ_INT(bad, 0);
  CHECK_EQ_INT(gw_room_count(), 0);
  for (int c = 0; c < NC; c++) gw_conn_free(conns[c]);
}

static void test_conn_table(void) {
  size_t before = gw_conn_count();
  enum { N = 50 };
  gw_conn_t *cs[N];
  int increasing = 1;
  for (int i = 0; i < N; i++) {
    cs[i] = gw_conn_new();
    if (i && cs[i]->id <= cs[i - 1]->id) increasing = 0;
  }
  CHECK(increasing);
  CHECK(cs[0]->id >= 1); /* 0 is never an id */
  CHECK_EQ_INT(gw_conn_count(), before + N);
  int found = 0;
  for (int i = 0; i < N; i++) found += gw_conn_find(cs[i]->id) == cs[i];
  CHECK_EQ_INT(found, N);
  CHECK(gw_conn_find(0) == NULL);
  CHECK(gw_conn_find(cs[N - 1]->id + 1000) == NULL);

  /* iteration sees every connection once */
  int seen = 0;
  for (gw_conn_t *c = gw_conn_first(); c; c = c->hh.next) seen++;
  CHECK_EQ_INT(seen, (int)(before + N));

  /* a fresh connection starts empty */
  CHECK(cs[0]->user == NULL);
  CHECK(cs[0]->attrs == NULL);
  CHECK_EQ_INT(cs[0]->nrooms, 0);

  /* ids are never reused once freed */
  uint64_t last = cs[N - 1]->id, freed = cs[10]->id;
  gw_conn_free(cs[10]);
  CHECK(gw_conn_find(freed) == NULL);
  CHECK_EQ_INT(gw_conn_count(), before + N - 1);
  cs[10] = gw_conn_new();
  CHECK(cs[10]->id > last);
  CHECK(cs[10]->id != freed);
  CHECK(gw_conn_find(cs[10]->id) == cs[10]);

  gw_conn_free(NULL); /* a no-op */
  for (int i = 0; i < N; i++) gw_conn_free(cs[i]);
  CHECK_EQ_INT(gw_conn_count(), before);

  CHECK_STR(gw_proto_name(GW_PROTO_WS), "ws");
  CHECK_STR(gw_proto_name(GW_PROTO_SOCKETIO), "socketio");
}

static void test_conn_free_releases(void) {
  /* a connection freed with its identity and attributes gives them back (LSan checks); its
   * send queue is its protocol's (net/server.c frees it when the connection closes) */
  gw_conn_t *c = gw_conn_new();
  CHECK_EQ_INT(gw_conn_set_user(c, "alice"), 0);
  CHECK_EQ_INT(gw_conn_attr_set(c, "k", "v"), 0);
  gw_conn_free(c);
}

static void test_attrs(void) {
  gw_conn_t *c = gw_conn_new();
  CHECK(gw_conn_attr_get(c, "lang") == NULL);
  CHECK_EQ_INT(gw_conn_attr_set(c, "lang", "fr"), 0);
  CHECK_STR(gw_conn_attr_get(c, "lang"), "fr");
  /* values are copied */
  char v[8] = "blue";
  CHECK_EQ_INT(gw_conn_attr_set(c, "color", v), 0);
  strcpy(v, "red");
  CHECK_STR(gw_conn_attr_get(c, "color"), "blue");
  /* keys are copied too */
  char k[8] = "tmpkey";
  CHECK_EQ_INT(gw_conn_attr_set(c, k, "1"), 0);
  strcpy(k, "zzzzzz");
  CHECK_STR(gw_conn_attr_get(c, "tmpkey"), "1");
  /* overwrite keeps one entry */
  CHECK_EQ_INT(gw_conn_attr_set(c, "lang", "de"), 0);
  CHECK_STR(gw_conn_attr_get(c, "lang"), "de");
  CHECK_EQ_INT(HASH_COUNT(c->attrs), 3);
  /* empty values are values */
  CHECK_EQ_INT(gw_conn_attr_set(c, "empty", ""), 0);
  CHECK_STR(gw_conn_attr_get(c, "empty"), "");
  /* NULL removes; removing what is not there is fine */
  CHECK_EQ_INT(gw_conn_attr_set(c, "lang", NULL), 0);
  CHECK(gw_conn_attr_get(c, "lang") == NULL);
  CHECK_EQ_INT(gw_conn_attr_set(c, "lang", NULL), 0);
  CHECK_EQ_INT(gw_conn_attr_set(c, "never", NULL), 0);
  CHECK_STR(gw_conn_attr_get(c, "color"), "blue");
  CHECK_EQ_INT(HASH_COUNT(c->attrs), 3);
  /* set again after removal */
  CHECK_EQ_INT(gw_conn_attr_set(c, "lang", "it"), 0);
  CHECK_STR(gw_conn_attr_get(c, "lang"), "it");

  /* attributes belong to one connection */
  gw_conn_t *d = gw_conn_new();
  CHECK(gw_conn_attr_get(d, "lang") == NULL);

  /* the user: copied, replaceable */
  char u[8] = "alice";
  CHECK_EQ_INT(gw_conn_set_user(c, u), 0);
  strcpy(u, "mallory");
  CHECK_STR(c->user, "alice");
  CHECK_EQ_INT(gw_conn_set_user(c, "bob"), 0);
  CHECK_STR(c->user, "bob");
  gw_conn_free(c);
  gw_conn_free(d);
}

int main(void) {
  test_basics();
  test_names();
  test_max_rooms();
  test_random();
  test_conn_table();
  test_conn_free_releases();
  test_attrs();
  CHECK_EQ_INT(gw_room_count(), 0);
  CHECK_EQ_INT(gw_conn_count(), 0);
  return check_done();
}
