#define _GNU_SOURCE /* memmem */
#include "node.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <uthash.h>

#include "errors.h"
#include "log.h"
#include "replay_codec.h"
#include "room.h"
#include "settings.h"

typedef struct chan {
  char *name;
  UT_hash_handle hh;
} chan_t;

/* One gw_node_publish under way; nested when a delivery publishes again. */
typedef struct frame {
  const gw_publication_t *pub;
  int got;          /* the broker delivered it back during publish */
  size_t delivered; /* local members reached */
  struct frame *up;
} frame_t;

static struct {
  int ready;
  gw_broker_t broker;
  const gw_history_t *history;
  gw_node_delivery_t delivery;
  uint64_t id;
  void (*wake)(void *ud);
  void *wake_ud;
  frame_t *publishing;
  chan_t *subscribed; /* at the broker */
  chan_t *pending;    /* rooms whose first or last member changed since the last flush */
  int resubscribe;    /* the broker came back up: subscribe everything again */
  int broker_up;
  int presence; /* config.presence: the broker has every member; else the rooms answer */
  gw_node_stats_t st;
} N;

static uint64_t random_id(void) {
  uint64_t r = 0;
  unsigned char *p = (unsigned char *)&r;
  size_t left = sizeof r;
  while (left) {
    ssize_t got = getrandom(p, left, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      struct timespec ts; /* never reached on Linux >= 3.17 */
      clock_gettime(CLOCK_REALTIME, &ts);
      r = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 16);
      break;
    }
    p += got;
    left -= (size_t)got;
  }
  return r ? r : 1;
}

/* ---- delivery -------------------------------------------------------------------------- */

/* A control publication (gw_node_disconnect): its members are closed, not sent to. The data
 * is what gw_node_disconnect wrote, {"code":C,"reason":"R"} with R free of escapes; anything
 * else closes with 4000 and a generic reason. */
static size_t close_members(const gw_publication_t *pub) {
  int code = 4000;
  char reason[GW_NODE_REASON_MAX + 1] = "disconnected by an operator";
  const char *d = pub->data;
  size_t dl = pub->data_len;
  if (d && dl > 10 && dl < 200 && memcmp(d, "{\"code\":", 8) == 0) {
    int c = atoi(d + 8);
    if (c == 1000 || (c >= 3000 && c <= 4999)) code = c;
    const char *r = memmem(d, dl, ",\"reason\":\"", 11);
    if (r) {
      r += 11;
      const char *e = memchr(r, '"', (size_t)(d + dl - r));
      size_t n = e ? (size_t)(e - r) : 0;
      if (e && n <= GW_NODE_REASON_MAX) {
        memcpy(reason, r, n);
        reason[n] = 0;
      }
    }
  }
  gw_room_t *room = gw_room_find(pub->channel);
  size_t closed = 0;
  for (size_t i = 0; room && i < room->n; i++) {
    gw_conn_t *c = room->members[i].conn;
    if (c->close_code) continue;
    gw_conn_close(c, code, reason);
    closed++;
  }
  return closed;
}

static int is_control(const gw_publication_t *pub) {
  return pub->event_len == sizeof GW_NODE_EVENT_DISCONNECT - 1 &&
         memcmp(pub->event, GW_NODE_EVENT_DISCONNECT, pub->event_len) == 0;
}

static size_t deliver_local(const gw_publication_t *pub) {
  if (is_control(pub)) return close_members(pub);
  size_t n = N.delivery.deliver(N.delivery.ud, pub->channel, pub);
  N.st.delivered += n;
  return n;
}

/* The broker's delivery of the publication under way, rather than an echo that happens to
 * arrive meanwhile: the same channel, event and data length. */
static int is_current(const frame_t *f, const gw_publication_t *pub) {
  const gw_publication_t *c = f->pub;
  return !f->got && strcmp(c->channel, pub->channel) == 0 && c->event_len == pub->event_len &&
         memcmp(c->event, pub->event, pub->event_len) == 0 && c->data_len == pub->data_len;
}

