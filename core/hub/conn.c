#include "conn.h"

#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "stats.h"

static gw_conn_t *g_table;
static uint64_t g_next_id = 1;

gw_conn_t *gw_conn_new(void) {
  gw_conn_t *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->id = g_next_id++;
  HASH_ADD(hh, g_table, id, sizeof c->id, c);
  return c;
}

void gw_conn_free(gw_conn_t *c) {
  if (!c) return;
  HASH_DEL(g_table, c);
  gw_attr_t *a, *tmp;
  HASH_ITER(hh, c->attrs, a, tmp) {
    HASH_DEL(c->attrs, a);
    free(a->key);
    free(a->value);
    free(a);
  }
  free(c->rooms);
  free(c->user);
  free(c);
}

gw_conn_t *gw_conn_find(uint64_t id) {
  gw_conn_t *c;
  HASH_FIND(hh, g_table, &id, sizeof id, c);
  return c;
}

size_t gw_conn_count(void) { return HASH_COUNT(g_table); }
gw_conn_t *gw_conn_first(void) { return g_table; }

const char *gw_proto_name(gw_proto_t p) { return p == GW_PROTO_SOCKETIO ? "socketio" : "ws"; }

int gw_conn_set_user(gw_conn_t *c, const char *user) {
  char *u = strdup(user);
  if (!u) return GW_ENOMEM;
  free(c->user);
  c->user = u;
  return 0;
}

const char *gw_conn_attr_get(gw_conn_t *c, const char *key) {
  gw_attr_t *a;
  HASH_FIND_STR(c->attrs, key, a);
  return a ? a->value : NULL;
}

int gw_conn_attr_set(gw_conn_t *c, const char *key, const char *value) {
  gw_attr_t *a;
  HASH_FIND_STR(c->attrs, key, a);
  if (!value) {
    if (a) {
      HASH_DEL(c->attrs, a);
      free(a->key);
      free(a->value);
      free(a);
    }
    return 0;
  }
  char *v = strdup(value);
  if (!v) return GW_ENOMEM;
  if (a) {
    free(a->value);
    a->value = v;
    return 0;
  }
  a = calloc(1, sizeof *a);
  if (!a || !(a->key = strdup(key))) {
    free(a);
    free(v);
    return GW_ENOMEM;
  }
  a->value = v;
  HASH_ADD_KEYPTR(hh, c->attrs, a->key, strlen(a->key), a);
  return 0;
}

int gw_conn_send(gw_conn_t *c, gw_msgbuf_t *b) { return c->ops ? c->ops->send(c, b) : GW_ECLOSED; }

int gw_conn_emit(gw_conn_t *c, const char *ev, size_t evlen, const char *json, size_t jlen) {
  return c->ops ? c->ops->emit(c, ev, evlen, json, jlen) : GW_ECLOSED;
}

int gw_conn_send_binary(gw_conn_t *c, const void *data, size_t len) {
  return c->ops ? c->ops->send_binary(c, data, len) : GW_ECLOSED;
}

void gw_conn_close(gw_conn_t *c, int code, const char *reason) {
  if (c->ops) c->ops->close(c, code, reason);
}

void gw_conn_rate_limited(gw_conn_t *c, int has_id, uint64_t id, double retry_after_ms, const char *message) {
  gw_series_add(gw_stats.rate_limited, 1);
  if (c->ops) c->ops->rate_limited(c, has_id, id, retry_after_ms, message);
}

const void *gw_conn_client(const gw_conn_t *c) {
  const void *k = c->ops && c->ops->client ? c->ops->client(c) : NULL;
  return k ? k : (const void *)c;
}
