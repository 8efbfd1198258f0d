/* An encoded outbound message, shared by every recipient of a fan-out (refcounted).
 * Headroom before the payload is reserved for the WebSocket frame header (LWS_PRE). */
#ifndef GW_MSGBUF_H
#define GW_MSGBUF_H

#include <stddef.h>

#define GW_MSGBUF_PRE 16 /* == LWS_PRE; checked in server.c */

typedef struct gw_msgbuf {
  unsigned refs;
  unsigned binary : 1;
  size_t len; /* payload bytes */
  unsigned char mem[]; /* GW_MSGBUF_PRE bytes of headroom, then the payload */
} gw_msgbuf_t;

/* A buffer with room for len payload bytes; one reference held by the caller. */
gw_msgbuf_t *gw_msgbuf_new(size_t len, int binary);
gw_msgbuf_t *gw_msgbuf_from(const void *data, size_t len, int binary);
static inline unsigned char *gw_msgbuf_payload(gw_msgbuf_t *b) { return b->mem + GW_MSGBUF_PRE; }
static inline gw_msgbuf_t *gw_msgbuf_ref(gw_msgbuf_t *b) {
  b->refs++;
  return b;
}
void gw_msgbuf_unref(gw_msgbuf_t *b);

#endif
