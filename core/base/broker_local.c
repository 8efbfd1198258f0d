#include "broker_local.h"

#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#include "errors.h"

typedef struct sub {
  char *channel;
  UT_hash_handle hh;
} sub_t;

typedef struct pclient {
  uint64_t id;
  char *user; /* NULL: anonymous */
  UT_hash_handle hh;
} pclient_t;

typedef struct puser {
  char *user;
  size_t refs; /* clients of this user present */
  UT_hash_handle hh;
} puser_t;

typedef struct pchan {
  char *channel;
  pclient_t *clients;
  puser_t *users;
  UT_hash_handle hh;
} pchan_t;

struct gw_broker_local {
  gw_broker_t table;
  gw_broker_handler_t handler;
  int has_handler;
  sub_t *subs;
  pchan_t *presence;
  gw_broker_local_stats_t st;
};

static int check_channel(const char *channel) {
  if (!channel) return GW_EINVAL;
  size_t len = strnlen(channel, GW_BROKER_CHANNEL_MAX + 1);
  return len == 0 || len > GW_BROKER_CHANNEL_MAX ? GW_EINVAL : 0;
}

static int local_set_handler(void *ud, const gw_broker_handler_t *h) {
  gw_broker_local_t *b = ud;
  if (h && !h->on_publication) return GW_EINVAL;
  b->has_handler = h != NULL;
  if (h) b->handler = *h;
  else memset(&b->handler, 0, sizeof b->handler);
  if (h && h->on_state) h->on_state(h->ud, 1); /* always up */
  return 0;
}

static int local_publish(void *ud, const gw_publication_t *pub) {
  gw_broker_local_t *b = ud;
  if (!pub || check_channel(pub->channel) || !pub->event || (!pub->data && pub->data_len))
    return GW_EINVAL;
  b->st.published++;
  if (!b->has_handler) return 0;
  b->st.delivered++;
  /* copied first: the handler may unregister itself or close the broker */
  gw_broker_handler_t h = b->handler;
  h.on_publication(h.ud, pub);
  return 0;
}

static int check_batch(const char *const *channels, size_t n) {
  if (!channels && n) return GW_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (check_channel(channels[i])) return GW_EINVAL;
  return 0;
}

/* Any invalid name refuses the whole batch before anything changes. On GW_ENOMEM the
 * channels before the failing one are subscribed (subscribing again is harmless). */
static int local_subscribe(void *ud, const char *const *channels, size_t n) {
  gw_broker_local_t *b = ud;
  if (check_batch(channels, n)) return GW_EINVAL;
  for (size_t i = 0; i < n; i++) {
    sub_t *s;
    HASH_FIND_STR(b->subs, channels[i], s);
    if (s) continue;
    s = calloc(1, sizeof *s);
    if (!s || !(s->channel = strdup(channels[i]))) {
      free(s);
      return GW_ENOMEM;
    }
    HASH_ADD_KEYPTR(hh, b->subs, s->channel, strlen(s->channel), s);
    b->st.subscribes++;
  }
  return 0;
}

static int local_unsubscribe(void *ud, const char *const *channels, size_t n) {
  gw_broker_local_t *b = ud;
  if (check_batch(channels, n)) return GW_EINVAL;
  for (size_t i = 0; i < n; i++) {
    sub_t *s;
    HASH_FIND_STR(b->subs, channels[i], s);
    if (!s) continue;
    HASH_DEL(b->subs, s);
    free(s->channel);
    free(s);
    b->st.unsubscribes++;
  }
  return 0;
}

/* ---- presence -------------------------------------------------------------------------- */

static pchan_t *pchan_find(const gw_broker_local_t *b, const char *channel) {
  pchan_t *p;
  HASH_FIND_STR(b->presence, channel, p);
  return p;
}

static void user_unref(pchan_t *p, const char *user) {
  if (!user) return;
  puser_t *u;
  HASH_FIND_STR(p->users, user, u);
  if (!u || --u->refs) return;
  HASH_DEL(p->users, u);
  free(u->user);
  free(u);
}

static int user_ref(pchan_t *p, const char *user) {
  if (!user) return 0;
  puser_t *u;
  HASH_FIND_STR(p->users, user, u);
  if (u) {
    u->refs++;
    return 0;
  }
  u = calloc(1, sizeof *u);
  if (!u || !(u->user = strdup(user))) {
    free(u);
    return GW_ENOMEM;
  }
  u->refs = 1;
  HASH_ADD_KEYPTR(hh, p->users, u->user, strlen(u->user), u);
  return 0;
}

static void pchan_free_if_empty(gw_broker_local_t *b, pchan_t *p) {
  if (p->clients) return;
  HASH_DEL(b->presence, p);
  free(p->channel);
  free(p);
}

