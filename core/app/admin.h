/* The admin API, served on its own listener (loopback by default), optionally behind a bearer
 * token: policy status and reload, publish to a room or user, disconnect, connections and
 * rooms (counts and paged lists).
 * Protocol-free: server.c hands over a parsed request and writes the response. */
#ifndef GW_ADMIN_H
#define GW_ADMIN_H

#include <stddef.h>

#include "json_lua.h"

#define GW_ADMIN_MAX_BODY (1u << 20)

typedef struct gw_admin_request {
  const char *method; /* "GET", "POST", ... */
  const char *path;
  const char *query; /* "limit=2&cursor=5" (arguments as lws decoded them), or "" / NULL */
  const char *authorization; /* the Authorization header, or NULL */
  const char *body;
  size_t body_len;
} gw_admin_request_t;

typedef struct gw_admin_response {
  int status;
  gw_strbuf_t body; /* JSON; freed by the caller */
} gw_admin_response_t;

/* token NULL or empty: no token required (the listener is on loopback by default). */
void gw_admin_set_token(const char *token);
void gw_admin_handle(const gw_admin_request_t *req, gw_admin_response_t *res);

#endif
