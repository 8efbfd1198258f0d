#include "sendq.h"

#include <stdlib.h>
#include <string.h>

static size_t g_total, g_total_budget = (size_t)-1;

void gw_sendq_set_total_budget(size_t bytes) { g_total_budget = bytes; }
size_t gw_sendq_total_bytes(void) { return g_total; }

void gw_sendq_init(gw_sendq_t *q) { memset(q, 0, sizeof *q); }

static int grow(gw_sendq_t *q, size_t max_msgs) {
  size_t ncap = q->cap ? q->cap * 2 : 8;
  if (ncap > max_msgs) ncap = max_msgs;
  if (ncap <= q->cap) return GW_SENDQ_FULL;
  gw_msgbuf_t **nr = malloc(ncap * sizeof *nr);
  if (!nr) return GW_SENDQ_NOMEM;
  for (size_t i = 0; i < q->count; i++) nr[i] = q->ring[(q->head + i) % q->cap];
  free(q->ring);
  q->ring = nr;
  q->cap = ncap;
  q->head = 0;
  return GW_SENDQ_OK;
}

int gw_sendq_push(gw_sendq_t *q, gw_msgbuf_t *b, size_t max_msgs, size_t max_bytes) {
  if (q->count >= max_msgs || q->bytes + b->len > max_bytes) return GW_SENDQ_FULL;
  if (b->len > g_total_budget - g_total) return GW_SENDQ_TOTAL;
  if (q->count == q->cap) {
    int rc = grow(q, max_msgs);
    if (rc) return rc;
  }
  q->ring[(q->head + q->count) % q->cap] = gw_msgbuf_ref(b);
  q->count++;
  q->bytes += b->len;
  g_total += b->len;
  return GW_SENDQ_OK;
}

gw_msgbuf_t *gw_sendq_peek(const gw_sendq_t *q) { return q->count ? q->ring[q->head] : NULL; }

void gw_sendq_pop(gw_sendq_t *q) {
  if (!q->count) return;
  gw_msgbuf_t *b = q->ring[q->head];
  q->head = (q->head + 1) % q->cap;
  q->count--;
  q->bytes -= b->len;
  g_total -= b->len;
  gw_msgbuf_unref(b);
}

void gw_sendq_clear(gw_sendq_t *q) {
  while (q->count) gw_sendq_pop(q);
  free(q->ring);
  memset(q, 0, sizeof *q);
}
