#include "lua_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <luajit-2.1/lauxlib.h>

#include "clock.h"
#include "conn_quality.h"
#include "errors.h"
#include "log.h"
#include "lua_presence.h"
#include "lua_vm.h"
#include "metrics.h"
#include "node.h"
#include "plugin_store.h"
#include "ratelimit.h"
#include "room.h"
#include "settings.h"

#define CONN_MT "aivo.conn"

typedef struct {
  uint64_t id;
} conn_ud_t;

/* ---- argument helpers ---------------------------------------------------------------- */

static uint64_t check_id(lua_State *L, int idx) {
  if (lua_isuserdata(L, idx)) {
    conn_ud_t *u = luaL_checkudata(L, idx, CONN_MT);
    return u->id;
  }
  lua_Number n = luaL_checknumber(L, idx);
  if (n < 1 || n != (lua_Number)(uint64_t)n) luaL_argerror(L, idx, "not a connection id");
  return (uint64_t)n;
}

/* Looks the connection up; NULL (after pushing nil, "closed") when it is gone. */
static gw_conn_t *live_conn(lua_State *L, int idx) {
  gw_conn_t *c = gw_conn_find(check_id(L, idx));
  if (c && !c->close_code) return c;
  return NULL;
}

/* Reads also work while the connection is closing (e.g. in the disconnect hook). */
static gw_conn_t *known_conn(lua_State *L, int idx) { return gw_conn_find(check_id(L, idx)); }

static int closed(lua_State *L) {
  lua_pushnil(L);
  lua_pushliteral(L, "closed");
  return 2;
}

static int fail(lua_State *L, const char *why) {
  lua_pushnil(L);
  lua_pushstring(L, why);
  return 2;
}

/* Encodes the value at idx (absent or nil: no data). Raises on values JSON cannot hold. */
static const char *data_json(lua_State *L, int idx, size_t *len) {
  if (lua_isnoneornil(L, idx)) {
    *len = 0;
    return NULL;
  }
  const char *j = gw_lua_json_encode(gw_lua_vm_of(L), idx, len);
  if (!j) luaL_error(L, "cannot encode data as JSON: %s", lua_tostring(L, -1));
  return j;
}

static const char *check_event(lua_State *L, int idx, size_t *len) {
  const char *ev = luaL_checklstring(L, idx, len);
  if (*len == 0 || *len > 200) luaL_argerror(L, idx, "event name must be 1..200 bytes");
  return ev;
}

/* ---- aivo.core ----------------------------------------------------------------------- */