static void on_publication(void *ud, const gw_publication_t *pub) {
  (void)ud;
  if (!N.ready || !pub || !pub->channel || !pub->event) return;
  if (pub->origin == N.id) {
    frame_t *f = N.publishing;
    if (!f || !is_current(f, pub)) {
      N.st.echoes_dropped++; /* delivered locally when it was published */
      return;
    }
    f->got = 1;
    f->delivered = deliver_local(pub);
    return;
  }
  /* another node's: its except_conn names a connection of that node, not one of ours */
  gw_publication_t copy = *pub;
  copy.except_conn = 0;
  N.st.remote++;
  deliver_local(&copy);
}

static void on_state(void *ud, int up) {
  (void)ud;
  if (up && !N.broker_up && N.subscribed) {
    N.resubscribe = 1; /* whatever the transport forgot while it was down */
    if (!N.pending && N.wake) N.wake(N.wake_ud);
  }
  if (N.broker_up != !!up) gw_info("broker %s: %s", N.broker.name ? N.broker.name : "?", up ? "up" : "down");
  N.broker_up = !!up;
}

static int publish(const char *room, const char *event, size_t evlen, const char *json,
                   size_t jlen, uint64_t except_id, const gw_stream_pos_t *pos, size_t *delivered);

/* A publication kept for replay, waiting for the store to give it a position (a Redis
 * round trip; the memory store answers at once). Publications of one channel stay in
 * order: one store connection answers in the order asked. */
typedef struct kept {
  gw_node_published_cb cb; /* optional: told once the store answered and it went out */
  void *cb_ud;
  uint64_t except_id;
  size_t evlen, jlen, delivered;
  int has_json, in_call, done, rc;
  char *event, *json;
  char room[];
} kept_t;

static void on_kept(void *ud, int status, const gw_stream_pos_t *pos) {
  kept_t *k = ud;
  if (status) {
    N.st.keep_failed++; /* delivered live all the same, without a position */
    /* the 1st, 2nd, 4th, 8th... failure: a Redis outage must not flood the log (the metric counts each) */
    if ((N.st.keep_failed & (N.st.keep_failed - 1)) == 0)
      gw_warn("node: a message to %s was not kept for replay (%s); delivered live only (%llu so far, "
              "aivo_replay_store_failed_total)", k->room, gw_strerror(status), (unsigned long long)N.st.keep_failed);
  } else {
    N.st.kept++;
  }
  k->rc = publish(k->room, k->event, k->evlen, k->has_json ? k->json : NULL, k->jlen, k->except_id,
                  status ? NULL : pos, &k->delivered);
  k->done = 1;
  if (k->cb) k->cb(k->cb_ud, k->rc, status ? NULL : pos, k->delivered);
  if (!k->in_call) free(k);
}

/* Live only (not kept, or the store refused): published now, cb told at once. */
static int publish_live(const char *room, const char *event, size_t evlen, const char *json, size_t jlen,
                        uint64_t except_id, size_t *delivered, gw_node_published_cb cb, void *cb_ud) {
  size_t n = 0;
  int rc = publish(room, event, evlen, json, jlen, except_id, NULL, &n);
  if (delivered) *delivered = n;
  if (cb && rc != GW_EINVAL) cb(cb_ud, rc, NULL, n);
  return rc == GW_EINVAL ? rc : cb ? 0 : rc;
}