static int local_presence_add(void *ud, const char *channel, uint64_t client, const char *user) {
  gw_broker_local_t *b = ud;
  if (check_channel(channel) || client == 0) return GW_EINVAL;
  pchan_t *p = pchan_find(b, channel);
  if (!p) {
    p = calloc(1, sizeof *p);
    if (!p || !(p->channel = strdup(channel))) {
      free(p);
      return GW_ENOMEM;
    }
    HASH_ADD_KEYPTR(hh, b->presence, p->channel, strlen(p->channel), p);
  }
  pclient_t *c;
  HASH_FIND(hh, p->clients, &client, sizeof client, c);
  int isnew = c == NULL;
  if (isnew && !(c = calloc(1, sizeof *c))) goto nomem;
  char *copy = user ? strdup(user) : NULL;
  if (user && !copy) goto nomem;
  if (user_ref(p, user)) {
    free(copy);
    goto nomem;
  }
  if (isnew) {
    c->id = client;
    HASH_ADD(hh, p->clients, id, sizeof c->id, c);
  } else { /* replaces the user */
    user_unref(p, c->user);
    free(c->user);
  }
  c->user = copy;
  return 0;
nomem:
  if (isnew) free(c);
  pchan_free_if_empty(b, p);
  return GW_ENOMEM;
}

static int local_presence_remove(void *ud, const char *channel, uint64_t client) {
  gw_broker_local_t *b = ud;
  if (check_channel(channel)) return GW_EINVAL;
  pchan_t *p = pchan_find(b, channel);
  pclient_t *c = NULL;
  if (p) HASH_FIND(hh, p->clients, &client, sizeof client, c);
  if (!c) return GW_ENOENT;
  HASH_DEL(p->clients, c);
  user_unref(p, c->user);
  free(c->user);
  free(c);
  pchan_free_if_empty(b, p);
  return 0;
}

void gw_broker_local_presence(const gw_broker_local_t *b, const char *channel, size_t *clients,
                              size_t *users) {
  pchan_t *p = channel ? pchan_find(b, channel) : NULL;
  *clients = p ? HASH_COUNT(p->clients) : 0;
  *users = p ? HASH_COUNT(p->users) : 0;
}

static int local_presence_count(void *ud, const char *channel, gw_presence_cb cb, void *cb_ud) {
  gw_broker_local_t *b = ud;
  if (check_channel(channel) || !cb) return GW_EINVAL;
  size_t clients, users;
  gw_broker_local_presence(b, channel, &clients, &users);
  cb(cb_ud, 0, clients, users);
  return 0;
}

static int local_presence_list(void *ud, const char *channel, size_t max, gw_presence_list_cb cb, void *cb_ud) {
  gw_broker_local_t *b = ud;
  if (check_channel(channel) || !cb || max == 0 || max > GW_BROKER_PRESENCE_LIST_MAX) return GW_EINVAL;
  pchan_t *p = pchan_find(b, channel);
  size_t n = p ? HASH_COUNT(p->clients) : 0, k = n < max ? n : max;
  gw_presence_entry_t *e = k ? malloc(k * sizeof *e) : NULL;
  if (k && !e) return GW_ENOMEM;
  size_t i = 0;
  for (pclient_t *c = p ? p->clients : NULL; c && i < k; c = c->hh.next, i++)
    e[i] = (gw_presence_entry_t){0, c->id, c->user};
  cb(cb_ud, 0, e, k, k < n);
  free(e);
  return 0;
}

static void local_close(void *ud) { gw_broker_local_free(ud); }

/* ---- the broker ------------------------------------------------------------------------ */

int gw_broker_local_new(gw_broker_local_t **out) {
  gw_broker_local_t *b = calloc(1, sizeof *b);
  *out = b;
  if (!b) return GW_ENOMEM;
  b->table.set_handler = local_set_handler;
  b->table.publish = local_publish;
  b->table.subscribe = local_subscribe;
  b->table.unsubscribe = local_unsubscribe;
  b->table.presence_add = local_presence_add;
  b->table.presence_remove = local_presence_remove;
  b->table.presence_count = local_presence_count;
  b->table.presence_list = local_presence_list;
  b->table.close = local_close;
  b->table.name = "local";
  b->table.ud = b;
  return 0;
}

const gw_broker_t *gw_broker_local_broker(gw_broker_local_t *b) { return &b->table; }

int gw_broker_local_subscribed(const gw_broker_local_t *b, const char *channel) {
  sub_t *s = NULL;
  if (channel) HASH_FIND_STR(b->subs, channel, s);
  return s != NULL;
}

void gw_broker_local_each_channel(const gw_broker_local_t *b,
                                  void (*fn)(void *ud, const char *channel), void *ud) {
  for (sub_t *s = b->subs; s; s = s->hh.next) fn(ud, s->channel);
}

void gw_broker_local_stats(const gw_broker_local_t *b, gw_broker_local_stats_t *out) {
  *out = b->st;
  out->channels = HASH_COUNT(b->subs);
  out->presence_channels = HASH_COUNT(b->presence);
}

void gw_broker_local_free(gw_broker_local_t *b) {
  if (!b) return;
  sub_t *s, *stmp;
  HASH_ITER(hh, b->subs, s, stmp) {
    HASH_DEL(b->subs, s);
    free(s->channel);
    free(s);
  }
  pchan_t *p, *ptmp;
  HASH_ITER(hh, b->presence, p, ptmp) {
    pclient_t *c, *ctmp;
    HASH_ITER(hh, p->clients, c, ctmp) {
      HASH_DEL(p->clients, c);
      user_unref(p, c->user);
      free(c->user);
      free(c);
    }
    pchan_free_if_empty(b, p);
  }
  free(b);
}
