#include "policy.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <luajit-2.1/lauxlib.h>

#include "auth.h"
#include "errors.h"
#include "json.h"
#include "log.h"
#include "lua_api.h"
#include "lua_pattern.h"
#include "lua_presence.h"
#include "stats.h"

/* Loading runs the policy's top level and every plugin's init: a generous budget, but a
 * policy that loops at load time must still fail the load instead of hanging the gateway.
 * The load also has a wall-clock bound (lua.load_timeout_ms) and the memory cap from its
 * first instruction: both come from the defaults, AIVO_LUA_* and --set, since the policy's
 * own config is only known once it has run. */
#define LOAD_BUDGET 200000000ull
#define DEFAULT_MEMORY_LIMIT_MB 128.0
#define DEFAULT_LOAD_TIMEOUT_MS 2000.0

static unsigned g_generation;

/* Pushes config[section][key] of the config table on top of the stack when it has the
 * given Lua type (returns 0); pushes nothing and returns -1 otherwise. */
static int config_field(lua_State *L, const char *section, const char *key, int type) {
  lua_getfield(L, -1, section);
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, key);
    if (lua_type(L, -1) == type) {
      lua_remove(L, -2);
      return 0;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return -1;
}

static int config_number(lua_State *L, const char *section, const char *key, double *out) {
  if (config_field(L, section, key, LUA_TNUMBER)) return -1;
  *out = lua_tonumber(L, -1);
  lua_pop(L, 1);
  return 0;
}

static int config_bool(lua_State *L, const char *section, const char *key, int *out) {
  if (config_field(L, section, key, LUA_TBOOLEAN)) return -1;
  *out = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return 0;
}

typedef struct number_spec {
  const char *section, *key;
  double min, max;
} number_spec_t;

/* Reads each number of spec into v, reporting every missing or out-of-range one (a missing
 * one reads as its minimum, so the caller can go on and report the rest). */
static void read_numbers(lua_State *L, const number_spec_t *spec, size_t n, double *v, gw_errlist_t *errs) {
  for (size_t i = 0; i < n; i++) {
    if (config_number(L, spec[i].section, spec[i].key, &v[i])) {
      gw_errlist_add(errs, "config: %s.%s must be a number", spec[i].section, spec[i].key);
      v[i] = spec[i].min;
    } else if (v[i] < spec[i].min || v[i] > spec[i].max) {
      gw_errlist_add(errs, "config: %s.%s = %g is out of range [%g, %g]", spec[i].section,
                     spec[i].key, v[i], spec[i].min, spec[i].max);
    }
  }
}

/* The process-wide budgets (rxbuf.h, sendq.h), after the per-message and per-queue limits
 * they must leave room for. */
static void read_budget_settings(lua_State *L, gw_settings_t *s, gw_errlist_t *errs) {
  static const number_spec_t spec[] = {
      {"server", "max_inflight_bytes", 65536, 1ull << 40},
      {"server", "max_sendq_total_bytes", 65536, 1ull << 40},
  };
  double v[sizeof spec / sizeof spec[0]];
  read_numbers(L, spec, sizeof spec / sizeof spec[0], v, errs);
  s->max_inflight_bytes = (size_t)v[0];
  s->max_sendq_total_bytes = (size_t)v[1];
  /* one message of each limit's size must always be possible */
  if (s->max_inflight_bytes < s->max_message_size)
    gw_errlist_add(errs, "config: server.max_inflight_bytes (%zu) must be at least server.max_message_size (%zu)",
                   s->max_inflight_bytes, s->max_message_size);
  if (s->max_sendq_total_bytes < s->sendq_max_bytes)
    gw_errlist_add(errs, "config: server.max_sendq_total_bytes (%zu) must be at least server.sendq_max_bytes (%zu)",
                   s->max_sendq_total_bytes, s->sendq_max_bytes);
}

