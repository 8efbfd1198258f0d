/* Inbound WebSocket message assembly across fragments, shared by /ws and the Socket.IO
 * websocket transport: the size limit counts every fragment of a message, and the common
 * case (a whole message in one callback) is handed over without a copy. */
#ifndef GW_RXBUF_H
#define GW_RXBUF_H

#include <stddef.h>

typedef struct gw_rxbuf {
  unsigned char *p;
  size_t len, cap;
  size_t counted; /* bytes of the process-wide budget this message holds */
  int binary;
} gw_rxbuf_t;

/* GW_RX_BUDGET: the process-wide budget for messages being assembled is spent (the caller
 * closes 1013 "try again later"; other connections keep their partial messages). */
enum { GW_RX_MORE = 0, GW_RX_MESSAGE = 1, GW_RX_TOO_BIG = -1, GW_RX_NOMEM = -2, GW_RX_BUDGET = -3 };

/* The process-wide budget (server.max_inflight_bytes): the buffers of every message being
 * assembled (WebSocket fragments, Engine.IO polling bodies and Socket.IO attachments) count
 * against it, sized as allocated. A message handed over whole in one piece holds none. */
void gw_rxbuf_set_budget(size_t bytes);
size_t gw_rxbuf_inflight(void);
/* For other assemblers: *counted (what the caller holds now) becomes bytes. 0, or -1 when
 * growing to bytes would pass the budget (nothing changes then). bytes 0 releases. */
int gw_rxbuf_charge(size_t *counted, size_t bytes);

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
