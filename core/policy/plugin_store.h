/* The plugin store: small key/value data that plugins keep in C, so it survives policy
 * reloads (docs/policy-api.md, "The plugin store"). Entries are keyed by plugin, scope
 * (plugin-wide, a room, a user), scope id and key; values are opaque bytes (the Lua binding
 * stores JSON text). Bounded: value size, keys per plugin and total bytes. An entry lives
 * until it is deleted, its scope is cleared, its ttl passes or the process exits; it is
 * not persisted nor shared between gateway processes. */
#ifndef GW_PLUGIN_STORE_H
#define GW_PLUGIN_STORE_H

#include <stddef.h>

typedef struct gw_plugin_store gw_plugin_store_t;

typedef enum { GW_STORE_PLUGIN = 0, GW_STORE_ROOM, GW_STORE_USER } gw_store_scope_t;

typedef struct gw_plugin_store_limits {
  size_t max_bytes;       /* every entry of every plugin (keys, values and overhead) */
  size_t max_value_bytes; /* one value */
  size_t max_keys;        /* entries of one plugin, all scopes together */
} gw_plugin_store_limits_t;

#define GW_STORE_DEFAULT_MAX_BYTES (64u << 20)
#define GW_STORE_DEFAULT_MAX_VALUE_BYTES (64u << 10)
#define GW_STORE_DEFAULT_MAX_KEYS 10000u
/* names (plugin, scope id) and keys: 1..GW_STORE_MAX_NAME bytes, no NUL */
#define GW_STORE_MAX_NAME 256u
/* what an entry costs besides its key and value bytes: counted in max_bytes */
#define GW_STORE_ENTRY_OVERHEAD 64u

/* Why a write was refused (gw_plugin_store_set / _incr return GW_ELIMIT). */
typedef enum {
  GW_STORE_OK = 0,
  GW_STORE_TOO_LARGE,     /* the value is over max_value_bytes */
  GW_STORE_TOO_MANY_KEYS, /* the plugin has max_keys entries */
  GW_STORE_FULL,          /* the store is at max_bytes */
  GW_STORE_NOT_A_NUMBER,  /* incr of a value that is not a number */
} gw_store_refusal_t;

gw_plugin_store_t *gw_plugin_store_new(void);
void gw_plugin_store_free(gw_plugin_store_t *s);
/* The gateway's one store, made on first use; it lives as long as the process. */
gw_plugin_store_t *gw_plugin_store_shared(void);
/* The refusal as the short error string Lua sees ("too_large", ...). */
const char *gw_plugin_store_refusal_name(gw_store_refusal_t r);

/* now_ms: a monotonic clock (expiry); expires_at_ms: 0 for never. Returns 0, GW_EINVAL (a
 * bad name or key), GW_ENOMEM, or GW_ELIMIT with *why set. An entry that is replaced is
 * counted with its new size. */
int gw_plugin_store_set(gw_plugin_store_t *s, const gw_plugin_store_limits_t *lim, const char *plugin,
                        gw_store_scope_t scope, const char *id, const char *key, const char *value,
                        size_t vlen, double expires_at_ms, double now_ms, gw_store_refusal_t *why);
/* The value (valid until the next write to the store) or NULL when absent or expired. */
const char *gw_plugin_store_get(gw_plugin_store_t *s, const char *plugin, gw_store_scope_t scope,
                                const char *id, const char *key, size_t *vlen, double now_ms);
/* 0 when deleted, GW_ENOENT when there was nothing. */
int gw_plugin_store_delete(gw_plugin_store_t *s, const char *plugin, gw_store_scope_t scope,
                           const char *id, const char *key);
/* Adds `by` to a number (a missing entry counts as 0) and stores the result in *out. The
 * ttl (expires_at_ms) applies when the entry is created, or always when not 0. */
int gw_plugin_store_incr(gw_plugin_store_t *s, const gw_plugin_store_limits_t *lim, const char *plugin,
                         gw_store_scope_t scope, const char *id, const char *key, double by,
                         double expires_at_ms, double now_ms, double *out, gw_store_refusal_t *why);
/* Calls fn for every live key of a scope (no order); returns how many. */
size_t gw_plugin_store_keys(gw_plugin_store_t *s, const char *plugin, gw_store_scope_t scope,
                            const char *id, double now_ms, void (*fn)(const char *key, void *ud), void *ud);
/* Deletes every entry of a scope; returns how many. */
size_t gw_plugin_store_clear(gw_plugin_store_t *s, const char *plugin, gw_store_scope_t scope,
                             const char *id);
/* Totals: all bytes counted, and the entries and bytes of one plugin (plugin may be NULL). */
void gw_plugin_store_usage(const gw_plugin_store_t *s, const char *plugin, size_t *total_bytes,
                           size_t *plugin_keys, size_t *plugin_bytes);

#endif
