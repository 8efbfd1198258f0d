#include "rxbuf.h"

#include <stdlib.h>
#include <string.h>

#define KEEP_AT_MOST 65536

/* One big buffer kept for the whole process: a connection gives its big buffer back after
 * each message (idle connections keep none), and the next big message, on any connection,
 * takes it warm instead of faulting fresh pages in (15 % of a 64 KiB echo). */
static unsigned char *g_spare;
static size_t g_spare_cap;

static unsigned char *take_spare(size_t need, size_t *cap) {
  if (!g_spare || g_spare_cap < need) return NULL;
  unsigned char *p = g_spare;
  *cap = g_spare_cap;
  g_spare = NULL;
  g_spare_cap = 0;
  return p;
}

static void give_back(unsigned char *p, size_t cap) {
  if (g_spare && g_spare_cap >= cap) {
    free(p);
    return;
  }
  free(g_spare);
  g_spare = p;
  g_spare_cap = cap;
}

static size_t g_inflight, g_budget = (size_t)-1;

void gw_rxbuf_set_budget(size_t bytes) { g_budget = bytes; }
size_t gw_rxbuf_inflight(void) { return g_inflight; }

int gw_rxbuf_charge(size_t *counted, size_t bytes) {
  if (bytes > *counted && (bytes - *counted > g_budget || g_inflight > g_budget - (bytes - *counted)))
    return -1;
  g_inflight = g_inflight - *counted + bytes;
  *counted = bytes;
  return 0;
}

void gw_rxbuf_release_spare(void) {
  free(g_spare);
  g_spare = NULL;
  g_spare_cap = 0;
}

int gw_rxbuf_feed(gw_rxbuf_t *r, int first, int final, int binary, const unsigned char *in,
                  size_t len, size_t rest, size_t max, const unsigned char **msg, size_t *msglen) {
  if (first) {
    r->len = 0;
    r->binary = binary;
  }
  /* rest: what the frame's header announced and is still to come; a frame announcing more
   * than the limit is refused with its first bytes, before any buffer is sized for it */
  if (r->len + len > max || rest > max - (r->len + len)) return GW_RX_TOO_BIG;
  if (first && final) { /* the common case: no copy */
    *msg = in;
    *msglen = len;
    return GW_RX_MESSAGE;
  }
  if (r->len + len > r->cap) {
    size_t ncap = r->cap ? r->cap : 4096;
    while (ncap < r->len + len) ncap *= 2;
    /* the whole frame at once when its size is known (within the limit: checked above) */
    size_t whole = r->len + len + rest;
    if (ncap < whole) ncap = whole;
    if (gw_rxbuf_charge(&r->counted, ncap)) return GW_RX_BUDGET;
    size_t spare_cap = 0;
    unsigned char *n = r->len == 0 && ncap > KEEP_AT_MOST ? take_spare(ncap, &spare_cap) : NULL;
    if (n) {
      free(r->p);
      ncap = spare_cap;
    } else if (!(n = realloc(r->p, ncap))) {
      return GW_RX_NOMEM;
    }
    r->p = n;
    r->cap = ncap;
    g_inflight = g_inflight - r->counted + ncap; /* a spare may be bigger than was asked */
    r->counted = ncap;
  } else if (r->counted < r->cap && gw_rxbuf_charge(&r->counted, r->cap)) {
    return GW_RX_BUDGET; /* a kept buffer starts holding a message again */
  }
  if (len) memcpy(r->p + r->len, in, len); /* empty fragments: no buffer may exist yet (p NULL) */
  r->len += len;
  if (!final) return GW_RX_MORE;
  *msg = r->p ? r->p : (const unsigned char *)""; /* a message of empty fragments only */
  *msglen = r->len;
  return GW_RX_MESSAGE;
}

void gw_rxbuf_done(gw_rxbuf_t *r) {
  r->len = 0;
  gw_rxbuf_charge(&r->counted, 0);
  if (r->cap > KEEP_AT_MOST) {
    give_back(r->p, r->cap);
    r->p = NULL;
    r->cap = 0;
  }
}

void gw_rxbuf_free(gw_rxbuf_t *r) {
  gw_rxbuf_charge(&r->counted, 0);
  free(r->p);
  r->p = NULL;
  r->len = r->cap = 0;
}