/* Fills s from the merged config table on top of the stack; reports every bad value. */
static void read_settings(lua_State *L, gw_settings_t *s, gw_errlist_t *errs) {
  static const number_spec_t spec[] = {
      {"server", "max_message_size", 64, 1 << 30},
      {"server", "sendq_max_bytes", 1024, 1ull << 34},
      {"server", "sendq_max_messages", 1, 1 << 24},
      {"server", "ping_interval", 0.1, 3600},
      {"server", "idle_timeout", 0.2, 86400},
      {"server", "drain_timeout", 0, 3600},
      {"rooms", "max_per_conn", 1, 1 << 20},
      {"lua", "instruction_budget", 0, 1e15},
      {"lua", "memory_limit_mb", 0, 1 << 20},
      {"lua", "call_timeout_ms", 1, 600000},
      {"lua", "load_timeout_ms", 10, 600000},
  };
  double v[sizeof spec / sizeof spec[0]];
  read_numbers(L, spec, sizeof spec / sizeof spec[0], v, errs);
  s->max_message_size = (size_t)v[0];
  s->sendq_max_bytes = (size_t)v[1];
  s->sendq_max_messages = (size_t)v[2];
  s->ping_interval_s = v[3];
  s->idle_timeout_s = v[4];
  s->drain_timeout_s = v[5];
  s->max_rooms = (size_t)v[6];
  s->instruction_budget = (uint64_t)v[7];
  s->memory_limit = (size_t)(v[8] * 1024 * 1024);
  s->call_timeout_ms = (uint64_t)v[9];
  s->load_timeout_ms = (uint64_t)v[10];
  if (config_bool(L, "lua", "jit", &s->jit)) gw_errlist_add(errs, "config: lua.jit must be a boolean");
  /* a reply as large as the largest message must always fit in an empty queue */
  if (s->sendq_max_bytes < s->max_message_size + 256)
    gw_errlist_add(errs,
                   "config: server.sendq_max_bytes (%zu) must be at least "
                   "server.max_message_size + 256 (%zu)",
                   s->sendq_max_bytes, s->max_message_size + 256);
  if (s->idle_timeout_s <= s->ping_interval_s)
    gw_errlist_add(errs, "config: server.idle_timeout (%g) must be longer than server.ping_interval (%g)",
                   s->idle_timeout_s, s->ping_interval_s);
  read_budget_settings(L, s, errs);
}

/* Traffic control (ratelimit.c, quality.c), from the merged config on top of the stack. */
static void read_traffic_settings(lua_State *L, gw_settings_t *s, gw_errlist_t *errs) {
  static const number_spec_t spec[] = {
      {"connections", "per_ip_per_second", 0, 1e6},
      {"connections", "max_per_ip", 0, 1e9},
      {"connections", "max_per_user", 0, 1e9},
      {"quality", "check_interval", 0, 600},
      {"quality", "pong_timeout", 0.01, 600},
      {"quality", "stability_window", 0, 86400},
  };
  double v[sizeof spec / sizeof spec[0]];
  read_numbers(L, spec, sizeof spec / sizeof spec[0], v, errs);
  s->conn_per_ip_per_second = v[0];
  s->max_conns_per_ip = (size_t)v[1];
  s->max_conns_per_user = (size_t)v[2];
  s->quality_interval_s = v[3];
  s->pong_timeout_s = v[4];
  s->stability_window_s = v[5];
}

/* The plugin store's bounds (plugin_store.c), from the merged config on top of the stack. */
static void read_store_settings(lua_State *L, gw_settings_t *s, gw_errlist_t *errs) {
  static const number_spec_t spec[] = {
      {"store", "max_bytes", 0, 1ull << 40},
      {"store", "max_value_bytes", 0, 1ull << 30},
      {"store", "max_keys", 0, 1e9},
  };
  double v[sizeof spec / sizeof spec[0]];
  read_numbers(L, spec, sizeof spec / sizeof spec[0], v, errs);
  s->store_max_bytes = (size_t)v[0];
  s->store_max_value_bytes = (size_t)v[1];
  s->store_max_keys = (size_t)v[2];
}

/* Copies config[section][key], a string, into out; an error when it is not one or too long. */
static void read_string(lua_State *L, const char *section, const char *key, char *out, size_t cap,
                        gw_errlist_t *errs) {
  if (config_field(L, section, key, LUA_TSTRING)) {
    gw_errlist_add(errs, "config: %s.%s must be a string", section, key);
    return;
  }
  size_t n;
  const char *v = lua_tolstring(L, -1, &n);
  if (n >= cap || strlen(v) != n) gw_errlist_add(errs, "config: %s.%s must be a string of at most %zu bytes", section, key, cap - 1);
  else memcpy(out, v, n + 1);
  lua_pop(L, 1);
}

/* socketio.* (engineio.h), from the merged config on top of the stack. */
static void read_socketio_settings(lua_State *L, gw_settings_t *s, gw_errlist_t *errs) {
  static const number_spec_t spec[] = {
      {"socketio", "ping_interval", 1, 3600000},
      {"socketio", "ping_timeout", 1, 3600000},
      {"socketio", "connect_timeout", 1, 3600000},
      {"socketio", "upgrade_timeout", 1, 3600000},
      {"socketio", "max_payload", 64, 1 << 30},
  };
  double v[sizeof spec / sizeof spec[0]];
  read_numbers(L, spec, sizeof spec / sizeof spec[0], v, errs);
  gw_socketio_settings_t *io = &s->socketio;
  io->ping_interval_ms = (unsigned)v[0];
  io->ping_timeout_ms = (unsigned)v[1];
  io->connect_timeout_ms = (unsigned)v[2];
  io->upgrade_timeout_ms = (unsigned)v[3];
  io->max_payload = (size_t)v[4];
  read_string(L, "socketio", "token_field", io->token_field, sizeof io->token_field, errs);
  double ms = -1;
  lua_getfield(L, -1, "socketio"); /* the one three-part key: socketio.recovery.* */
  if (lua_istable(L, -1) && config_number(L, "recovery", "max_disconnection_ms", &ms)) ms = -1;
  lua_pop(L, 1);
  if (ms < 0 || ms > 86400000.0)
    gw_errlist_add(errs, "config: socketio.recovery.max_disconnection_ms must be a number in [0, 86400000] (0: off)");
  else io->recovery_max_disconnection_ms = (unsigned)ms;
}