static int keep_and_publish(const gw_replay_rule_t *rule, const char *room, const char *event, size_t evlen,
                            const char *json, size_t jlen, uint64_t except_id, size_t *delivered,
                            gw_node_published_cb cb, void *cb_ud) {
  size_t rlen = strlen(room);
  size_t plen;
  char *payload = gw_replay_encode(event, evlen, json, jlen, &plen);
  kept_t *k = payload ? malloc(sizeof *k + rlen + 1 + evlen + jlen + 2) : NULL;
  const gw_settings_t *s = gw_settings();
  if (!k || plen > s->history.max_message_bytes) { /* too large to keep (or no memory): live only */
    free(payload);
    free(k);
    N.st.keep_failed++;
    return publish_live(room, event, evlen, json, jlen, except_id, delivered, cb, cb_ud);
  }
  memset(k, 0, sizeof *k);
  memcpy(k->room, room, rlen + 1);
  k->event = k->room + rlen + 1;
  memcpy(k->event, event, evlen);
  k->event[evlen] = 0;
  k->json = k->event + evlen + 1;
  if (jlen) memcpy(k->json, json, jlen);
  k->json[jlen] = 0;
  k->evlen = evlen;
  k->jlen = jlen;
  k->has_json = json != NULL;
  k->except_id = except_id;
  k->cb = cb;
  k->cb_ud = cb_ud;
  gw_history_append_opts_t opts = {rule->size, rule->ttl_ms};
  k->in_call = 1;
  int rc = gw_history_append(N.history, room, payload, plen, &opts, on_kept, k);
  free(payload);
  k->in_call = 0;
  if (rc < 0) { /* refused before it started (too many in flight, no memory): live only */
    free(k);
    N.st.keep_failed++;
    return publish_live(room, event, evlen, json, jlen, except_id, delivered, cb, cb_ud);
  }
  if (!k->done) return 0; /* delivered when the store answers */
  if (delivered) *delivered = k->delivered;
  rc = cb ? 0 : k->rc;
  free(k);
  return rc;
}

static int node_publish(const char *room, const char *event, size_t evlen, const char *json, size_t jlen,
                        uint64_t except_id, size_t *delivered, gw_node_published_cb cb, void *cb_ud) {
  if (delivered) *delivered = 0;
  /* the reserved prefix: a policy relaying client-chosen event names cannot forge control */
  if (event && evlen >= sizeof GW_NODE_RESERVED_PREFIX - 1 &&
      memcmp(event, GW_NODE_RESERVED_PREFIX, sizeof GW_NODE_RESERVED_PREFIX - 1) == 0)
    return GW_EINVAL;
  const gw_settings_t *s = gw_settings();
  const gw_replay_rule_t *rule = N.ready && N.history && s && room && event &&
                                         strnlen(room, GW_BROKER_CHANNEL_MAX + 1) <= GW_BROKER_CHANNEL_MAX
                                     ? gw_replay_match(s->replay, s->n_replay, room, event, evlen)
                                     : NULL;
  if (rule) return keep_and_publish(rule, room, event, evlen, json, jlen, except_id, delivered, cb, cb_ud);
  return publish_live(room, event, evlen, json, jlen, except_id, delivered, cb, cb_ud);
}

int gw_node_publish(const char *room, const char *event, size_t evlen, const char *json,
                    size_t jlen, uint64_t except_id, size_t *delivered) {
  return node_publish(room, event, evlen, json, jlen, except_id, delivered, NULL, NULL);
}

int gw_node_publish_then(const char *room, const char *event, size_t evlen, const char *json, size_t jlen,
                         uint64_t except_id, gw_node_published_cb cb, void *cb_ud) {
  if (!cb) return GW_EINVAL;
  return node_publish(room, event, evlen, json, jlen, except_id, NULL, cb, cb_ud);
}

int gw_node_disconnect(const char *room, int code, const char *reason, size_t *closed) {
  char data[64 + GW_NODE_REASON_MAX], clean[GW_NODE_REASON_MAX + 1];
  size_t n = 0;
  for (const char *r = reason ? reason : ""; *r && n < GW_NODE_REASON_MAX; r++) /* no escapes to undo */
    clean[n++] = (*r >= 0x20 && *r < 0x7f && *r != '"' && *r != '\\') ? *r : '?';
  clean[n] = 0;
  int len = snprintf(data, sizeof data, "{\"code\":%d,\"reason\":\"%s\"}", code, clean);
  return publish(room, GW_NODE_EVENT_DISCONNECT, sizeof GW_NODE_EVENT_DISCONNECT - 1, data, (size_t)len, 0, NULL,
                 closed);
}

