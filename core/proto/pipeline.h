/* The pipeline: what happens to every connection whatever its protocol, between the
 * transport (net/, Socket.IO's namespaces) and the policy. A protocol calls open when a
 * connection asks to be accepted, message for each whole inbound message (which comes back
 * to the protocol through its table's on_message, conn.h), and closed once when it is gone. */
#ifndef GW_PIPELINE_H
#define GW_PIPELINE_H

#include <stddef.h>

#include "conn.h"
#include "policy.h"

/* The token is verified in C, then the policy's auth and connect hooks decide. 0: accepted;
 * otherwise the close code to refuse with, and reason filled in. */
int gw_pipeline_open(gw_conn_t *c, const gw_request_t *req, char *reason, size_t reasonlen);
/* Counts it, hands it to the connection's protocol (with decoded, what the protocol decoded
 * of it already, passed through untouched), observes the handling time. */
void gw_pipeline_message(gw_conn_t *c, const unsigned char *data, size_t len, int binary, const void *decoded);
/* The disconnect hook, rooms left, limits released; c is freed. */
void gw_pipeline_closed(gw_conn_t *c, const char *why);
/* The one place a message's verdict becomes the client's answer, for every protocol: an ack
 * (data encoded once), a rate-limit refusal, or a refusal, through the connection's table. */
void gw_pipeline_reply(gw_conn_t *c, gw_policy_t *p, const gw_verdict_t *v, int has_id, uint64_t id);
/* Called after every close (the gateway finishes a drain when the last one has gone). */
void gw_pipeline_set_closed_hook(void (*fn)(void));

#endif
