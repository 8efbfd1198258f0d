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
} gw_options_t;

/* Runs the gateway until it is drained; returns the process exit code. */
int gw_gateway_run(const gw_options_t *o);

const gw_settings_t *gw_settings(void);
gw_policy_t *gw_gateway_policy(void);
gw_loop_t *gw_gateway_loop(void);
double gw_gateway_now_ms(void);
void gw_gateway_random(void *buf, size_t len);

/* Connection lifecycle, called by the server. */
/* 0: accepted; otherwise the close code to refuse with, and reason filled in. */
int gw_gateway_conn_open(gw_conn_t *c, const gw_request_t *req, char *reason, size_t reasonlen);
void gw_gateway_conn_message(gw_conn_t *c, const unsigned char *data, size_t len, int binary);
void gw_gateway_conn_closed(gw_conn_t *c, const char *why);

int gw_gateway_draining(void);
/* Builds a new generation and swaps it in; on failure the running one keeps serving.
 * Returns 0 when swapped. Never call it from inside a hook. */
int gw_gateway_reload(const char *trigger);
/* JSON: path, generation, plugins, memory, the last reload and its errors. */
void gw_gateway_policy_status(gw_strbuf_t *out);
/* Updates the gauges that are read rather than counted (before a metrics scrape). */
void gw_gateway_refresh_stats(void);
void gw_gateway_count_slow_consumer(size_t dropped_messages);

/* Outbound, called from Lua and the protocols. json == NULL: no data. */
int gw_gateway_send(gw_conn_t *c, gw_msgbuf_t *b);
int gw_gateway_emit(gw_conn_t *c, const char *ev, size_t evlen, const char *json, size_t jlen);
int gw_gateway_send_binary(gw_conn_t *c, const void *data, size_t len);
size_t gw_gateway_publish(const char *room, const char *ev, size_t evlen, const char *json,
                          size_t jlen, uint64_t except_id);
void gw_gateway_close(gw_conn_t *c, int code, const char *reason);
/* Refuses a message over a rate limit, in the connection's protocol (has_id: it asked for an
 * ack). Every protocol calls this; counts websocket_rate_limited_total. */
void gw_gateway_rate_limited(gw_conn_t *c, int has_id, uint64_t id, double retry_after_ms,
                             const char *message);

#endif
