#include "msgbuf.h"

#include <stdlib.h>
#include <string.h>

gw_msgbuf_t *gw_msgbuf_new(size_t len, int binary) {
  gw_msgbuf_t *b = malloc(sizeof *b + GW_MSGBUF_PRE + len + 1);
  if (!b) return NULL;
  b->refs = 1;
  b->binary = binary ? 1 : 0;
  b->len = len;
  b->mem[GW_MSGBUF_PRE + len] = 0; /* handy for text payloads in logs and tests */
  return b;
}

gw_msgbuf_t *gw_msgbuf_from(const void *data, size_t len, int binary) {
  gw_msgbuf_t *b = gw_msgbuf_new(len, binary);
  if (b && len) memcpy(gw_msgbuf_payload(b), data, len);
  return b;
}

void gw_msgbuf_unref(gw_msgbuf_t *b) {
  if (b && --b->refs == 0) free(b);
}