static int l_emit(lua_State *L) {
  size_t evlen, jlen;
  const char *ev = check_event(L, 2, &evlen);
  const char *json = data_json(L, 3, &jlen);
  gw_conn_t *c = live_conn(L, 1);
  if (!c) return closed(L);
  if (gw_conn_emit(c, ev, evlen, json, jlen) == GW_ECLOSED) return closed(L);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_send_binary(lua_State *L) {
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  gw_conn_t *c = live_conn(L, 1);
  if (!c) return closed(L);
  if (gw_conn_send_binary(c, data, len) == GW_ECLOSED) return closed(L);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_join(lua_State *L) {
  const char *room = luaL_checkstring(L, 2);
  gw_conn_t *c = live_conn(L, 1);
  if (!c) return closed(L);
  int rc = gw_room_join(c, room, gw_settings()->max_rooms);
  if (rc == GW_ELIMIT) return fail(L, "too_many_rooms");
  if (rc == GW_EINVAL) return fail(L, "bad_room");
  if (rc) return fail(L, "out_of_memory");
  lua_pushboolean(L, 1);
  return 1;
}

static int l_leave(lua_State *L) {
  const char *room = luaL_checkstring(L, 2);
  gw_conn_t *c = live_conn(L, 1);
  if (!c) return closed(L);
  lua_pushboolean(L, gw_room_leave(c, room) == 0);
  return 1;
}

static int l_in_room(lua_State *L) {
  const char *room = luaL_checkstring(L, 2);
  gw_conn_t *c = known_conn(L, 1);
  lua_pushboolean(L, c && gw_room_is_member(c, room));
  return 1;
}

static int l_rooms(lua_State *L) {
  gw_conn_t *c = known_conn(L, 1);
  if (!c) return closed(L);
  lua_createtable(L, (int)c->nrooms, 0);
  for (size_t i = 0; i < c->nrooms; i++) {
    lua_pushstring(L, c->rooms[i].room->name);
    lua_rawseti(L, -2, (int)i + 1);
  }
  return 1;
}

static int l_publish(lua_State *L) {
  const char *room = luaL_checkstring(L, 1);
  size_t evlen, jlen;
  const char *ev = check_event(L, 2, &evlen);
  const char *json = data_json(L, 3, &jlen);
  uint64_t except = lua_isnoneornil(L, 4) ? 0 : check_id(L, 4);
  size_t delivered = 0;
  gw_node_publish(room, ev, evlen, json, jlen, except, &delivered);
  lua_pushnumber(L, (lua_Number)delivered);
  return 1;
}

static int l_room_size(lua_State *L) {
  lua_pushnumber(L, (lua_Number)gw_room_size(luaL_checkstring(L, 1)));
  return 1;
}

static int l_close(lua_State *L) {
  int code = (int)luaL_optinteger(L, 2, 1000);
  const char *reason = luaL_optstring(L, 3, "");
  if (code != 1000 && (code < 3000 || code > 4999))
    luaL_argerror(L, 2, "close code must be 1000 or 3000..4999");
  gw_conn_t *c = live_conn(L, 1);
  if (!c) return closed(L);
  gw_conn_close(c, code, reason);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_conn_get(lua_State *L) {
  const char *key = luaL_checkstring(L, 2);
  gw_conn_t *c = known_conn(L, 1);
  if (!c) return closed(L);
  const char *v = gw_conn_attr_get(c, key);
  if (v) lua_pushstring(L, v);
  else lua_pushnil(L);
  return 1;
}

static int l_conn_set(lua_State *L) {
  const char *key = luaL_checkstring(L, 2);
  const char *value = lua_isnoneornil(L, 3) ? NULL : luaL_checkstring(L, 3);
  gw_conn_t *c = live_conn(L, 1);
  if (!c) return closed(L);
  if (gw_conn_attr_set(c, key, value)) return fail(L, "out_of_memory");
  lua_pushboolean(L, 1);
  return 1;
}

static int l_log(lua_State *L) {
  gw_log_level_t level;
  if (gw_log_level_parse(luaL_checkstring(L, 1), &level))
    luaL_argerror(L, 1, "level must be debug, info, warn or error");
  const char *msg = luaL_checkstring(L, 2);
  uint64_t conn = lua_isnoneornil(L, 3) ? 0 : check_id(L, 3);
  if (gw_log_enabled(level)) {
    lua_Debug ar;
    /* name the policy line that logged: level 2 is the Lua caller of gw.log.* */
    if (lua_getstack(L, 2, &ar) && lua_getinfo(L, "Sl", &ar) && ar.currentline > 0)
      gw_log(level, conn, "[%s:%d] %s", ar.short_src, ar.currentline, msg);
    else
      gw_log(level, conn, "%s", msg);
  }
  return 0;
}

static int l_now(lua_State *L) {
  lua_pushnumber(L, gw_clock_now_ms());
  return 1;
}

static int l_new_id(lua_State *L) {
  unsigned char raw[16];
  gw_random_bytes(raw, sizeof raw);
  char hex[33];
  for (int i = 0; i < 16; i++) snprintf(hex + 2 * i, 3, "%02x", raw[i]);
  lua_pushlstring(L, hex, 32);
  return 1;
}

static int l_load_file(lua_State *L) { return gw_lua_vm_load_file(L, luaL_checkstring(L, 1)); }
static int l_find_plugin(lua_State *L) { return gw_lua_vm_find_plugin(L, luaL_checkstring(L, 1)); }

static int is_ident(char ch) {
  return ch == '_' || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

/* The first line of a source file where `key =` is written (for load errors that name a
 * table key, which Lua itself cannot place). */
static int l_key_line(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t klen;
  const char *key = luaL_checklstring(L, 2, &klen);
  /* the same folders as load_file: no probing of other files' contents */
  if (!gw_lua_vm_path_allowed(gw_lua_vm_of(L), path)) return 0;
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  char line[4096];
  int n = 0, found = 0;
  while (!found && fgets(line, sizeof line, f)) {
    n++;
    for (char *p = strstr(line, key); p; p = strstr(p + 1, key)) {
      if (p > line && is_ident(p[-1])) continue;
      const char *q = p + klen;
      if (is_ident(*q)) continue;
      while (*q == ' ' || *q == '\t') q++;
      if (q[0] == '=' && q[1] != '=') {
        found = 1;
        break;
      }
    }
  }
  fclose(f);
  if (!found) return 0;
  lua_pushinteger(L, n);
  return 1;
}

/* Secrets never reach Lua (docs/security.md "What policy code sees"): the gateway's own
 * and any variable whose name says it holds one. TOKEN and KEY count as the last word only,
 * so config variables such as AIVO_SOCKETIO_TOKEN_FIELD still work. */
static int env_is_secret(const char *name) {
  static const char *const exact[] = {"ADMIN_TOKEN", "AIVO_ADMIN_TOKEN", "JWT_SECRET", "NEXTAUTH_SECRET",
                                      "REDIS_PASSWORD", "AIVO_DEV_SECRET_FILE", NULL};
  static const char *const anywhere[] = {"SECRET", "SECRETS", "PASSWORD", "PASSWORDS", "PASSWD",
                                         "CREDENTIAL", "CREDENTIALS", "PRIVATE", NULL};
  static const char *const last[] = {"TOKEN", "TOKENS", "KEY", "KEYS", "APIKEY", "PASS", "PWD", NULL};
  for (const char *const *e = exact; *e; e++)
    if (strcmp(name, *e) == 0) return 1;
  for (const char *w = name; *w;) {
    const char *end = strchr(w, '_');
    size_t n = end ? (size_t)(end - w) : strlen(w);
    char word[32];
    if (n < sizeof word) {
      for (size_t i = 0; i < n; i++) word[i] = (char)(w[i] >= 'a' && w[i] <= 'z' ? w[i] - 32 : w[i]);
      word[n] = 0;
      for (const char *const *a = anywhere; *a; a++)
        if (strcmp(word, *a) == 0) return 1;
      if (!end)
        for (const char *const *a = last; *a; a++)
          if (strcmp(word, *a) == 0) return 1;
    }
    w = end ? end + 1 : w + n;
  }
  return 0;
}

/* core.getenv(name): AIVO_* and the old service's CORS_ORIGIN, never a secret. A refused
 * variable that is set gives nil, "secret" (the runtime warns that it was not applied). */
static int l_getenv(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  const char *v = strncmp(name, "AIVO_", 5) == 0 || strcmp(name, "CORS_ORIGIN") == 0 ? getenv(name) : NULL;
  if (!v) {
    lua_pushnil(L);
    return 1;
  }
  if (env_is_secret(name)) {
    lua_pushnil(L);
    lua_pushliteral(L, "secret");
    return 2;
  }
  lua_pushstring(L, v);
  return 1;
}

/* ---- metrics declared from Lua (kept in C: they survive reloads) -------------------- */

static int l_metric(lua_State *L) {
  static const char *const types[] = {"counter", "gauge", "histogram", NULL};
  gw_metric_type_t type = (gw_metric_type_t)luaL_checkoption(L, 1, NULL, types);
  const char *name = luaL_checkstring(L, 2);
  const char *help = luaL_optstring(L, 3, "");
  const char *labels = luaL_optstring(L, 4, NULL);
  double buckets[64];
  size_t nb = 0;
  if (type == GW_METRIC_HISTOGRAM) {
    luaL_checktype(L, 5, LUA_TTABLE);
    for (int i = 1; nb < 64; i++) {
      lua_rawgeti(L, 5, i);
      if (lua_isnil(L, -1)) break;
      buckets[nb++] = luaL_checknumber(L, -1);
      lua_pop(L, 1);
    }
    if (nb == 0) luaL_argerror(L, 5, "a histogram needs at least one bucket");
  }
  gw_metric_t *m = gw_metric_register(type, name, help, labels, buckets, nb);
  if (!m)
    return fail(L, "bad metric name or labels, unsorted buckets, or the name is taken by a "
                   "metric of another type, labels or buckets");
  lua_pushlightuserdata(L, m);
  return 1;
}

/* core.metric_update(handle, op, value, label values...) */
static int l_metric_update(lua_State *L) {
  luaL_checktype(L, 1, LUA_TLIGHTUSERDATA);
  gw_metric_t *m = lua_touserdata(L, 1);
  const char *op = luaL_checkstring(L, 2);
  double v = luaL_checknumber(L, 3);
  size_t n = gw_metric_label_count(m);
  if ((size_t)(lua_gettop(L) - 3) != n)
    return luaL_error(L, "this metric has %d label(s), got %d value(s)", (int)n, lua_gettop(L) - 3);
  const char *values[GW_METRIC_MAX_LABELS];
  for (size_t i = 0; i < n; i++) values[i] = luaL_checkstring(L, 4 + (int)i);
  gw_series_t *series = gw_metric_series(m, values);
  gw_metric_type_t t = gw_metric_type(m);
  if (strcmp(op, "add") == 0 && t != GW_METRIC_HISTOGRAM) {
    if (t == GW_METRIC_COUNTER && v < 0) luaL_argerror(L, 3, "a counter only goes up");
    gw_series_add(series, v);
  } else if (strcmp(op, "set") == 0 && t == GW_METRIC_GAUGE) {
    gw_series_set(series, v);
  } else if (strcmp(op, "observe") == 0 && t == GW_METRIC_HISTOGRAM) {
    gw_series_observe(series, v);
  } else {
    luaL_argerror(L, 2, "operation not valid for this metric type");
  }
  return 0;
}

/* ---- the plugin store (plugin_store.c; kept in C: it survives reloads) ---------------- */

/* core.store_api() hands the store functions out once per state: aivo.lua takes them when
 * it loads, before any policy or plugin code runs, and binds every call to the plugin whose
 * handler is running, so a plugin cannot name another plugin's entries. */
#define STORE_TAKEN_KEY "aivo.store_taken"
#define STORE_MAX_TTL_S (366.0 * 86400)

static gw_plugin_store_limits_t store_limits(void) {
  gw_plugin_store_limits_t l = {GW_STORE_DEFAULT_MAX_BYTES, GW_STORE_DEFAULT_MAX_VALUE_BYTES,
                                GW_STORE_DEFAULT_MAX_KEYS};
  const gw_settings_t *s = gw_settings(); /* the running generation's store.* config */
  if (s) {
    l.max_bytes = s->store_max_bytes;
    l.max_value_bytes = s->store_max_value_bytes;
    l.max_keys = s->store_max_keys;
  }
  return l;
}

static gw_store_scope_t check_scope(lua_State *L, int idx) {
  static const char *const scopes[] = {"plugin", "room", "user", NULL};
  return (gw_store_scope_t)luaL_checkoption(L, idx, NULL, scopes);
}

/* plugin, scope, id, key at 1..4 (key absent for keys/clear) */
typedef struct {
  const char *plugin, *id, *key;
  gw_store_scope_t scope;
} store_args_t;

static int check_store_name(lua_State *L, int idx, const char *what, const char **out) {
  size_t n;
  *out = luaL_checklstring(L, idx, &n);
  if (n == 0 || n > GW_STORE_MAX_NAME || strlen(*out) != n)
    return luaL_error(L, "gw.store: %s must be a string of 1..%d bytes without NUL", what, (int)GW_STORE_MAX_NAME);
  return 0;
}

static store_args_t store_args(lua_State *L, int with_key) {
  store_args_t a = {NULL, "", NULL, GW_STORE_PLUGIN};
  check_store_name(L, 1, "the plugin name", &a.plugin);
  a.scope = check_scope(L, 2);
  if (a.scope != GW_STORE_PLUGIN) check_store_name(L, 3, a.scope == GW_STORE_ROOM ? "a room name" : "a user name", &a.id);
  if (with_key) check_store_name(L, 4, "a key", &a.key);
  return a;
}

static double store_expiry(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return 0;
  double ttl = luaL_checknumber(L, idx);
  if (!(ttl > 0 && ttl <= STORE_MAX_TTL_S)) luaL_argerror(L, idx, "ttl must be seconds in (0, 31622400]");
  return gw_clock_now_ms() + ttl * 1000;
}

static int store_refused(lua_State *L, int rc, gw_store_refusal_t why) {
  lua_pushnil(L);
  lua_pushstring(L, rc == GW_ELIMIT ? gw_plugin_store_refusal_name(why) : "out_of_memory");
  return 2;
}

static int l_store_get(lua_State *L) {
  store_args_t a = store_args(L, 1);
  size_t len;
  const char *v = gw_plugin_store_get(gw_plugin_store_shared(), a.plugin, a.scope, a.id, a.key, &len,
                                      gw_clock_now_ms());
  if (!v) return 0;
  if (gw_lua_json_decode(gw_lua_vm_of(L), v, len)) {
    lua_pop(L, 1);
    return 0; /* never stored by this binding: treat as absent */
  }
  return 1;
}

/* set(plugin, scope, id, key, value, ttl): value nil deletes. */
static int l_store_set(lua_State *L) {
  store_args_t a = store_args(L, 1);
  if (lua_isnoneornil(L, 5)) {
    gw_plugin_store_delete(gw_plugin_store_shared(), a.plugin, a.scope, a.id, a.key);
    lua_pushboolean(L, 1);
    return 1;
  }
  double expires = store_expiry(L, 6);
  size_t len;
  const char *json = gw_lua_json_encode(gw_lua_vm_of(L), 5, &len);
  if (!json) return luaL_error(L, "gw.store: cannot store this value as JSON: %s", lua_tostring(L, -1));
  gw_plugin_store_limits_t lim = store_limits();
  gw_store_refusal_t why;
  int rc = gw_plugin_store_set(gw_plugin_store_shared(), &lim, a.plugin, a.scope, a.id, a.key, json, len,
                               expires, gw_clock_now_ms(), &why);
  if (rc) return store_refused(L, rc, why);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_store_delete(lua_State *L) {
  store_args_t a = store_args(L, 1);
  lua_pushboolean(L, gw_plugin_store_delete(gw_plugin_store_shared(), a.plugin, a.scope, a.id, a.key) == 0);
  return 1;
}

/* incr(plugin, scope, id, key, by, ttl) */
static int l_store_incr(lua_State *L) {
  store_args_t a = store_args(L, 1);
  double by = luaL_optnumber(L, 5, 1);
  double expires = store_expiry(L, 6);
  gw_plugin_store_limits_t lim = store_limits();
  gw_store_refusal_t why;
  double out;
  int rc = gw_plugin_store_incr(gw_plugin_store_shared(), &lim, a.plugin, a.scope, a.id, a.key, by, expires,
                                gw_clock_now_ms(), &out, &why);
  if (rc == GW_EINVAL) return luaL_argerror(L, 5, "the increment and the result must be finite numbers");
  if (rc) return store_refused(L, rc, why);
  lua_pushnumber(L, out);
  return 1;
}

static void push_key(const char *key, void *ud) {
  lua_State *L = ud;
  lua_pushstring(L, key);
  lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);
}

static int l_store_keys(lua_State *L) {
  store_args_t a = store_args(L, 0);
  lua_newtable(L);
  gw_plugin_store_keys(gw_plugin_store_shared(), a.plugin, a.scope, a.id, gw_clock_now_ms(), push_key, L);
  return 1;
}

static int l_store_clear(lua_State *L) {
  store_args_t a = store_args(L, 0);
  lua_pushnumber(L, (lua_Number)gw_plugin_store_clear(gw_plugin_store_shared(), a.plugin, a.scope, a.id));
  return 1;
}

static const luaL_Reg store_funcs[] = {{"get", l_store_get},       {"set", l_store_set},
                                       {"delete", l_store_delete}, {"incr", l_store_incr},
                                       {"keys", l_store_keys},     {"clear", l_store_clear},
                                       {NULL, NULL}};

static int l_store_api(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, STORE_TAKEN_KEY);
  if (lua_toboolean(L, -1)) {
    lua_pushnil(L);
    lua_pushliteral(L, "the store functions are bound to plugins by aivo: use gw.store");
    return 2;
  }
  lua_pushboolean(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, STORE_TAKEN_KEY);
  lua_newtable(L);
  luaL_register(L, NULL, store_funcs);
  return 1;
}

/* ---- the conn object ------------------------------------------------------------------ */

static int conn_index(lua_State *L) {
  conn_ud_t *u = luaL_checkudata(L, 1, CONN_MT);
  const char *k = luaL_checkstring(L, 2);
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1)); /* methods */
  if (!lua_isnil(L, -1)) return 1;
  if (strcmp(k, "id") == 0) {
    lua_pushnumber(L, (lua_Number)u->id);
    return 1;
  }
  gw_conn_t *c = gw_conn_find(u->id);
  if (!c) return 0;
  if (strcmp(k, "user") == 0) {
    if (c->user) lua_pushstring(L, c->user);
    else lua_pushnil(L);
  } else if (strcmp(k, "protocol") == 0) {
    lua_pushstring(L, gw_proto_name(c->proto));
  } else if (strcmp(k, "remote") == 0) {
    lua_pushstring(L, c->remote);
  } else if (strcmp(k, "rtt") == 0) {
    if (c->pongs_received) lua_pushnumber(L, c->rtt_ms);
    else lua_pushnil(L);
  } else if (strcmp(k, "quality") == 0) {
    lua_pushstring(L, gw_quality_name((gw_quality_class_t)c->quality.cls));
  } else if (strcmp(k, "quality_info") == 0) {
    gw_lua_push_quality(L, c);
  } else {
    return 0;
  }
  return 1;
}

static int conn_tostring(lua_State *L) {
  conn_ud_t *u = luaL_checkudata(L, 1, CONN_MT);
  lua_pushfstring(L, "conn(%d)", (int)u->id);
  return 1;
}

static int conn_eq(lua_State *L) {
  conn_ud_t *a = luaL_checkudata(L, 1, CONN_MT), *b = luaL_checkudata(L, 2, CONN_MT);
  lua_pushboolean(L, a->id == b->id);
  return 1;
}

static const luaL_Reg conn_methods[] = {
    {"emit", l_emit},       {"send_binary", l_send_binary}, {"join", l_join},
    {"leave", l_leave},     {"in_room", l_in_room},         {"rooms", l_rooms},
    {"get", l_conn_get},    {"set", l_conn_set},            {"close", l_close},
    {NULL, NULL}};

static const luaL_Reg core_funcs[] = {
    {"emit", l_emit},           {"send_binary", l_send_binary}, {"join", l_join},
    {"leave", l_leave},         {"in_room", l_in_room},         {"rooms", l_rooms},
    {"publish", l_publish},     {"room_size", l_room_size},     {"close", l_close},
    {"conn_get", l_conn_get},   {"conn_set", l_conn_set},       {"log", l_log},
    {"now", l_now},             {"new_id", l_new_id},           {"load_file", l_load_file},
    {"find_plugin", l_find_plugin}, {"getenv", l_getenv},       {"key_line", l_key_line},
    {"metric", l_metric},       {"metric_update", l_metric_update},
    {"ratelimit", gw_ratelimit_lua_take},
    {"store_api", l_store_api},
    {NULL, NULL}};

int gw_lua_api_open(lua_State *L) {
  if (luaL_newmetatable(L, CONN_MT)) {
    lua_newtable(L);
    luaL_register(L, NULL, conn_methods);
    lua_pushcclosure(L, conn_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, conn_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushcfunction(L, conn_eq);
    lua_setfield(L, -2, "__eq");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
  }
  lua_pop(L, 1);
  lua_newtable(L);
  luaL_register(L, NULL, core_funcs);
  gw_lua_presence_register(L);
  return 1;
}

void gw_lua_push_conn(lua_State *L, const gw_conn_t *c) {
  gw_lua_vm_t *vm = gw_lua_vm_of(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, vm->conns_ref);
  lua_pushnumber(L, (lua_Number)c->id); /* ids pass 2^31 on a long-lived gateway */
  lua_rawget(L, -2);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    conn_ud_t *u = lua_newuserdata(L, sizeof *u);
    u->id = c->id;
    luaL_getmetatable(L, CONN_MT);
    if (lua_isnil(L, -1)) { /* aivo.core not required yet in this state */
      lua_pop(L, 1);
      lua_pushcfunction(L, gw_lua_api_open);
      lua_call(L, 0, 0);
      luaL_getmetatable(L, CONN_MT);
    }
    lua_setmetatable(L, -2);
    lua_pushnumber(L, (lua_Number)c->id);
    lua_pushvalue(L, -2);
    lua_rawset(L, -4);
  }
  lua_remove(L, -2);
}

void gw_lua_forget_conn(lua_State *L, uint64_t id) {
  gw_lua_vm_t *vm = gw_lua_vm_of(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, vm->conns_ref);
  lua_pushnumber(L, (lua_Number)id);
  lua_pushnil(L);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

void gw_lua_push_quality(lua_State *L, const gw_conn_t *c) {
  gw_quality_report_t r;
  gw_quality_conn_report(c, &r);
  lua_createtable(L, 0, 6);
  lua_pushstring(L, gw_quality_name(r.quality));
  lua_setfield(L, -2, "quality");
  if (r.has_latency) { /* unknown until the first pong: absent, not 0 */
    lua_pushnumber(L, r.latency_ms);
    lua_setfield(L, -2, "latency");
    lua_pushnumber(L, r.jitter_ms);
    lua_setfield(L, -2, "jitter");
  }
  lua_pushnumber(L, r.loss_pct);
  lua_setfield(L, -2, "packetLoss");
  lua_pushnumber(L, r.stability);
  lua_setfield(L, -2, "stability");
}
