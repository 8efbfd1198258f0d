/* A policy generation: one sandboxed Lua state with a loaded, validated policy, the refs of
 * its hooks and the settings read from its merged config. The gateway swaps generations
 * between two events; C-owned state (connections, rooms, queues) never lives here. */
#ifndef GW_POLICY_H
#define GW_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "errlist.h"
#include "lua_vm.h"
#include "quality.h"
#include "settings.h"

typedef struct gw_override {
  const char *key, *value;
} gw_override_t;

typedef struct gw_policy_opts {
  const char *path;
  const char *lua_dir;
  const char *const *plugin_dirs; /* NULL-terminated */
  const gw_override_t *overrides;
  size_t n_overrides;
} gw_policy_opts_t;

typedef struct gw_policy {
  gw_lua_vm_t *vm;
  int hooks_ref, on_connect_ref, on_message_ref, on_disconnect_ref, on_quality_ref;
  gw_settings_t settings;
  unsigned generation;
  char *plugins; /* "echo@1.0.0, rooms@1.0.0" for logs */
  char *plugins_json; /* [{"name":..,"version":..,"path":..}] for GET /admin/policy */
  struct gw_auth *auth; /* auth.c: this generation's keys and auth.*, origins.* settings */
  int on_auth_ref;
} gw_policy_t;

/* NULL on failure, with every problem found in errs ("file:line: message"). */
gw_policy_t *gw_policy_load(const gw_policy_opts_t *o, gw_errlist_t *errs);
void gw_policy_free(gw_policy_t *p);
/* The running generation (NULL before the first load, after the last free); the gateway
 * sets it at every swap, which also publishes its settings (settings.h). */
gw_policy_t *gw_policy_current(void);
void gw_policy_set_current(gw_policy_t *p);

/* What the request looked like, for the connect hook. */
typedef struct gw_request {
  const char *path, *query, *origin, *user_agent;
  /* auth (auth.h): the token the client presented (NULL: none) and, for Socket.IO, the
   * CONNECT auth payload as JSON (req.auth); claims_json is set by the gateway once the
   * token is verified (req.claims). headers: more request headers for req.headers, as
   * lower-case name, value, name, value, ..., NULL (NULL: none). */
  const char *token;
  const char *auth_json;
  size_t auth_json_len;
  const char *claims_json;
  const char *const *headers;
  const char *nsp; /* Socket.IO: the namespace connected to (req.namespace) */
} gw_request_t;

typedef enum { GW_VERDICT_OK = 0, GW_VERDICT_REJECT, GW_VERDICT_ERROR } gw_verdict_status_t;

/* A hook's answer. Strings and data_idx point into the Lua stack: valid until
 * gw_policy_verdict_end(). */
typedef struct gw_verdict {
  gw_verdict_status_t status;
  const char *code, *message; /* REJECT and ERROR */
  int data_idx;               /* OK: stack index of the result (0: none) */
  double retry_after_ms;      /* REJECT by a rate limit ("rate_limited"): >= 0; else -1 */
  int auth;                   /* on_connect: the refusal came from the auth hook */
  int top;
} gw_verdict_t;

/* The auth hook (req->claims_json: the verified claims), then, if it accepted, the connect
 * hook; v->auth tells which one refused. OK: data_idx is the identity (a string) or 0. */
void gw_policy_on_connect(gw_policy_t *p, gw_conn_t *c, const gw_request_t *req, gw_verdict_t *v);
/* The auth hook alone (a token refresh on a live connection): OK with the identity. */
void gw_policy_on_auth(gw_policy_t *p, gw_conn_t *c, const gw_request_t *req, gw_verdict_t *v);
/* The msg table is at stack index msg_idx of p->vm->L. */
void gw_policy_on_message(gw_policy_t *p, gw_conn_t *c, int msg_idx, gw_verdict_t *v);
void gw_policy_on_disconnect(gw_policy_t *p, gw_conn_t *c, const char *reason);
/* The connection's quality class changed (from `previous`); a failure is only logged. */
void gw_policy_on_quality(gw_policy_t *p, gw_conn_t *c, const char *previous);
void gw_policy_verdict_end(gw_policy_t *p, gw_verdict_t *v);

#endif
