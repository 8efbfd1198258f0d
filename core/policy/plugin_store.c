#include "plugin_store.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>
#include <utlist.h>

#include "errors.h"

/* One entry. The hash key is "plugin\0scope\0id\0key" (names may not hold NUL), so one
 * lookup finds it and a scope's entries share a prefix. */
typedef struct entry {
  UT_hash_handle hh;
  struct entry *prev, *next; /* in its scope's list */
  struct scope *scope;
  struct owner *owner;
  char *hkey;
  size_t hlen, prefix_len; /* prefix: up to and with the NUL after the id */
  char *value;
  size_t vlen;
  double expires_at; /* 0: never */
} entry_t;

/* The entries of one (plugin, scope, id), so that keys() and clear() cost what the scope
 * holds, not what the store holds. Freed with its last entry. */
typedef struct scope {
  UT_hash_handle hh;
  char *prefix;
  size_t len;
  struct entry *list;
} scope_t;

/* A plugin's counts, for max_keys. */
typedef struct owner {
  UT_hash_handle hh;
  char *name;
  size_t keys, bytes;
} owner_t;

struct gw_plugin_store {
  entry_t *entries;
  scope_t *scopes;
  owner_t *owners;
  size_t bytes;
};

gw_plugin_store_t *gw_plugin_store_new(void) { return calloc(1, sizeof(gw_plugin_store_t)); }

static size_t cost(const entry_t *e) { return e->hlen + e->vlen + GW_STORE_ENTRY_OVERHEAD; }

static void remove_entry(gw_plugin_store_t *s, entry_t *e) {
  HASH_DEL(s->entries, e);
  scope_t *sc = e->scope;
  DL_DELETE(sc->list, e);
  if (!sc->list) {
    HASH_DEL(s->scopes, sc);
    free(sc->prefix);
    free(sc);
  }
  s->bytes -= cost(e);
  e->owner->keys--;
  e->owner->bytes -= cost(e);
  free(e->hkey);
  free(e->value);
  free(e);
}

void gw_plugin_store_free(gw_plugin_store_t *s) {
  if (!s) return;
  entry_t *e, *te;
  HASH_ITER(hh, s->entries, e, te) remove_entry(s, e);
  owner_t *o, *to;
  HASH_ITER(hh, s->owners, o, to) {
    HASH_DEL(s->owners, o);
    free(o->name);
    free(o);
  }
  free(s);
}

gw_plugin_store_t *gw_plugin_store_shared(void) {
  static gw_plugin_store_t *shared;
  if (!shared) shared = gw_plugin_store_new();
  return shared;
}

const char *gw_plugin_store_refusal_name(gw_store_refusal_t r) {
  switch (r) {
    case GW_STORE_TOO_LARGE: return "too_large";
    case GW_STORE_TOO_MANY_KEYS: return "too_many_keys";
    case GW_STORE_FULL: return "store_full";
    case GW_STORE_NOT_A_NUMBER: return "not_a_number";
    default: return "ok";
  }
}

static int good_name(const char *s) {
  size_t n = s ? strnlen(s, GW_STORE_MAX_NAME + 1) : 0;
  return n > 0 && n <= GW_STORE_MAX_NAME;
}

/* Builds the hash key into buf; returns its length (0: a bad name). key NULL: the scope
 * prefix only. */
static size_t make_key(char *buf, const char *plugin, gw_store_scope_t scope, const char *id, const char *key) {
  if (!good_name(plugin) || scope > GW_STORE_USER) return 0;
  if (scope == GW_STORE_PLUGIN) id = "";
  else if (!good_name(id)) return 0;
  if (key && !good_name(key)) return 0;
  size_t n = 0, l = strlen(plugin);
  memcpy(buf + n, plugin, l + 1);
  n += l + 1;
  buf[n++] = (char)('0' + scope);
  buf[n++] = 0;
  l = strlen(id);
  memcpy(buf + n, id, l + 1);
  n += l + 1;
  if (key) {
    l = strlen(key);
    memcpy(buf + n, key, l);
    n += l;
  }
  return n;
}

#define KEYBUF (3 * GW_STORE_MAX_NAME + 8)

static entry_t *lookup(gw_plugin_store_t *s, const char *hk, size_t hlen, double now) {
  entry_t *e = NULL;
  HASH_FIND(hh, s->entries, hk, hlen, e);
  if (e && e->expires_at > 0 && e->expires_at <= now) {
    remove_entry(s, e);
    return NULL;
  }
  return e;
}

static void sweep_expired(gw_plugin_store_t *s, double now) {
  entry_t *e, *te;
  HASH_ITER(hh, s->entries, e, te) if (e->expires_at > 0 && e->expires_at <= now) remove_entry(s, e);
}

