/* A connection's bounded send queue: a ring of shared message buffers, limited in messages
 * and bytes. Past either limit the caller applies the slow-consumer rule (close 4008). */
#ifndef GW_SENDQ_H
#define GW_SENDQ_H

#include <stddef.h>

#include "msgbuf.h"

typedef struct gw_sendq {
  gw_msgbuf_t **ring;
  size_t cap, head, count; /* ring capacity grows on demand up to max_msgs */
  size_t bytes;
} gw_sendq_t;

/* GW_SENDQ_TOTAL: the process-wide budget (server.max_sendq_total_bytes) is spent; the
 * caller closes that connection 1013 "try again later". */
enum { GW_SENDQ_OK = 0, GW_SENDQ_FULL = -1, GW_SENDQ_NOMEM = -2, GW_SENDQ_TOTAL = -3 };

/* Bytes queued across every queue of the process, counted as each queue counts them (a
 * fan-out buffer queued to N connections counts N times), and their ceiling. */
void gw_sendq_set_total_budget(size_t bytes);
size_t gw_sendq_total_bytes(void);

void gw_sendq_init(gw_sendq_t *q);
/* Takes a new reference on b when it succeeds. */
int gw_sendq_push(gw_sendq_t *q, gw_msgbuf_t *b, size_t max_msgs, size_t max_bytes);
gw_msgbuf_t *gw_sendq_peek(const gw_sendq_t *q);
/* Removes the head and drops its reference. */
void gw_sendq_pop(gw_sendq_t *q);
void gw_sendq_clear(gw_sendq_t *q);
static inline size_t gw_sendq_count(const gw_sendq_t *q) { return q->count; }
static inline size_t gw_sendq_bytes(const gw_sendq_t *q) { return q->bytes; }

#endif
