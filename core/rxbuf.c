#include "rxbuf.h"

#include <stdlib.h>
#include <string.h>

#define KEEP_AT_MOST 65536

int gw_rxbuf_feed(gw_rxbuf_t *r, int first, int final, int binary, const unsigned char *in,
                  size_t len, size_t max, const unsigned char **msg, size_t *msglen) {
  if (first) {
    r->len = 0;
    r->binary = binary;
  }
  if (r->len + len > max) return GW_RX_TOO_BIG;
  if (first && final) { /* the common case: no copy */
    *msg = in;
    *msglen = len;
    return GW_RX_MESSAGE;
  }
  if (r->len + len > r->cap) {
    size_t ncap = r->cap ? r->cap : 4096;
    while (ncap < r->len + len) ncap *= 2;
    unsigned char *n = realloc(r->p, ncap);
    if (!n) return GW_RX_NOMEM;
    r->p = n;
    r->cap = ncap;
  }
  memcpy(r->p + r->len, in, len);
  r->len += len;
  if (!final) return GW_RX_MORE;
  *msg = r->p;
  *msglen = r->len;
  return GW_RX_MESSAGE;
}

void gw_rxbuf_done(gw_rxbuf_t *r) {
  r->len = 0;
  if (r->cap > KEEP_AT_MOST) gw_rxbuf_free(r);
}

void gw_rxbuf_free(gw_rxbuf_t *r) {
  free(r->p);
  r->p = NULL;
  r->len = r->cap = 0;
}