static scope_t *find_scope(gw_plugin_store_t *s, const char *prefix, size_t len) {
  scope_t *sc = NULL;
  HASH_FIND(hh, s->scopes, prefix, len, sc);
  return sc;
}

static scope_t *scope_of(gw_plugin_store_t *s, const char *prefix, size_t len) {
  scope_t *sc = find_scope(s, prefix, len);
  if (sc) return sc;
  sc = calloc(1, sizeof *sc);
  if (!sc || !(sc->prefix = malloc(len))) {
    free(sc);
    return NULL;
  }
  memcpy(sc->prefix, prefix, len);
  sc->len = len;
  HASH_ADD_KEYPTR(hh, s->scopes, sc->prefix, sc->len, sc);
  return sc;
}

static owner_t *owner_of(gw_plugin_store_t *s, const char *plugin) {
  owner_t *o = NULL;
  HASH_FIND_STR(s->owners, plugin, o);
  if (o) return o;
  o = calloc(1, sizeof *o);
  if (!o || !(o->name = strdup(plugin))) {
    free(o);
    return NULL;
  }
  HASH_ADD_KEYPTR(hh, s->owners, o->name, strlen(o->name), o);
  return o;
}

/* Stores value under a key already built; checks every bound first, so a refused write
 * changes nothing. */
static int put(gw_plugin_store_t *s, const gw_plugin_store_limits_t *lim, const char *plugin, const char *hk,
               size_t hlen, size_t prefix_len, const char *value, size_t vlen, double expires_at, double now,
               int keep_expiry, gw_store_refusal_t *why) {
  *why = GW_STORE_OK;
  if (vlen > lim->max_value_bytes) {
    *why = GW_STORE_TOO_LARGE;
    return GW_ELIMIT;
  }
  entry_t *e = lookup(s, hk, hlen, now);
  size_t old = e ? cost(e) : 0, new_cost = hlen + vlen + GW_STORE_ENTRY_OVERHEAD;
  owner_t *o = e ? e->owner : owner_of(s, plugin);
  if (!o) return GW_ENOMEM;
  if (!e && o->keys >= lim->max_keys) {
    sweep_expired(s, now); /* room may be held by entries nobody read since they expired */
    if (o->keys >= lim->max_keys) {
      *why = GW_STORE_TOO_MANY_KEYS;
      return GW_ELIMIT;
    }
  }
  if (new_cost > old && s->bytes - old + new_cost > lim->max_bytes) {
    sweep_expired(s, now);
    e = lookup(s, hk, hlen, now); /* the sweep may have freed it */
    old = e ? cost(e) : 0;
    if (s->bytes - old + new_cost > lim->max_bytes) {
      *why = GW_STORE_FULL;
      return GW_ELIMIT;
    }
  }
  char *v = malloc(vlen + 1);
  if (!v) return GW_ENOMEM;
  memcpy(v, value, vlen);
  v[vlen] = 0;
  if (!e) {
    scope_t *sc = scope_of(s, hk, prefix_len);
    e = sc ? calloc(1, sizeof *e) : NULL;
    if (!e || !(e->hkey = malloc(hlen))) {
      free(e);
      free(v);
      if (sc && !sc->list) { /* made for this entry */
        HASH_DEL(s->scopes, sc);
        free(sc->prefix);
        free(sc);
      }
      return GW_ENOMEM;
    }
    e->scope = sc;
    DL_APPEND(sc->list, e);
    memcpy(e->hkey, hk, hlen);
    e->hlen = hlen;
    e->prefix_len = prefix_len;
    e->owner = o;
    HASH_ADD_KEYPTR(hh, s->entries, e->hkey, e->hlen, e);
    o->keys++;
  } else {
    s->bytes -= old;
    o->bytes -= old;
    free(e->value);
  }
  e->value = v;
  e->vlen = vlen;
  if (!keep_expiry || expires_at > 0) e->expires_at = expires_at;
  s->bytes += cost(e);
  o->bytes += cost(e);
  return 0;
}

static size_t prefix_of(const char *hk, size_t hlen) {
  size_t nul = 0, i = 0;
  for (; i < hlen && nul < 3; i++)
    if (hk[i] == 0) nul++;
  return i;
}

int gw_plugin_store_set(gw_plugin_store_t *s, const gw_plugin_store_limits_t *lim, const char *plugin,
                        gw_store_scope_t scope, const char *id, const char *key, const char *value,
                        size_t vlen, double expires_at_ms, double now_ms, gw_store_refusal_t *why) {
  char hk[KEYBUF];
  size_t hlen = make_key(hk, plugin, scope, id, key);
  *why = GW_STORE_OK;
  if (!hlen) return GW_EINVAL;
  return put(s, lim, plugin, hk, hlen, prefix_of(hk, hlen), value, vlen, expires_at_ms, now_ms, 0, why);
}