/* redis.* (settings.h), from the merged config on top of the stack. */
static void read_redis_settings(lua_State *L, gw_settings_t *s, gw_errlist_t *errs) {
  static const number_spec_t spec[] = {
      {"redis", "port", 1, 65535},
      {"redis", "db", 0, 1000000},
      {"redis", "connect_timeout", 50, 600000},
      {"redis", "command_timeout", 50, 600000},
      {"redis", "presence_ttl", 1, 86400},
  };
  double v[sizeof spec / sizeof spec[0]];
  read_numbers(L, spec, sizeof spec / sizeof spec[0], v, errs);
  gw_redis_settings_t *r = &s->redis;
  r->port = (int)v[0];
  r->db = (int)v[1];
  r->connect_timeout_ms = (unsigned)v[2];
  r->command_timeout_ms = (unsigned)v[3];
  r->presence_ttl_ms = (unsigned)(v[4] * 1000);
  read_string(L, "redis", "url", r->url, sizeof r->url, errs);
  read_string(L, "redis", "host", r->host, sizeof r->host, errs);
  read_string(L, "redis", "prefix", r->prefix, sizeof r->prefix, errs);
  if (config_bool(L, "redis", "required", &r->required)) gw_errlist_add(errs, "config: redis.required must be a boolean");
}

/* history.* (settings.h), from the merged config on top of the stack. */
static void read_history_settings(lua_State *L, gw_settings_t *s, gw_errlist_t *errs) {
  static const number_spec_t spec[] = {
      {"history", "max_streams", 1, 1 << 24},
      {"history", "max_total_bytes", 65536, 1ull << 40},
      {"history", "max_stream_bytes", 1024, 1ull << 32},
      {"history", "max_stream_len", 1, 100000},
      {"history", "max_message_bytes", 64, 1 << 26},
  };
  double v[sizeof spec / sizeof spec[0]];
  read_numbers(L, spec, sizeof spec / sizeof spec[0], v, errs);
  gw_history_settings_t *h = &s->history;
  h->max_streams = (size_t)v[0];
  h->max_total_bytes = (size_t)v[1];
  h->max_stream_bytes = (size_t)v[2];
  h->max_stream_len = (size_t)v[3];
  h->max_message_bytes = (size_t)v[4];
}

static double rule_number(lua_State *L, const char *key, double dflt) {
  lua_getfield(L, -1, key);
  double v = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : dflt;
  lua_pop(L, 1);
  return v;
}

