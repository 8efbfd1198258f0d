/* gw_sendq: FIFO order through ring growth and wrap-around, both limits, and the references
 * it takes and gives back. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "sendq.h"

#define BIG ((size_t)1 << 40)

/* A buffer whose payload is its sequence number, so order can be checked. */
static gw_msgbuf_t *numbered(unsigned n, size_t len) {
  gw_msgbuf_t *b = gw_msgbuf_new(len < sizeof n ? sizeof n : len, 0);
  memcpy(gw_msgbuf_payload(b), &n, sizeof n);
  b->len = len; /* the byte count the queue sees */
  return b;
}

static unsigned number_of(gw_msgbuf_t *b) {
  unsigned n;
  memcpy(&n, gw_msgbuf_payload(b), sizeof n);
  return n;
}

static void test_empty(void) {
  gw_sendq_t q;
  gw_sendq_init(&q);
  CHECK(gw_sendq_peek(&q) == NULL);
  CHECK_EQ_INT(gw_sendq_count(&q), 0);
  CHECK_EQ_INT(gw_sendq_bytes(&q), 0);
  gw_sendq_pop(&q); /* popping an empty queue does nothing */
  CHECK_EQ_INT(gw_sendq_count(&q), 0);
  gw_sendq_clear(&q);
  CHECK(q.ring == NULL);
}

static void test_order_growth(void) {
  gw_sendq_t q;
  gw_sendq_init(&q);
  enum { N = 100 };
  gw_msgbuf_t *bufs[N];
  int push_fail = 0;
  for (unsigned i = 0; i < N; i++) {
    bufs[i] = numbered(i, 10);
    if (gw_sendq_push(&q, bufs[i], 1000, BIG) != GW_SENDQ_OK) push_fail++;
    gw_msgbuf_unref(bufs[i]); /* the queue's reference keeps it alive */
  }
  CHECK_EQ_INT(push_fail, 0);
  CHECK_EQ_INT(gw_sendq_count(&q), N);
  CHECK_EQ_INT(gw_sendq_bytes(&q), N * 10);
  CHECK(q.cap >= N);
  int order_bad = 0;
  for (unsigned i = 0; i < N; i++) {
    gw_msgbuf_t *b = gw_sendq_peek(&q);
    if (!b || number_of(b) != i || b->refs != 1) order_bad++;
    gw_sendq_pop(&q); /* drops the last reference: freed here, or LSan reports it */
  }
  CHECK_EQ_INT(order_bad, 0);
  CHECK_EQ_INT(gw_sendq_count(&q), 0);
  CHECK_EQ_INT(gw_sendq_bytes(&q), 0);
  CHECK(gw_sendq_peek(&q) == NULL);
  gw_sendq_clear(&q);
}

/* Grows while the head is in the middle of the ring: the copy must unwrap it. */
static void test_wrap_then_grow(void) {
  gw_sendq_t q;
  gw_sendq_init(&q);
  unsigned next_in = 0, next_out = 0;
  int bad = 0;
  for (int i = 0; i < 8; i++) {
    gw_msgbuf_t *b = numbered(next_in++, 1);
    if (gw_sendq_push(&q, b, 1000, BIG)) bad++;
    gw_msgbuf_unref(b);
  }
  CHECK_EQ_INT(q.cap, 8);
  for (int i = 0; i < 5; i++) {
    if (number_of(gw_sendq_peek(&q)) != next_out++) bad++;
    gw_sendq_pop(&q);
  }
  CHECK_EQ_INT(q.head, 5);
  /* 5 more: the ring wraps (head 5, count 8), then one more forces a grow */
  for (int i = 0; i < 6; i++) {
    gw_msgbuf_t *b = numbered(next_in++, 1);
    if (gw_sendq_push(&q, b, 1000, BIG)) bad++;
    gw_msgbuf_unref(b);
  }
  CHECK_EQ_INT(q.cap, 16);
  CHECK_EQ_INT(gw_sendq_count(&q), 9);
  while (gw_sendq_count(&q)) {
    if (number_of(gw_sendq_peek(&q)) != next_out++) bad++;
    gw_sendq_pop(&q);
  }
  CHECK_EQ_INT(next_out, next_in);
  CHECK_EQ_INT(bad, 0);
  gw_sendq_clear(&q);
}