static int publish(const char *room, const char *event, size_t evlen, const char *json,
                   size_t jlen, uint64_t except_id, const gw_stream_pos_t *pos, size_t *delivered) {
  if (delivered) *delivered = 0;
  if (!N.ready) return GW_EINVAL;
  size_t rlen = room ? strnlen(room, GW_BROKER_CHANNEL_MAX + 1) : 0;
  if (rlen == 0 || rlen > GW_BROKER_CHANNEL_MAX || !event || (!json && jlen)) return GW_EINVAL;
  gw_publication_t pub = {
      .origin = N.id,
      .channel = room,
      .event = event,
      .event_len = evlen,
      .data = json,
      .data_len = jlen,
      .except_conn = except_id,
  };
  if (pos) {
    pub.has_position = 1;
    pub.position = *pos;
  }
  frame_t f = {.pub = &pub, .up = N.publishing};
  N.publishing = &f;
  int rc = N.broker.publish(N.broker.ud, &pub);
  N.publishing = f.up;
  if (rc == GW_EINVAL) return rc;
  N.st.published++;
  if (!f.got) f.delivered = deliver_local(&pub); /* the broker did not hand it back */
  if (delivered) *delivered = f.delivered;
  return rc;
}

/* ---- subscriptions --------------------------------------------------------------------- */

static chan_t *find(chan_t *set, const char *name) {
  chan_t *c;
  HASH_FIND_STR(set, name, c);
  return c;
}

static void chan_free(chan_t *c) {
  free(c->name);
  free(c);
}

static void mark_pending(const char *name) {
  if (find(N.pending, name)) return;
  chan_t *c = calloc(1, sizeof *c);
  if (!c || !(c->name = strdup(name))) {
    free(c);
    /* the room's subscription will be wrong until it changes again */
    gw_error("node: out of memory recording a subscription change of room %s", name);
    return;
  }
  int was_empty = N.pending == NULL && !N.resubscribe;
  HASH_ADD_KEYPTR(hh, N.pending, c->name, strlen(c->name), c);
  if (was_empty && N.wake) N.wake(N.wake_ud);
}

static void on_first_member(void *ud, const char *name) {
  (void)ud;
  mark_pending(name);
}

static void on_last_member(void *ud, const char *name) {
  (void)ud;
  mark_pending(name);
}

/* presence (config.presence): every member of every room, with its identity */
static void on_joined(void *ud, const char *name, const gw_conn_t *c) {
  (void)ud;
  int rc = N.broker.presence_add ? N.broker.presence_add(N.broker.ud, name, c->id, c->user) : 0;
  if (rc && rc != GW_EUNAVAIL) gw_debug("node: presence of %llu in %s not recorded (%s)", (unsigned long long)c->id, name, gw_strerror(rc));
}

static void on_left(void *ud, const char *name, const gw_conn_t *c) {
  (void)ud;
  if (N.broker.presence_remove) N.broker.presence_remove(N.broker.ud, name, c->id);
}

