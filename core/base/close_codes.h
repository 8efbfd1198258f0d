/* WebSocket close codes the gateway sends, in one place (docs/protocol.md "Close codes").
 * 1xxx are RFC 6455's; 4xxx are the gateway's, and an HTTP refusal of an upgrade uses the
 * status the last three digits name (4401 -> 401). */
#ifndef GW_CLOSE_CODES_H
#define GW_CLOSE_CODES_H

#define GW_CLOSE_NORMAL 1000
#define GW_CLOSE_GOING_AWAY 1001       /* draining: the server shuts down */
#define GW_CLOSE_PROTOCOL_ERROR 1002   /* unmasked frame, Engine.IO parse error */
#define GW_CLOSE_TOO_BIG 1009          /* a message over server.max_message_size */
#define GW_CLOSE_INTERNAL 1011         /* a policy hook failed: fail closed */
#define GW_CLOSE_TRY_AGAIN_LATER 1013  /* a process-wide budget is spent (settings.h) */
#define GW_CLOSE_SLOW_CONSUMER 4008    /* its send queue went over the limits */
#define GW_CLOSE_BAD_REQUEST 4400      /* an identity the gateway cannot use */
#define GW_CLOSE_UNAUTHORIZED 4401     /* token or auth hook */
#define GW_CLOSE_FORBIDDEN 4403        /* the connect hook refused */
#define GW_CLOSE_RATE_LIMITED 4429     /* a policy closing an abuser; too many connections of one identity */

#endif
