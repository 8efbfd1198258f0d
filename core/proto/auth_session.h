/* A token's life on a live connection: when its exp passes the client is asked for a new
 * one (event "auth:refresh" {exp, grace}); it answers with "auth:refresh" {token} on either
 * protocol, and the connection is closed with 4401 "token expired" when no valid token for
 * the same identity arrives within auth.refresh_grace seconds. */
#ifndef GW_AUTH_SESSION_H
#define GW_AUTH_SESSION_H

#include <stddef.h>

#include "close_codes.h"
#include "conn.h"

struct gw_auth_claims;
struct gw_request;

/* The C half of a connect: verifies req->token against the running policy's keys (no token:
 * fine unless auth.required). 0 with claims filled (claims->json NULL without a token; free
 * it with gw_auth_claims_free), or GW_CLOSE_UNAUTHORIZED with the reason code, logged
 * (never the token) and counted in aivo_auth_refusals_total{reason}. Called by
 * gw_gateway_conn_open; protocols do not call it themselves. */
int gw_auth_session_check(gw_conn_t *c, const struct gw_request *req, struct gw_auth_claims *claims,
                          char *reason, size_t reasonlen);

/* Watches expiry exp (Unix seconds; 0: the token never expires). Restarts the watch. */
void gw_auth_session_start(gw_conn_t *c, double exp);
/* Stops the watch (the connection is going). */
void gw_auth_session_stop(gw_conn_t *c);

/* The client's auth:refresh {token}. 0 when the token verifies and names the connection's
 * identity: the new expiry is watched (and written to *new_exp). Otherwise -1 with the
 * reason code in reason ("token_expired", "identity_mismatch", ...); the connection keeps
 * its old deadline. The Socket.IO side calls this exactly like the native one. */
int gw_auth_session_refresh(gw_conn_t *c, const char *token, double *new_exp, char *reason,
                            size_t reasonlen);

/* Wall-clock Unix time in seconds (what exp and nbf are compared with). */
double gw_auth_now(void);

#endif