/* Random pushes and pops against a plain array model. */
static void test_random_model(void) {
  gw_sendq_t q;
  gw_sendq_init(&q);
  enum { MAXM = 37 };
  const size_t max_bytes = 600;
  unsigned model[MAXM];
  size_t mlen[MAXM];
  size_t mhead = 0, mcount = 0, mbytes = 0;
  unsigned seq = 0;
  int bad = 0, fulls = 0;
  srand(7);
  for (int step = 0; step < 20000; step++) {
    if (rand() % 3 != 0) {
      size_t len = (size_t)(rand() % 40);
      gw_msgbuf_t *b = numbered(seq, len);
      int rc = gw_sendq_push(&q, b, MAXM, max_bytes);
      int want_full = mcount >= MAXM || mbytes + len > max_bytes;
      if (want_full) {
        fulls++;
        if (rc != GW_SENDQ_FULL || b->refs != 1) bad++;
      } else if (rc != GW_SENDQ_OK || b->refs != 2) {
        bad++;
      } else {
        model[(mhead + mcount) % MAXM] = seq;
        mlen[(mhead + mcount) % MAXM] = len;
        mcount++;
        mbytes += len;
      }
      seq++;
      gw_msgbuf_unref(b);
    } else if (mcount) {
      gw_msgbuf_t *b = gw_sendq_peek(&q);
      if (!b || number_of(b) != model[mhead] || b->len != mlen[mhead]) bad++;
      gw_sendq_pop(&q);
      mbytes -= mlen[mhead];
      mhead = (mhead + 1) % MAXM;
      mcount--;
    }
    if (gw_sendq_count(&q) != mcount || gw_sendq_bytes(&q) != mbytes || q.cap > MAXM) bad++;
  }
  CHECK_EQ_INT(bad, 0);
  CHECK(fulls > 0); /* the limits were actually reached */
  gw_sendq_clear(&q);
}

static void test_limit_count(void) {
  gw_sendq_t q;
  gw_sendq_init(&q);
  gw_msgbuf_t *b = gw_msgbuf_from("x", 1, 0);
  /* max 10 is not a power of two: the ring grows 8 -> 10, never past the limit */
  int ok = 0;
  for (int i = 0; i < 10; i++) ok += gw_sendq_push(&q, b, 10, BIG) == GW_SENDQ_OK;
  CHECK_EQ_INT(ok, 10);
  CHECK_EQ_INT(b->refs, 11);
  CHECK_EQ_INT(q.cap, 10);
  CHECK_EQ_INT(gw_sendq_push(&q, b, 10, BIG), GW_SENDQ_FULL);
  CHECK_EQ_INT(b->refs, 11); /* a refused push takes no reference */
  CHECK_EQ_INT(gw_sendq_count(&q), 10);
  /* one pop makes room for exactly one */
  gw_sendq_pop(&q);
  CHECK_EQ_INT(b->refs, 10);
  CHECK_EQ_INT(gw_sendq_push(&q, b, 10, BIG), GW_SENDQ_OK);
  CHECK_EQ_INT(gw_sendq_push(&q, b, 10, BIG), GW_SENDQ_FULL);
  /* a lower limit than the ring already holds refuses too */
  CHECK_EQ_INT(gw_sendq_push(&q, b, 5, BIG), GW_SENDQ_FULL);
  CHECK_EQ_INT(b->refs, 11);
  gw_sendq_clear(&q);
  CHECK_EQ_INT(b->refs, 1); /* clear gives every reference back */
  CHECK_EQ_INT(gw_sendq_count(&q), 0);
  CHECK_EQ_INT(gw_sendq_bytes(&q), 0);
  CHECK(q.ring == NULL);

  /* a queue with no room at all */
  CHECK_EQ_INT(gw_sendq_push(&q, b, 0, BIG), GW_SENDQ_FULL);
  CHECK_EQ_INT(b->refs, 1);
  /* max 1: one message, then full */
  CHECK_EQ_INT(gw_sendq_push(&q, b, 1, BIG), GW_SENDQ_OK);
  CHECK_EQ_INT(gw_sendq_push(&q, b, 1, BIG), GW_SENDQ_FULL);
  CHECK_EQ_INT(q.cap, 1);
  gw_sendq_clear(&q);
  CHECK_EQ_INT(b->refs, 1);
  gw_msgbuf_unref(b);
}

