/* The admin API, served on its own listener (loopback by default), optionally behind a bearer
 * token: policy status and reload, publish to a room or user, disconnect, connections and
 * rooms (counts and paged lists).
 * Protocol-free: server.c hands over a parsed request and writes the response. */
#ifndef GW_ADMIN_H
#define GW_ADMIN_H

#include <stddef.h>

#include "server.h" /* the request and response types: the listener is the server's */
#include "strbuf.h"

/* What the admin API asks of the gateway (registered by gateway.c at start, so admin.c does
 * not include the gateway): a reload, and the policy's status as JSON. */
typedef struct gw_admin_ops {
  int (*reload)(const char *trigger);
  void (*policy_status)(gw_strbuf_t *out);
  void (*cluster_status)(gw_strbuf_t *out); /* GET /admin/cluster */
} gw_admin_ops_t;
void gw_admin_set_ops(const gw_admin_ops_t *ops);

/* token NULL or empty: no token required (the listener is on loopback by default). */
void gw_admin_set_token(const char *token);
void gw_admin_handle(const gw_admin_request_t *req, gw_admin_response_t *res);

#endif
