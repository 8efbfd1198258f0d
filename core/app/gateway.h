/* The gateway: the current policy generation, the message path shared by every protocol,
 * fan-out, graceful drain, signals and policy reload. */
#ifndef GW_GATEWAY_H
#define GW_GATEWAY_H

#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "json_lua.h"
#include "loop.h"
#include "msgbuf.h"
#include "policy.h"

typedef struct gw_options {
  const char *policy_path;
  const char *listen_host; /* NULL: all interfaces */
  int port;
  int reuse_port;
  const char *lua_dir;
  const char *const *plugin_dirs;
  const gw_override_t *overrides;
  size_t n_overrides;
  const char *admin_host; /* the admin API's listener */
  int admin_port;         /* -1: no admin API */
  int admin_required;     /* asked for explicitly: failing to bind it is fatal */
  const char *admin_token;
  const char *tls_cert, *tls_key; /* https/wss (server.c, tls.c); NULL: plain */
  const char *redis_url;          /* --redis (cluster.h); NULL: REDIS_* and redis.* */
} gw_options_t;

/* Runs the gateway until it is drained; returns the process exit code. */
int gw_gateway_run(const gw_options_t *o);

/* Builds a new generation and swaps it in; on failure the running one keeps serving.
 * Returns 0 when swapped. Never call it from inside a hook. */
int gw_gateway_reload(const char *trigger);
/* JSON: path, generation, plugins, memory, the last reload and its errors. */
void gw_gateway_policy_status(gw_strbuf_t *out);

#endif