static void test_limit_bytes(void) {
  gw_sendq_t q;
  gw_sendq_init(&q);
  gw_msgbuf_t *b40 = gw_msgbuf_new(40, 1), *b20 = gw_msgbuf_new(20, 1),
              *b101 = gw_msgbuf_new(101, 1), *b0 = gw_msgbuf_new(0, 0);
  CHECK_EQ_INT(gw_sendq_push(&q, b40, 100, 100), GW_SENDQ_OK);
  CHECK_EQ_INT(gw_sendq_push(&q, b40, 100, 100), GW_SENDQ_OK);
  CHECK_EQ_INT(gw_sendq_bytes(&q), 80);
  CHECK_EQ_INT(gw_sendq_push(&q, b40, 100, 100), GW_SENDQ_FULL); /* 120 > 100 */
  CHECK_EQ_INT(b40->refs, 3);
  CHECK_EQ_INT(gw_sendq_push(&q, b20, 100, 100), GW_SENDQ_OK); /* exactly 100 fits */
  CHECK_EQ_INT(gw_sendq_bytes(&q), 100);
  CHECK_EQ_INT(gw_sendq_push(&q, b20, 100, 100), GW_SENDQ_FULL);
  CHECK_EQ_INT(b20->refs, 2);
  /* an empty message still fits a byte-full queue (the count limit still applies) */
  CHECK_EQ_INT(gw_sendq_push(&q, b0, 100, 100), GW_SENDQ_OK);
  CHECK_EQ_INT(gw_sendq_count(&q), 4);
  /* pops give the bytes back in order */
  gw_sendq_pop(&q);
  CHECK_EQ_INT(gw_sendq_bytes(&q), 60);
  CHECK_EQ_INT(b40->refs, 2);
  gw_sendq_pop(&q);
  CHECK_EQ_INT(gw_sendq_bytes(&q), 20);
  CHECK_EQ_INT(b40->refs, 1);
  CHECK(gw_sendq_peek(&q) == b20);
  gw_sendq_clear(&q);
  CHECK_EQ_INT(b20->refs, 1);
  CHECK_EQ_INT(b0->refs, 1);

  /* a message larger than the whole limit never fits, even in an empty queue */
  CHECK_EQ_INT(gw_sendq_push(&q, b101, 100, 100), GW_SENDQ_FULL);
  CHECK_EQ_INT(b101->refs, 1);
  CHECK_EQ_INT(gw_sendq_count(&q), 0);
  gw_sendq_clear(&q);

  gw_msgbuf_unref(b40);
  gw_msgbuf_unref(b20);
  gw_msgbuf_unref(b101);
  gw_msgbuf_unref(b0);
}

/* One buffer shared by many queues (a fan-out): each holds one reference. */
static void test_shared(void) {
  enum { Q = 5 };
  gw_sendq_t qs[Q];
  gw_msgbuf_t *b = gw_msgbuf_from("fan", 3, 0);
  for (int i = 0; i < Q; i++) {
    gw_sendq_init(&qs[i]);
    gw_sendq_push(&qs[i], b, 10, 100);
  }
  CHECK_EQ_INT(b->refs, Q + 1);
  gw_msgbuf_unref(b); /* the sender lets go; the queues keep it alive */
  CHECK_EQ_INT(b->refs, Q);
  gw_sendq_pop(&qs[0]);
  CHECK_EQ_INT(b->refs, Q - 1);
  for (int i = 1; i < Q - 1; i++) gw_sendq_clear(&qs[i]);
  CHECK_EQ_INT(b->refs, 1);
  CHECK(gw_sendq_peek(&qs[Q - 1]) == b);
  CHECK_STR((const char *)gw_msgbuf_payload(gw_sendq_peek(&qs[Q - 1])), "fan");
  gw_sendq_clear(&qs[Q - 1]); /* the last reference: freed (LSan checks) */
  gw_sendq_clear(&qs[0]);
}

/* server.max_sendq_total_bytes: bytes across every queue of the process; the push that
 * would pass it is refused (GW_SENDQ_TOTAL) and other queues keep theirs. */
static void test_total_budget(void) {
  gw_sendq_t a, b;
  gw_sendq_init(&a);
  gw_sendq_init(&b);
  gw_sendq_set_total_budget(1000);
  CHECK_EQ_INT(gw_sendq_total_bytes(), 0);
  gw_msgbuf_t *m = numbered(1, 400);
  CHECK_EQ_INT(gw_sendq_push(&a, m, 100, BIG), GW_SENDQ_OK);
  CHECK_EQ_INT(gw_sendq_push(&b, m, 100, BIG), GW_SENDQ_OK); /* a shared buffer counts per queue */
  CHECK_EQ_INT(gw_sendq_total_bytes(), 800);
  CHECK_EQ_INT(gw_sendq_push(&b, m, 100, BIG), GW_SENDQ_TOTAL);
  CHECK_EQ_INT(gw_sendq_count(&b), 1);
  /* the per-queue limit is still told apart */
  CHECK_EQ_INT(gw_sendq_push(&b, m, 1, BIG), GW_SENDQ_FULL);
  gw_sendq_pop(&a);
  CHECK_EQ_INT(gw_sendq_total_bytes(), 400);
  CHECK_EQ_INT(gw_sendq_push(&b, m, 100, BIG), GW_SENDQ_OK);
  gw_sendq_clear(&a);
  gw_sendq_clear(&b);
  CHECK_EQ_INT(gw_sendq_total_bytes(), 0);
  gw_sendq_set_total_budget((size_t)-1);
  gw_msgbuf_unref(m);
}

int main(void) {
  test_total_budget();
  test_empty();
  test_order_growth();
  test_wrap_then_grow();
  test_random_model();
  test_limit_count();
  test_limit_bytes();
  test_shared();
  return check_done();
}
