/* What both libwebsockets callbacks (server.c for /ws, server_eio.c for Engine.IO) share:
 * receiving pieces into a message, the frame-header and close-frame checks lws 4.1.6 does
 * not make, direct writes, and the HTTP 429 refusal. */
#ifndef GW_LWS_COMMON_H
#define GW_LWS_COMMON_H

#include <stddef.h>

#include <libwebsockets.h>

#include "close_codes.h"
#include "msgbuf.h"
#include "rxbuf.h"

/* The refusal of a new
 * connection over a connection limit (HTTP 429, Retry-After, a JSON body). */
struct lws;
int gw_lws_limited_body(double retry_after_ms, const char *why, char *body, size_t cap, char retry[16]);
int gw_lws_refuse_limited(struct lws *wsi, double retry_after_ms, const char *why);
/* A whole HTTP answer in one write: status, a JSON content type, one more header (extra_value
 * NULL: none; extra_name "retry-after:" for a header by name, else NULL and extra_token),
 * the body. Returns -1, what the callback returns after it (the connection ends). */
int gw_lws_respond_json(struct lws *wsi, unsigned status, enum lws_token_indexes extra_token,
                        const char *extra_name, const char *extra_value, const char *body, size_t blen);
/* Direct writes: while a received message is handled (on), a send to a connection with
 * nothing queued goes to the socket at once instead of through a WRITEABLE round trip.
 * gw_lws_write_now: 0 written, 1 not now (queue it), -1 the write failed. */
void gw_lws_direct_writes(int on);
int gw_lws_write_now(struct lws *wsi, gw_msgbuf_t *b);
/* RFC 6455 §5.5.1 / §7.4: the payload of a peer's close frame. lws 4.1.6 rewrites the codes
 * below 3000 that may not be sent to 1002 itself, but lets a 1-byte payload and codes of 5000
 * and up through. -1 (lws's close reason set to 1002 "protocol error": the callback returns
 * -1 so lws answers with it) or 0. */
int gw_lws_check_peer_close(struct lws *wsi, const unsigned char *in, size_t len);
/* A frame announcing more than max (bytes of its message so far included) is refused on its
 * header: lws parses the header without a callback, so this asks lws for the length it read
 * (from a timer: a header alone, with no payload byte, is seen no other way). 1 when the
 * connection was told to close 1009. */
int gw_lws_frame_too_big(struct lws *wsi, size_t so_far, size_t max);
/* One received piece into r, with lws's frame state (first, final, binary, bytes to come). */
int gw_lws_rx_feed(struct lws *wsi, gw_rxbuf_t *r, const void *in, size_t len, size_t max,
                      const unsigned char **msg, size_t *msglen);

#endif
