/* gw_msgbuf: one shared, refcounted buffer per encoded message, with frame-header headroom. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "msgbuf.h"

static void test_new(void) {
  gw_msgbuf_t *b = gw_msgbuf_new(100, 0);
  if (!CHECK(b != NULL)) return;
  CHECK_EQ_INT(b->refs, 1);
  CHECK_EQ_INT(b->len, 100);
  CHECK_EQ_INT(b->binary, 0);
  /* the payload starts GW_MSGBUF_PRE bytes in: the frame header is written in front of it */
  CHECK(gw_msgbuf_payload(b) == b->mem + GW_MSGBUF_PRE);
  CHECK_EQ_INT(GW_MSGBUF_PRE, 16);
  /* headroom and payload are writable (ASan catches a short allocation) */
  memset(b->mem, 0xaa, GW_MSGBUF_PRE);
  memset(gw_msgbuf_payload(b), 'x', 100);
  /* the byte after the payload is a NUL for text payloads */
  CHECK_EQ_INT(gw_msgbuf_payload(b)[100], 0);
  gw_msgbuf_unref(b);

  gw_msgbuf_t *bin = gw_msgbuf_new(3, 1);
  if (CHECK(bin != NULL)) {
    CHECK_EQ_INT(bin->binary, 1);
    gw_msgbuf_unref(bin);
  }
  /* any non-zero binary flag means binary */
  gw_msgbuf_t *bin2 = gw_msgbuf_new(3, 42);
  if (CHECK(bin2 != NULL)) {
    CHECK_EQ_INT(bin2->binary, 1);
    gw_msgbuf_unref(bin2);
  }

  gw_msgbuf_t *empty = gw_msgbuf_new(0, 0);
  if (CHECK(empty != NULL)) {
    CHECK_EQ_INT(empty->len, 0);
    CHECK_EQ_INT(gw_msgbuf_payload(empty)[0], 0);
    gw_msgbuf_unref(empty);
  }
}

static void test_refs(void) {
  gw_msgbuf_t *b = gw_msgbuf_new(8, 0);
  if (!CHECK(b != NULL)) return;
  CHECK(gw_msgbuf_ref(b) == b); /* returns the buffer, for `q->ring[i] = ref(b)` */
  CHECK_EQ_INT(b->refs, 2);
  gw_msgbuf_ref(b);
  CHECK_EQ_INT(b->refs, 3);
  gw_msgbuf_unref(b);
  CHECK_EQ_INT(b->refs, 2);
  gw_msgbuf_unref(b);
  CHECK_EQ_INT(b->refs, 1);
  gw_msgbuf_unref(b); /* the last reference frees it (ASan/LSan would report a leak) */

  gw_msgbuf_unref(NULL); /* a no-op, like free(NULL) */
  CHECK(1);
}

static void test_from(void) {
  char src[] = "hello, fan-out";
  gw_msgbuf_t *b = gw_msgbuf_from(src, strlen(src), 0);
  if (!CHECK(b != NULL)) return;
  CHECK_EQ_INT(b->refs, 1);
  CHECK_EQ_INT(b->len, strlen(src));
  CHECK(memcmp(gw_msgbuf_payload(b), src, strlen(src)) == 0);
  CHECK_STR((const char *)gw_msgbuf_payload(b), "hello, fan-out");
  /* a copy: changing the source afterwards does not touch the buffer */
  src[0] = 'J';
  CHECK_EQ_INT(gw_msgbuf_payload(b)[0], 'h');
  gw_msgbuf_unref(b);

  const unsigned char bin[] = {0, 1, 2, 0xff, 0};
  gw_msgbuf_t *c = gw_msgbuf_from(bin, sizeof bin, 1);
  if (CHECK(c != NULL)) {
    CHECK_EQ_INT(c->binary, 1);
    CHECK_EQ_INT(c->len, sizeof bin);
    CHECK(memcmp(gw_msgbuf_payload(c), bin, sizeof bin) == 0);
    gw_msgbuf_unref(c);
  }

  /* zero bytes from NULL is allowed */
  gw_msgbuf_t *e = gw_msgbuf_from(NULL, 0, 0);
  if (CHECK(e != NULL)) {
    CHECK_EQ_INT(e->len, 0);
    gw_msgbuf_unref(e);
  }
}

int main(void) {
  test_new();
  test_refs();
  test_from();
  return check_done();
}