int gw_node_flush(void) {
  if (!N.ready || (!N.pending && !N.resubscribe)) return 0;
  size_t cap = HASH_COUNT(N.pending) + (N.resubscribe ? HASH_COUNT(N.subscribed) : 0);
  if (cap == 0) { /* up again with nothing subscribed */
    N.resubscribe = 0;
    return 0;
  }
  const char **subs = malloc(cap * sizeof *subs), **unsubs = malloc(cap * sizeof *unsubs);
  chan_t **sub_from = malloc(cap * sizeof *sub_from);
  if (!subs || !unsubs || !sub_from) {
    free(subs), free(unsubs), free(sub_from);
    return GW_ENOMEM;
  }
  size_t ns = 0, nu = 0;
  chan_t *c, *tmp;
  HASH_ITER(hh, N.pending, c, tmp) {
    int want = gw_room_find(c->name) != NULL, have = find(N.subscribed, c->name) != NULL;
    if (want && !have) {
      sub_from[ns] = c;
      subs[ns++] = c->name;
    } else if (!want && have) {
      unsubs[nu++] = c->name;
    } else { /* joined and left (or the reverse) within one pass: nothing to tell */
      HASH_DEL(N.pending, c);
      chan_free(c);
    }
  }
  if (N.resubscribe) {
    HASH_ITER(hh, N.subscribed, c, tmp) {
      if (!gw_room_find(c->name)) continue; /* pending already: unsubscribed below */
      sub_from[ns] = NULL;
      subs[ns++] = c->name;
    }
  }

  int rc = 0, r;
  if (ns && (r = N.broker.subscribe(N.broker.ud, subs, ns)) != 0) {
    rc = r;
  } else if (ns) {
    N.st.subscribes += ns;
    N.resubscribe = 0;
    for (size_t i = 0; i < ns; i++) {
      if (!(c = sub_from[i])) continue; /* a resubscription: in the set already */
      HASH_DEL(N.pending, c);
      HASH_ADD_KEYPTR(hh, N.subscribed, c->name, strlen(c->name), c);
    }
  } else {
    N.resubscribe = 0;
  }
  if (nu && (r = N.broker.unsubscribe(N.broker.ud, unsubs, nu)) != 0) {
    if (!rc) rc = r;
  } else if (nu) {
    N.st.unsubscribes += nu;
    for (size_t i = 0; i < nu; i++) {
      chan_t *p = find(N.pending, unsubs[i]), *s = find(N.subscribed, unsubs[i]);
      HASH_DEL(N.subscribed, s);
      chan_free(s);
      HASH_DEL(N.pending, p);
      chan_free(p);
    }
  }
  free(subs), free(unsubs), free(sub_from);
  if (rc) {
    N.st.flush_errors++;
    gw_warn("node: the %s broker refused a subscription change (%s); retrying at the next pass",
            N.broker.name ? N.broker.name : "?", gw_strerror(rc));
  }
  return rc;
}

int gw_node_subscribed(const char *room) { return room && find(N.subscribed, room) != NULL; }

/* ---- presence, history, state ---------------------------------------------------------- */

/* A broker without presence (a test double) refuses with GW_EINVAL rather than crashing. */
int gw_node_presence_add(const char *room, uint64_t conn_id, const char *user) {
  if (!N.ready || !N.broker.presence_add) return GW_EINVAL;
  return N.broker.presence_add(N.broker.ud, room, conn_id, user);
}

int gw_node_presence_remove(const char *room, uint64_t conn_id) {
  if (!N.ready || !N.broker.presence_remove) return GW_EINVAL;
  return N.broker.presence_remove(N.broker.ud, room, conn_id);
}

/* Alone (no presence at the broker): this node's room is the whole answer. */
static void room_presence(const char *room, size_t max, gw_presence_entry_t *e, size_t *n, size_t *total) {
  gw_room_t *r = gw_room_find(room);
  *total = r ? r->n : 0;
  *n = 0;
  for (size_t i = 0; r && i < r->n && *n < max; i++)
    e[(*n)++] = (gw_presence_entry_t){N.id, r->members[i].conn->id, r->members[i].conn->user};
}

/* NULLs sort first and are not counted */
static int str_cmp(const void *a, const void *b) {
  const char *x = *(const char *const *)a, *y = *(const char *const *)b;
  return !x || !y ? (x != NULL) - (y != NULL) : strcmp(x, y);
}

size_t gw_node_count_distinct(const char **users, size_t n) {
  if (n > 1) qsort(users, n, sizeof *users, str_cmp);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) k += users[i] && (i == 0 || !users[i - 1] || strcmp(users[i], users[i - 1]) != 0);
  return k;
}

int gw_node_presence_count(const char *room, gw_presence_cb cb, void *cb_ud) {
  if (!N.ready || !room || !cb) return GW_EINVAL;
  if (N.presence) return N.broker.presence_count ? N.broker.presence_count(N.broker.ud, room, cb, cb_ud) : GW_EINVAL;
  gw_room_t *r = gw_room_find(room);
  size_t n = r ? r->n : 0;
  const char **u = n ? malloc(n * sizeof *u) : NULL;
  if (n && !u) return GW_ENOMEM;
  for (size_t i = 0; i < n; i++) u[i] = r->members[i].conn->user;
  size_t users = gw_node_count_distinct(u, n);
  free(u);
  cb(cb_ud, 0, n, users);
  return 0;
}

