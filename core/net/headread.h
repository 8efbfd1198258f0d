/* The head of the first request on a new plain-HTTP connection, read by the gateway before
 * libwebsockets gets the socket. lws 4.1.6 closes a request whose headers do not fit its
 * header space without a word (no callback comes before its shutdown); looked at here, a
 * head over the limit gets "431 Request Header Fields Too Large" with a JSON reason, and the
 * socket of one within it is handed to lws untouched, so lws never meets a head it cannot
 * hold. No libwebsockets here: the owner adopts in its callback.
 *
 * Not covered (docs/protocol.md "Limits"): TLS connections (the bytes are encrypted until
 * lws has done the handshake) and later requests on a kept-alive connection, which lws
 * parses alone. */
#ifndef GW_HEADREAD_H
#define GW_HEADREAD_H

#include <stddef.h>

#include "loop.h"

/* The head is complete (it is still in the socket: lws reads it): fd is the owner's. */
typedef void (*gw_headread_cb)(int fd, void *ud);

/* Waits until fd (non-blocking) holds the end of a request head ("\r\n\r\n", or "\n\n"),
 * looking with MSG_PEEK; then cb. A head of max bytes with no end: 431 and a lingering close
 * (what the client still sends is read and dropped for up to 2 s, so the answer is not
 * destroyed by a reset). EOF, an error or timeout_s: fd is closed. 0, or -1 (out of
 * memory: fd closed). A head arriving in pieces is looked at again after 2 ms, then less
 * often (up to every 0.5 s): a peek does not empty the socket, so it stays readable. */
int gw_headread_start(gw_loop_t *loop, int fd, size_t max, double timeout_s, gw_headread_cb cb, void *ud);
/* Heads being read now. */
size_t gw_headread_count(void);
/* At shutdown: every head being read is dropped and its socket closed. */
void gw_headread_shutdown(void);

#endif
