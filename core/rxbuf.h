/* Inbound WebSocket message assembly across fragments, shared by /ws and the Socket.IO
 * websocket transport: the size limit counts every fragment of a message, and the common
 * case (a whole message in one callback) is handed over without a copy. */
#ifndef GW_RXBUF_H
#define GW_RXBUF_H

#include <stddef.h>

typedef struct gw_rxbuf {
  unsigned char *p;
  size_t len, cap;
  int binary;
} gw_rxbuf_t;

enum { GW_RX_MORE = 0, GW_RX_MESSAGE = 1, GW_RX_TOO_BIG = -1, GW_RX_NOMEM = -2 };

/* Feeds one piece. rest: how many more bytes of this frame are known to follow (lws's
 * lws_remaining_packet_payload), so a message lws hands over in pieces gets its buffer in
 * one allocation, not by doubling and copying. GW_RX_MESSAGE: *msg and *msglen hold the
 * whole message (valid until the next feed), r->binary its type; call gw_rxbuf_done()
 * after handling it. */
int gw_rxbuf_feed(gw_rxbuf_t *r, int first, int final, int binary, const unsigned char *in,
                  size_t len, size_t rest, size_t max, const unsigned char **msg, size_t *msglen);
/* After a message: reset, and give a big buffer back (idle connections keep none; the
 * process keeps one, the biggest, for the next big message). */
void gw_rxbuf_done(gw_rxbuf_t *r);
void gw_rxbuf_free(gw_rxbuf_t *r);
/* At exit: the process's kept buffer. */
void gw_rxbuf_release_spare(void);

#endif