/* A broker's list with node 0 (the local broker) made this node's id. */
typedef struct list_req {
  gw_presence_list_cb cb;
  void *ud;
} list_req_t;

static void on_list(void *ud, int status, const gw_presence_entry_t *e, size_t n, int more) {
  list_req_t *q = ud;
  gw_presence_entry_t *own = NULL;
  for (size_t i = 0; i < n && !own; i++)
    if (e[i].node == 0 && (own = malloc(n * sizeof *own))) {
      memcpy(own, e, n * sizeof *own);
      for (size_t j = 0; j < n; j++)
        if (!own[j].node) own[j].node = N.id;
    }
  q->cb(q->ud, status, own ? own : e, n, more);
  free(own);
  free(q);
}

int gw_node_presence_list(const char *room, size_t max, gw_presence_list_cb cb, void *cb_ud) {
  if (!N.ready || !room || !*room || !cb || max == 0) return GW_EINVAL;
  if (max > GW_BROKER_PRESENCE_LIST_MAX) max = GW_BROKER_PRESENCE_LIST_MAX;
  if (!N.presence) {
    gw_room_t *r = gw_room_find(room);
    size_t cap = r ? (r->n < max ? r->n : max) : 0, n, total;
    gw_presence_entry_t *e = cap ? malloc(cap * sizeof *e) : NULL;
    if (cap && !e) return GW_ENOMEM;
    room_presence(room, cap, e, &n, &total);
    cb(cb_ud, 0, e, n, n < total);
    free(e);
    return 0;
  }
  if (!N.broker.presence_list) return GW_EINVAL;
  list_req_t *q = malloc(sizeof *q);
  if (!q) return GW_ENOMEM;
  *q = (list_req_t){cb, cb_ud};
  int rc = N.broker.presence_list(N.broker.ud, room, max, on_list, q);
  if (rc < 0) free(q);
  return rc;
}

const gw_history_t *gw_node_history(void) { return N.history; }

uint64_t gw_node_id(void) { return N.id; }

void gw_node_stats(gw_node_stats_t *out) {
  *out = N.st;
  out->subscribed = HASH_COUNT(N.subscribed);
  out->pending = HASH_COUNT(N.pending);
  out->broker_up = N.broker_up;
}

int gw_node_init(const gw_node_config_t *cfg) {
  const gw_broker_t *b = cfg ? cfg->broker : NULL;
  if (N.ready || !b || !b->publish || !b->set_handler || !b->subscribe || !b->unsubscribe ||
      !cfg->delivery.deliver)
    return GW_EINVAL;
  memset(&N, 0, sizeof N);
  N.broker = *cfg->broker;
  N.history = cfg->history;
  N.delivery = cfg->delivery;
  N.id = cfg->id ? cfg->id : random_id();
  N.wake = cfg->wake;
  N.wake_ud = cfg->wake_ud;
  N.presence = cfg->presence;
  N.ready = 1;
  gw_room_observer_t o = {.first_member = on_first_member, .last_member = on_last_member};
  if (cfg->presence) {
    o.joined = on_joined;
    o.left = on_left;
  }
  gw_room_set_observer(&o);
  gw_broker_handler_t h = {.on_publication = on_publication, .on_state = on_state};
  int rc = N.broker.set_handler(N.broker.ud, &h);
  if (rc) {
    gw_room_set_observer(NULL);
    memset(&N, 0, sizeof N);
  }
  return rc;
}

void gw_node_close(void) {
  if (!N.ready) return;
  gw_room_set_observer(NULL);
  N.broker.set_handler(N.broker.ud, NULL);
  chan_t *c, *tmp;
  HASH_ITER(hh, N.pending, c, tmp) {
    HASH_DEL(N.pending, c);
    chan_free(c);
  }
  HASH_ITER(hh, N.subscribed, c, tmp) {
    HASH_DEL(N.subscribed, c);
    chan_free(c);
  }
  memset(&N, 0, sizeof N);
}