static int rule_bool(lua_State *L, const char *key) {
  lua_getfield(L, -1, key);
  int v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

/* One rule aivo.replay checked (table on top of the stack) into r; 0 or out of memory. */
static int read_replay_rule(lua_State *L, gw_replay_rule_t *r) {
  lua_getfield(L, -1, "channel");
  size_t len = 0;
  const char *ch = lua_tolstring(L, -1, &len);
  r->channel = ch ? strdup(ch) : NULL;
  lua_pop(L, 1);
  if (!r->channel) return GW_ENOMEM;
  r->prefix = len > 0 && r->channel[len - 1] == '*';
  r->clen = r->prefix ? len - 1 : len;
  r->keep = rule_bool(L, "keep");
  r->ack = rule_bool(L, "ack");
  r->ttl_ms = (uint64_t)(rule_number(L, "ttl", 86400) * 1000);
  r->size = (size_t)rule_number(L, "size", 100);
  r->retries = (unsigned)rule_number(L, "retries", 3);
  r->ack_timeout_ms = (uint64_t)(rule_number(L, "ack_timeout", 5) * 1000);
  lua_getfield(L, -1, "events");
  size_t n = lua_istable(L, -1) ? lua_objlen(L, -1) : 0;
  if (n && !(r->events = calloc(n, sizeof *r->events))) n = 0, r->events = NULL;
  for (size_t i = 0; r->events && i < n; i++) {
    lua_rawgeti(L, -1, (int)i + 1);
    const char *e = lua_tostring(L, -1);
    if (e && (r->events[r->n_events] = strdup(e))) r->n_events++;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return n && r->n_events != n ? GW_ENOMEM : 0;
}

/* The replay rules aivo.replay checked (hooks table on top of the stack). */
static void read_replay_rules(lua_State *L, gw_settings_t *s, gw_errlist_t *errs) {
  lua_getfield(L, -1, "replay");
  size_t n = lua_istable(L, -1) ? lua_objlen(L, -1) : 0;
  if (n && !(s->replay = calloc(n, sizeof *s->replay))) gw_errlist_add(errs, "out of memory");
  for (size_t i = 0; s->replay && i < n; i++) {
    lua_rawgeti(L, -1, (int)i + 1);
    if (lua_istable(L, -1) && read_replay_rule(L, &s->replay[s->n_replay]) == 0) s->n_replay++;
    else gw_errlist_add(errs, "replay[%zu]: out of memory", i + 1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* The Socket.IO namespaces aivo.runtime checked (a list of "/name"), hooks table on top of
 * the stack, copied so that protocol code never reads Lua. */
static void read_namespaces(lua_State *L, gw_settings_t *s, gw_errlist_t *errs) {
  lua_getfield(L, -1, "namespaces");
  size_t n = lua_istable(L, -1) ? lua_objlen(L, -1) : 0;
  if (n && !(s->namespaces = calloc(n, sizeof *s->namespaces))) gw_errlist_add(errs, "out of memory");
  for (size_t i = 0; s->namespaces && i < n; i++) {
    lua_rawgeti(L, -1, (int)i + 1);
    const char *name = lua_tostring(L, -1);
    if (name && (s->namespaces[s->n_namespaces] = strdup(name))) s->n_namespaces++;
    else gw_errlist_add(errs, "namespaces[%zu]: %s", i + 1, name ? "out of memory" : "not a string");
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* The quality thresholds aivo.runtime normalized from the policy's `quality` table (hooks
 * table on top of the stack); the defaults when it has none. */
static void read_quality_thresholds(lua_State *L, gw_settings_t *s) {
  static const gw_quality_threshold_t defaults[3] = GW_QUALITY_DEFAULT_THRESHOLDS;
  static const char *const names[3] = {"excellent", "good", "fair"};
  memcpy(s->quality, defaults, sizeof defaults);
  lua_getfield(L, -1, "quality");
  for (int k = 0; k < 3 && lua_istable(L, -1); k++) {
    lua_getfield(L, -1, names[k]);
    if (lua_istable(L, -1)) {
      double *f[3] = {&s->quality[k].latency_ms, &s->quality[k].loss_pct, &s->quality[k].stability};
      static const char *const fields[3] = {"latency", "loss", "stability"};
      for (int j = 0; j < 3; j++) {
        lua_getfield(L, -1, fields[j]);
        if (lua_type(L, -1) == LUA_TNUMBER) *f[j] = lua_tonumber(L, -1);
        lua_pop(L, 1);
      }
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* The plugins as loaded, in call order: "echo@1.0.0, rooms@1.0.0" for log lines, and into
 * *json the array [{"name":..,"version":..,"path":..}] for GET /admin/policy. */
static char *describe_plugins(lua_State *L, char **json) {
  gw_strbuf_t text = {0}, arr = {0};
  gw_strbuf_append(&arr, "[", 1);
  lua_getfield(L, -1, "plugins");
  for (int i = 1; lua_istable(L, -1); i++) {
    lua_rawgeti(L, -1, i);
    if (!lua_istable(L, -1)) {
      lua_pop(L, 1);
      break;
    }
    lua_getfield(L, -1, "name");
    lua_getfield(L, -2, "version");
    lua_getfield(L, -3, "path");
    const char *f[3] = {lua_tostring(L, -3), lua_tostring(L, -2), lua_tostring(L, -1)};
    static const char *const keys[3] = {"name", "version", "path"};
    gw_strbuf_appendf(&text, "%s%s@%s", i > 1 ? ", " : "", f[0] ? f[0] : "?", f[1] ? f[1] : "?");
    gw_strbuf_append(&arr, i > 1 ? ",{" : "{", i > 1 ? 2 : 1);
    for (int k = 0; k < 3; k++) {
      gw_strbuf_appendf(&arr, "%s\"%s\":", k ? "," : "", keys[k]);
      if (!f[k]) {
        gw_strbuf_append(&arr, "null", 4);
        continue;
      }
      size_t len = strlen(f[k]); /* plugin-chosen text: escaped */
      if (gw_strbuf_reserve(&arr, GW_JSON_ESCAPED_MAX(len)) == 0)
        arr.len += gw_json_escape(f[k], len, arr.p + arr.len, GW_JSON_ESCAPED_MAX(len));
    }
    gw_strbuf_append(&arr, "}", 1);
    lua_pop(L, 4);
  }
  lua_pop(L, 1);
  if (gw_strbuf_append(&arr, "]", 2) == 0) arr.len--; /* with its NUL: a C string */
  else gw_strbuf_free(&arr);
  *json = arr.p ? arr.p : strdup("[]");
  return text.p ? text.p : strdup("");
}

static int hook_ref(lua_State *L, const char *name, gw_errlist_t *errs) {
  lua_getfield(L, -1, name);
  if (!lua_isfunction(L, -1)) {
    lua_pop(L, 1);
    gw_errlist_add(errs, "aivo.runtime: hooks.%s is not a function", name);
    return LUA_NOREF;
  }
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

/* A lua.* number before the policy has run: the last --set of it, else $AIVO_LUA_<KEY>,
 * else the default. A value that does not parse or is out of range gives the default here
 * (the load reports it once the config is merged). */
static double preload_number(const gw_policy_opts_t *o, const char *key, const char *env, double def,
                             double min, double max) {
  const char *s = getenv(env);
  for (size_t i = 0; i < o->n_overrides; i++)
    if (strcmp(o->overrides[i].key, key) == 0) s = o->overrides[i].value;
  char *end;
  double v = s ? strtod(s, &end) : def;
  if (s && (end == s || *end)) v = def;
  return v >= min && v <= max ? v : def;
}

gw_policy_t *gw_policy_load(const gw_policy_opts_t *o, gw_errlist_t *errs) {
  char real[PATH_MAX], dir[PATH_MAX];
  if (!realpath(o->path, real)) {
    gw_errlist_add(errs, "%s: cannot open policy file: %s", o->path, strerror(errno));
    return NULL;
  }
  snprintf(dir, sizeof dir, "%s", real);
  gw_lua_paths_t paths = {o->lua_dir, dirname(dir), o->plugin_dirs, gw_lua_api_open, gw_lua_pattern_install};
  char err[512];
  gw_policy_t *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->vm = gw_lua_vm_new(&paths, err, sizeof err);
  if (!p->vm) {
    gw_errlist_add(errs, "%s", err);
    free(p);
    return NULL;
  }
  lua_State *L = p->vm->L;
  if (gw_lua_vm_set_policy_file(p->vm, real)) {
    gw_errlist_add(errs, "out of memory");
    goto fail;
  }
  /* bounded from the first instruction: 0 ("no cap") applies only once the load is over */
  double load_mb = preload_number(o, "lua.memory_limit_mb", "AIVO_LUA_MEMORY_LIMIT_MB",
                                  DEFAULT_MEMORY_LIMIT_MB, 0, 1 << 20);
  if (load_mb <= 0) load_mb = DEFAULT_MEMORY_LIMIT_MB;
  p->vm->mem_limit = (size_t)(load_mb * 1024 * 1024);
  double load_ms = preload_number(o, "lua.load_timeout_ms", "AIVO_LUA_LOAD_TIMEOUT_MS",
                                  DEFAULT_LOAD_TIMEOUT_MS, 10, 600000);
  p->vm->load_deadline_ns = gw_lua_vm_now_ns() + (uint64_t)(load_ms * 1e6);

  /* hooks, errors = require("aivo.runtime").load(path, overrides) */
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->vm->env_ref);
  lua_getfield(L, -1, "require");
  lua_remove(L, -2);
  lua_pushliteral(L, "aivo.runtime");
  if (gw_lua_vm_call(p->vm, 1, 1, LOAD_BUDGET) != GW_LUA_ERR_NONE) {
    gw_errlist_add(errs, "%s", lua_tostring(L, -1));
    goto fail;
  }
  lua_getfield(L, -1, "load");
  lua_remove(L, -2);
  lua_pushstring(L, o->path);
  lua_createtable(L, (int)o->n_overrides, 0);
  for (size_t i = 0; i < o->n_overrides; i++) {
    lua_createtable(L, 0, 2);
    lua_pushstring(L, o->overrides[i].key);
    lua_setfield(L, -2, "key");
    lua_pushstring(L, o->overrides[i].value);
    lua_setfield(L, -2, "value");
    lua_rawseti(L, -2, (int)i + 1);
  }
  gw_lua_err_t le = gw_lua_vm_call(p->vm, 2, 2, LOAD_BUDGET);
  /* runtime.load catches a plugin's error to report every one: name the limit plainly */
  if (p->vm->over_memory)
    gw_errlist_add(errs, "%s: the load reached the Lua memory limit (%g MB, lua.memory_limit_mb): "
                         "refused", o->path, load_mb);
  if (p->vm->over_time)
    gw_errlist_add(errs, "%s: the load took longer than lua.load_timeout_ms (%g ms): refused",
                   o->path, load_ms);
  if (le != GW_LUA_ERR_NONE) {
    gw_errlist_add(errs, "%s", lua_tostring(L, -1));
    goto fail;
  }
  if (!lua_istable(L, -2) || p->vm->over_memory || p->vm->over_time) {
    if (lua_istable(L, -1)) {
      for (int i = 1;; i++) {
        lua_rawgeti(L, -1, i);
        if (lua_isnil(L, -1)) break;
        gw_errlist_add(errs, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "(bad error)");
        lua_pop(L, 1);
      }
    }
    if (errs->n == 0) gw_errlist_add(errs, "%s: the policy did not load", o->path);
    goto fail;
  }
  lua_pop(L, 1); /* errors (nil) */

  size_t before = errs->n;
  p->on_auth_ref = hook_ref(L, "on_auth", errs);
  p->on_connect_ref = hook_ref(L, "on_connect", errs);
  p->on_message_ref = hook_ref(L, "on_message", errs);
  p->on_disconnect_ref = hook_ref(L, "on_disconnect", errs);
  p->on_quality_ref = hook_ref(L, "on_quality", errs);
  lua_getfield(L, -1, "config");
  if (lua_istable(L, -1)) read_settings(L, &p->settings, errs);
  else gw_errlist_add(errs, "aivo.runtime: hooks.config is not a table");
  if (lua_istable(L, -1)) read_traffic_settings(L, &p->settings, errs);
  if (lua_istable(L, -1)) read_store_settings(L, &p->settings, errs);
  if (lua_istable(L, -1)) read_socketio_settings(L, &p->settings, errs);
  if (lua_istable(L, -1)) read_redis_settings(L, &p->settings, errs);
  if (lua_istable(L, -1)) read_history_settings(L, &p->settings, errs);
  if (lua_istable(L, -1) && errs->n == before) p->auth = gw_auth_from_config(L, -1, errs);
  lua_pop(L, 1);
  read_quality_thresholds(L, &p->settings);
  read_namespaces(L, &p->settings, errs);
  read_replay_rules(L, &p->settings, errs);
  p->plugins = describe_plugins(L, &p->plugins_json);
  p->hooks_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  if (errs->n > before) goto fail;

  p->vm->load_deadline_ns = 0;
  p->vm->mem_limit = p->settings.memory_limit;
  p->vm->call_timeout_ms = p->settings.call_timeout_ms;
  gw_lua_vm_set_jit(p->vm, p->settings.jit);
  /* from now on no plugin can change what another one (or the runtime) uses */
  gw_lua_vm_freeze_modules(p->vm);
  p->generation = ++g_generation;
  lua_settop(L, 0);
  return p;
fail:
  gw_policy_free(p);
  return NULL;
}

void gw_policy_free(gw_policy_t *p) {
  if (!p) return;
  if (p->vm) gw_lua_presence_forget(p->vm->L);
  gw_lua_vm_free(p->vm);
  gw_auth_free(p->auth);
  for (size_t i = 0; i < p->settings.n_namespaces; i++) free(p->settings.namespaces[i]);
  free(p->settings.namespaces);
  gw_replay_rules_free(p->settings.replay, p->settings.n_replay);
  free(p->plugins);
  free(p->plugins_json);
  free(p);
}

/* ---- hook calls ---------------------------------------------------------------------- */

static const char *err_kind(gw_lua_err_t e) {
  return e == GW_LUA_ERR_BUDGET ? "instruction budget exceeded"
         : e == GW_LUA_ERR_MEMORY ? "memory limit reached"
                                  : "error";
}

/* aivo_lua_errors_total{plugin,hook,kind}: the plugin whose handler was running (blame), or
 * the file the error points at ("plugins/rooms.lua:12: ..." -> "rooms"), "policy" for
 * anything else. */
static void count_lua_error(const char *msg, const char *hook, gw_lua_err_t e, const char *blamed) {
  char plugin[64] = "policy";
  const char *colon = msg ? strstr(msg, ".lua:") : NULL;
  if (blamed && *blamed) {
    snprintf(plugin, sizeof plugin, "%s", blamed);
  } else if (colon) {
    const char *start = colon;
    while (start > msg && start[-1] != '/' && start[-1] != ' ' && start[-1] != '\n') start--;
    size_t n = (size_t)(colon - start);
    if (n && n < sizeof plugin) {
      memcpy(plugin, start, n);
      plugin[n] = 0;
      if (strcmp(plugin, "init") == 0 || strcmp(plugin, "runtime") == 0) strcpy(plugin, "policy");
    }
  }
  const char *kind = e == GW_LUA_ERR_BUDGET ? "budget" : e == GW_LUA_ERR_MEMORY ? "memory" : "error";
  const char *labels[3] = {plugin, hook, kind};
  gw_series_add(gw_metric_series(gw_stats.lua_errors, labels), 1);
}

/* After a failed hook call: who was running, from aivo.runtime's hooks.blame() ("plugin
 * 'chat' events['say']") and that plugin's name. 0 when it can tell; the stack is kept. */
static int blame(gw_policy_t *p, char *who, size_t wcap, char *plugin, size_t pcap) {
  lua_State *L = p->vm->L;
  int top = lua_gettop(L), found = 0;
  *who = *plugin = 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->hooks_ref);
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "blame");
    if (lua_isfunction(L, -1) && gw_lua_vm_call(p->vm, 0, 2, 100000) == GW_LUA_ERR_NONE &&
        lua_type(L, -2) == LUA_TSTRING) {
      snprintf(who, wcap, "%s", lua_tostring(L, -2));
      if (lua_type(L, -1) == LUA_TSTRING) snprintf(plugin, pcap, "%s", lua_tostring(L, -1));
      found = 1;
    }
  }
  lua_settop(L, top);
  return found ? 0 : -1;
}

/* Calls the hook with nargs arguments already pushed after it; 4 results (ok, code, message,
 * retry_after_ms: the 4th only for a rate-limit refusal). */
static void call_hook(gw_policy_t *p, gw_conn_t *c, const char *hook, int nargs, gw_verdict_t *v) {
  lua_State *L = p->vm->L;
  v->retry_after_ms = -1;
  gw_lua_err_t e = gw_lua_vm_call(p->vm, nargs, 4, p->settings.instruction_budget);
  if (e != GW_LUA_ERR_NONE) {
    char who[256], plugin[64];
    const char *msg = lua_tostring(L, -1) ? lua_tostring(L, -1) : "?";
    /* name the plugin handler and the event, not only the C-side hook */
    if (blame(p, who, sizeof who, plugin, sizeof plugin) == 0)
      gw_log(GW_LOG_ERROR, c ? c->id : 0, "%s failed (%s hook, %s): %s", who, hook, err_kind(e), msg);
    else
      gw_log(GW_LOG_ERROR, c ? c->id : 0, "policy %s hook failed (%s): %s", hook, err_kind(e), msg);
    count_lua_error(lua_tostring(L, -1), hook, e, plugin);
    v->status = GW_VERDICT_ERROR;
    v->code = "internal_error";
    v->message = "internal error";
    v->data_idx = 0;
    return;
  }
  int base = lua_gettop(L) - 3;
  if (lua_toboolean(L, base)) {
    v->status = GW_VERDICT_OK;
    v->data_idx = lua_isnil(L, base + 1) ? 0 : base + 1;
  } else {
    v->status = GW_VERDICT_REJECT;
    v->code = lua_tostring(L, base + 1);
    v->message = lua_tostring(L, base + 2);
    if (!v->code) v->code = "rejected";
    if (!v->message) v->message = v->code;
    v->data_idx = 0;
    if (lua_type(L, base + 3) == LUA_TNUMBER && strcmp(v->code, "rate_limited") == 0) {
      double r = lua_tonumber(L, base + 3);
      v->retry_after_ms = r > 0 ? r : 0;
    }
  }
}

/* Pushes the decoded JSON, or nil when there is none or it does not decode. */
static void push_json(gw_policy_t *p, const char *json, size_t len) {
  lua_State *L = p->vm->L;
  if (!json) lua_pushnil(L);
  else if (gw_lua_json_decode(p->vm, json, len)) {
    lua_pop(L, 1);
    lua_pushnil(L);
  }
}

/* "a=1&b=2" -> {a = "1", b = "2"}, without token (req.auth of a /ws upgrade). */
static void push_query_params(lua_State *L, const char *q) {
  lua_newtable(L);
  while (q && *q) {
    const char *amp = strchr(q, '&'), *end = amp ? amp : q + strlen(q);
    const char *eq = memchr(q, '=', (size_t)(end - q));
    if (eq && eq > q && !((size_t)(eq - q) == 5 && memcmp(q, "token", 5) == 0)) {
      lua_pushlstring(L, q, (size_t)(eq - q));
      lua_pushlstring(L, eq + 1, (size_t)(end - eq - 1));
      lua_rawset(L, -3);
    }
    q = amp ? amp + 1 : NULL;
  }
}

/* The req table of the auth and connect hooks (docs/policy-api.md). */
static void push_request(gw_policy_t *p, gw_conn_t *c, const gw_request_t *req) {
  lua_State *L = p->vm->L;
  lua_createtable(L, 0, 8);
  lua_pushstring(L, req->path ? req->path : "");
  lua_setfield(L, -2, "path");
  lua_pushstring(L, req->query ? req->query : "");
  lua_setfield(L, -2, "query");
  lua_pushstring(L, c->remote);
  lua_setfield(L, -2, "remote");
  lua_pushstring(L, gw_proto_name(c->proto));
  lua_setfield(L, -2, "protocol");
  lua_createtable(L, 0, 4);
  if (req->origin) {
    lua_pushstring(L, req->origin);
    lua_setfield(L, -2, "origin");
  }
  if (req->user_agent) {
    lua_pushstring(L, req->user_agent);
    lua_setfield(L, -2, "user-agent");
  }
  for (const char *const *h = req->headers; h && h[0] && h[1]; h += 2) {
    lua_pushstring(L, h[1]);
    lua_setfield(L, -2, h[0]);
  }
  lua_setfield(L, -2, "headers");
  if (req->auth_json) push_json(p, req->auth_json, req->auth_json_len);
  else if (c->proto == GW_PROTO_WS) push_query_params(L, req->query);
  else lua_pushnil(L);
  lua_setfield(L, -2, "auth");
  push_json(p, req->claims_json, req->claims_json ? strlen(req->claims_json) : 0);
  lua_setfield(L, -2, "claims");
  if (req->nsp) { /* Socket.IO */
    lua_pushstring(L, req->nsp);
    lua_setfield(L, -2, "namespace");
  }
}

/* hooks.on_auth(claims, req) with the req table at req_idx. */
static void call_auth(gw_policy_t *p, gw_conn_t *c, int req_idx, gw_verdict_t *v) {
  lua_State *L = p->vm->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->on_auth_ref);
  lua_getfield(L, req_idx, "claims");
  lua_pushvalue(L, req_idx);
  call_hook(p, c, "auth", 2, v);
  v->auth = v->status != GW_VERDICT_OK;
}

void gw_policy_on_auth(gw_policy_t *p, gw_conn_t *c, const gw_request_t *req, gw_verdict_t *v) {
  lua_State *L = p->vm->L;
  v->top = lua_gettop(L);
  push_request(p, c, req);
  call_auth(p, c, lua_gettop(L), v);
}

void gw_policy_on_connect(gw_policy_t *p, gw_conn_t *c, const gw_request_t *req, gw_verdict_t *v) {
  lua_State *L = p->vm->L;
  v->top = lua_gettop(L);
  push_request(p, c, req);
  int req_idx = lua_gettop(L);
  call_auth(p, c, req_idx, v);
  if (v->status != GW_VERDICT_OK) return;
  /* the identity the auth hook chose: req.user for the connect hook (which may rename) */
  if (v->data_idx) {
    lua_pushvalue(L, v->data_idx);
    lua_setfield(L, req_idx, "user");
  }
  lua_settop(L, req_idx);
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->on_connect_ref);
  gw_lua_push_conn(L, c);
  lua_pushvalue(L, req_idx);
  call_hook(p, c, "connect", 2, v);
}

void gw_policy_on_message(gw_policy_t *p, gw_conn_t *c, int msg_idx, gw_verdict_t *v) {
  lua_State *L = p->vm->L;
  v->top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->on_message_ref);
  gw_lua_push_conn(L, c);
  lua_pushvalue(L, msg_idx);
  call_hook(p, c, "message", 2, v);
}

void gw_policy_on_disconnect(gw_policy_t *p, gw_conn_t *c, const char *reason) {
  lua_State *L = p->vm->L;
  gw_verdict_t v;
  v.top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->on_disconnect_ref);
  gw_lua_push_conn(L, c);
  lua_pushstring(L, reason);
  call_hook(p, c, "disconnect", 2, &v); /* a failure here is only logged */
  lua_settop(L, v.top);
  gw_lua_forget_conn(L, c->id);
}

void gw_policy_on_quality(gw_policy_t *p, gw_conn_t *c, const char *previous) {
  lua_State *L = p->vm->L;
  gw_verdict_t v;
  v.top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->on_quality_ref);
  gw_lua_push_conn(L, c);
  gw_lua_push_quality(L, c);
  lua_pushstring(L, previous);
  lua_setfield(L, -2, "previous");
  call_hook(p, c, "quality", 2, &v); /* a failure here is only logged */
  lua_settop(L, v.top);
}

void gw_policy_verdict_end(gw_policy_t *p, gw_verdict_t *v) { lua_settop(p->vm->L, v->top); }

static gw_policy_t *g_current;

gw_policy_t *gw_policy_current(void) { return g_current; }

void gw_policy_set_current(gw_policy_t *p) {
  g_current = p;
  gw_settings_set(p ? &p->settings : NULL);
}