const char *gw_plugin_store_get(gw_plugin_store_t *s, const char *plugin, gw_store_scope_t scope,
                                const char *id, const char *key, size_t *vlen, double now_ms) {
  char hk[KEYBUF];
  size_t hlen = make_key(hk, plugin, scope, id, key);
  entry_t *e = hlen ? lookup(s, hk, hlen, now_ms) : NULL;
  if (!e) return NULL;
  *vlen = e->vlen;
  return e->value;
}

int gw_plugin_store_delete(gw_plugin_store_t *s, const char *plugin, gw_store_scope_t scope,
                           const char *id, const char *key) {
  char hk[KEYBUF];
  size_t hlen = make_key(hk, plugin, scope, id, key);
  if (!hlen) return GW_EINVAL;
  entry_t *e = NULL;
  HASH_FIND(hh, s->entries, hk, hlen, e);
  if (!e) return GW_ENOENT;
  remove_entry(s, e);
  return 0;
}

/* A JSON number and nothing else (what incr can add to). */
static int parse_number(const char *v, size_t len, double *out) {
  if (!len || !(v[0] == '-' || (v[0] >= '0' && v[0] <= '9'))) return -1;
  char *end;
  *out = strtod(v, &end);
  return end == v + len && isfinite(*out) ? 0 : -1;
}

int gw_plugin_store_incr(gw_plugin_store_t *s, const gw_plugin_store_limits_t *lim, const char *plugin,
                         gw_store_scope_t scope, const char *id, const char *key, double by,
                         double expires_at_ms, double now_ms, double *out, gw_store_refusal_t *why) {
  char hk[KEYBUF];
  size_t hlen = make_key(hk, plugin, scope, id, key);
  *why = GW_STORE_OK;
  if (!hlen || !isfinite(by)) return GW_EINVAL;
  entry_t *e = lookup(s, hk, hlen, now_ms);
  double n = 0;
  if (e && parse_number(e->value, e->vlen, &n)) {
    *why = GW_STORE_NOT_A_NUMBER;
    return GW_ELIMIT;
  }
  n += by;
  if (!isfinite(n)) return GW_EINVAL;
  char text[40];
  int len = (n == floor(n) && fabs(n) < 9007199254740992.0) ? snprintf(text, sizeof text, "%.0f", n)
                                                              : snprintf(text, sizeof text, "%.17g", n);
  int rc = put(s, lim, plugin, hk, hlen, prefix_of(hk, hlen), text, (size_t)len, expires_at_ms, now_ms, 1, why);
  if (rc == 0) *out = n;
  return rc;
}

size_t gw_plugin_store_keys(gw_plugin_store_t *s, const char *plugin, gw_store_scope_t scope,
                            const char *id, double now_ms, void (*fn)(const char *key, void *ud), void *ud) {
  char hk[KEYBUF];
  size_t plen = make_key(hk, plugin, scope, id, NULL), n = 0;
  scope_t *sc = plen ? find_scope(s, hk, plen) : NULL;
  if (!sc) return 0;
  entry_t *e, *te;
  DL_FOREACH_SAFE(sc->list, e, te) {
    int last = e->next == NULL; /* removing the last entry frees the scope */
    if (e->expires_at > 0 && e->expires_at <= now_ms) {
      remove_entry(s, e);
      if (last) break;
      continue;
    }
    char key[GW_STORE_MAX_NAME + 1];
    size_t kl = e->hlen - plen;
    memcpy(key, e->hkey + plen, kl);
    key[kl] = 0;
    fn(key, ud);
    n++;
  }
  return n;
}

size_t gw_plugin_store_clear(gw_plugin_store_t *s, const char *plugin, gw_store_scope_t scope,
                             const char *id) {
  char hk[KEYBUF];
  size_t plen = make_key(hk, plugin, scope, id, NULL), n = 0;
  scope_t *sc = plen ? find_scope(s, hk, plen) : NULL;
  while (sc) { /* the scope is freed with its last entry */
    int last = sc->list->next == NULL;
    remove_entry(s, sc->list);
    n++;
    if (last) break;
  }
  return n;
}

void gw_plugin_store_usage(const gw_plugin_store_t *s, const char *plugin, size_t *total_bytes,
                           size_t *plugin_keys, size_t *plugin_bytes) {
  owner_t *o = NULL;
  if (plugin) HASH_FIND_STR(s->owners, plugin, o);
  if (total_bytes) *total_bytes = s->bytes;
  if (plugin_keys) *plugin_keys = o ? o->keys : 0;
  if (plugin_bytes) *plugin_bytes = o ? o->bytes : 0;
}
