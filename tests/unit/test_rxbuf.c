/* gw_rxbuf: whole messages without a copy, pieces assembled in order, the size limit across
 * pieces, one allocation when the frame's size is known, and big buffers given back. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rxbuf.h"

#define MAX 1000

static void test_whole_message_is_not_copied(void) {
  gw_rxbuf_t r = {0};
  const unsigned char in[] = "hello";
  const unsigned char *msg = NULL;
  size_t len = 0;
  CHECK_EQ_INT(gw_rxbuf_feed(&r, 1, 1, 0, in, 5, 0, MAX, &msg, &len), GW_RX_MESSAGE);
  CHECK(msg == in);
  CHECK_EQ_INT(len, 5);
  CHECK(r.p == NULL); /* nothing allocated */
  gw_rxbuf_done(&r);
  gw_rxbuf_free(&r);
}

static void test_pieces_in_order(void) {
  gw_rxbuf_t r = {0};
  const unsigned char *msg = NULL;
  size_t len = 0;
  /* a binary message in three pieces, the size of the rest unknown (0) */
  CHECK_EQ_INT(gw_rxbuf_feed(&r, 1, 0, 1, (const unsigned char *)"abc", 3, 0, MAX, &msg, &len), GW_RX_MORE);
  CHECK_EQ_INT(gw_rxbuf_feed(&r, 0, 0, 0, (const unsigned char *)"def", 3, 0, MAX, &msg, &len), GW_RX_MORE);
  CHECK_EQ_INT(gw_rxbuf_feed(&r, 0, 1, 0, (const unsigned char *)"g", 1, 0, MAX, &msg, &len), GW_RX_MESSAGE);
  CHECK_EQ_INT(len, 7);
  CHECK(memcmp(msg, "abcdefg", 7) == 0);
  CHECK_EQ_INT(r.binary, 1); /* the type is the first piece's */
  gw_rxbuf_done(&r);
  /* the next message starts afresh */
  CHECK_EQ_INT(gw_rxbuf_feed(&r, 1, 0, 0, (const unsigned char *)"x", 1, 0, MAX, &msg, &len), GW_RX_MORE);
  CHECK_EQ_INT(gw_rxbuf_feed(&r, 0, 1, 0, (const unsigned char *)"y", 1, 0, MAX, &msg, &len), GW_RX_MESSAGE);
  CHECK_EQ_INT(len, 2);
  CHECK(memcmp(msg, "xy", 2) == 0);
  CHECK_EQ_INT(r.binary, 0);
  gw_rxbuf_free(&r);
}

static void test_limit_counts_every_piece(void) {
  gw_rxbuf_t r = {0};
  unsigned char piece[400];
  memset(piece, 'a', sizeof piece);
  const unsigned char *msg;
  size_t len;
  CHECK_EQ_INT(gw_rxbuf_feed(&r, 1, 0, 0, piece, 400, 0, MAX, &msg, &len), GW_RX_MORE);
  CHECK_EQ_INT(gw_rxbuf_feed(&r, 0, 0, 0, piece, 400, 0, MAX, &msg, &len), GW_RX_MORE);
  CHECK_EQ_INT(gw_rxbuf_feed(&r, 0, 1, 0, piece, 400, 0, MAX, &msg, &len), GW_RX_TOO_BIG);
  /* exactly the limit is fine */
  CHECK_EQ_INT(gw_rxbuf_feed(&r, 1, 0, 0, piece, 400, 0, MAX, &msg, &len), GW_RX_MORE);
  CHECK_EQ_INT(gw_rxbuf_feed(&r, 0, 1, 0, piece, 200, 0, MAX, &msg, &len), GW_RX_MESSAGE);
  CHECK_EQ_INT(len, 600);
  gw_rxbuf_free(&r);
  /* a single piece over the limit */
  unsigned char big[MAX + 1];
  memset(big, 'b', sizeof big);
  CHECK_EQ_INT(gw_rxbuf_feed(&r, 1, 1, 0, big, sizeof big, 0, MAX, &msg, &len), GW_RX_TOO_BIG);
  gw_rxbuf_free(&r);
}

static void test_known_size_is_one_allocation(void) {
  enum { TOTAL = 200000, PIECE = 1024 };
  unsigned char *src = malloc(TOTAL);
  for (size_t i = 0; i < TOTAL; i++) src[i] = (unsigned char)(i * 7);
  gw_rxbuf_t r = {0};
  const unsigned char *msg = NULL;
  size_t len = 0, off = 0;
  unsigned char *first_buffer = NULL;
  int moved = 0, rc = GW_RX_MORE;
  while (off < TOTAL) {
    size_t n = TOTAL - off < PIECE ? TOTAL - off : PIECE;
    rc = gw_rxbuf_feed(&r, off == 0, off + n == TOTAL, 0, src + off, n, TOTAL - off - n, 1 << 20, &msg, &len);
    if (off == 0) {
      first_buffer = r.p;
      CHECK(r.cap >= TOTAL); /* sized for the whole frame at the first piece */
    } else if (r.p != first_buffer) {
      moved = 1;
    }
    off += n;
  }
  CHECK_EQ_INT(rc, GW_RX_MESSAGE);
  CHECK(!moved); /* never grown, so never copied */
  CHECK_EQ_INT(len, TOTAL);
  CHECK(memcmp(msg, src, TOTAL) == 0);
  gw_rxbuf_done(&r);
  CHECK(r.p == NULL); /* a big buffer is given back after its message */
  /* a frame that announces more than the limit is refused with its first bytes, nothing
   * allocated for it (it used to get a buffer of the limit's size, then wait for the bytes) */
  CHECK_EQ_INT(gw_rxbuf_feed(&r, 1, 0, 0, src, 10, (size_t)1 << 40, MAX, &msg, &len), GW_RX_TOO_BIG);
  CHECK(r.p == NULL);
  CHECK_EQ_INT(gw_rxbuf_feed(&r, 1, 0, 0, src, 10, MAX - 10 + 1, MAX, &msg, &len), GW_RX_TOO_BIG);
  /* the rest of a continuation counts with what the message holds already */
  CHECK_EQ_INT(gw_rxbuf_feed(&r, 1, 0, 0, src, 600, 0, MAX, &msg, &len), GW_RX_MORE);
  CHECK_EQ_INT(gw_rxbuf_feed(&r, 0, 0, 0, src, 10, 391, MAX, &msg, &len), GW_RX_TOO_BIG);
  gw_rxbuf_free(&r);
  free(src);
}

/* A big buffer given back after its message is taken, warm, by the next big message on any
 * connection; idle connections keep nothing. */
static void test_spare_is_reused(void) {
  enum { TOTAL = 100000 };
  unsigned char *src = calloc(1, TOTAL);
  gw_rxbuf_t a = {0}, b = {0};
  const unsigned char *msg;
  size_t len;
  CHECK_EQ_INT(gw_rxbuf_feed(&a, 1, 0, 0, src, 1024, TOTAL - 1024, 1 << 20, &msg, &len), GW_RX_MORE);
  CHECK_EQ_INT(gw_rxbuf_feed(&a, 0, 1, 0, src + 1024, TOTAL - 1024, 0, 1 << 20, &msg, &len), GW_RX_MESSAGE);
  unsigned char *big = a.p;
  gw_rxbuf_done(&a);
  CHECK(a.p == NULL && a.cap == 0);
  CHECK_EQ_INT(gw_rxbuf_feed(&b, 1, 0, 0, src, 1024, TOTAL - 1024, 1 << 20, &msg, &len), GW_RX_MORE);
  CHECK(b.p == big); /* the same memory, no fresh allocation */
  CHECK_EQ_INT(gw_rxbuf_feed(&b, 0, 1, 0, src + 1024, TOTAL - 1024, 0, 1 << 20, &msg, &len), GW_RX_MESSAGE);
  CHECK_EQ_INT(len, TOTAL);
  gw_rxbuf_done(&b);
  gw_rxbuf_free(&a);
  gw_rxbuf_free(&b);
  gw_rxbuf_release_spare();
  free(src);
}

/* server.max_inflight_bytes: every message being assembled holds its buffer against one
 * process-wide budget; the message that would pass it is refused, the others go on, and a
 * finished or freed message gives its share back. */
static void test_process_budget(void) {
  enum { FRAME = 60000 };
  unsigned char *src = calloc(1, FRAME);
  gw_rxbuf_t a = {0}, b = {0}, c = {0}, d = {0};
  const unsigned char *msg;
  size_t len;
  gw_rxbuf_set_budget(200000);
  CHECK_EQ_INT(gw_rxbuf_inflight(), 0);
  /* whole messages in one piece hold nothing */
  CHECK_EQ_INT(gw_rxbuf_feed(&a, 1, 1, 0, src, FRAME, 0, 1 << 20, &msg, &len), GW_RX_MESSAGE);
  CHECK_EQ_INT(gw_rxbuf_inflight(), 0);
  CHECK_EQ_INT(gw_rxbuf_feed(&a, 1, 0, 0, src, 100, FRAME - 100, 1 << 20, &msg, &len), GW_RX_MORE);
  CHECK_EQ_INT(gw_rxbuf_feed(&b, 1, 0, 0, src, 100, FRAME - 100, 1 << 20, &msg, &len), GW_RX_MORE);
  CHECK_EQ_INT(gw_rxbuf_feed(&c, 1, 0, 0, src, 100, FRAME - 100, 1 << 20, &msg, &len), GW_RX_MORE);
  CHECK_EQ_INT(gw_rxbuf_inflight(), 3 * FRAME);
  CHECK_EQ_INT(gw_rxbuf_feed(&d, 1, 0, 0, src, 100, FRAME - 100, 1 << 20, &msg, &len), GW_RX_BUDGET);
  CHECK_EQ_INT(gw_rxbuf_inflight(), 3 * FRAME); /* the refused one holds nothing */
  /* the others are unaffected: a completes */
  CHECK_EQ_INT(gw_rxbuf_feed(&a, 0, 1, 0, src, FRAME - 100, 0, 1 << 20, &msg, &len), GW_RX_MESSAGE);
  CHECK_EQ_INT(len, FRAME);
  gw_rxbuf_done(&a);
  CHECK_EQ_INT(gw_rxbuf_inflight(), 2 * FRAME);
  /* room again */
  CHECK_EQ_INT(gw_rxbuf_feed(&d, 1, 0, 0, src, 100, FRAME - 100, 1 << 20, &msg, &len), GW_RX_MORE);
  gw_rxbuf_free(&b);
  gw_rxbuf_free(&c);
  gw_rxbuf_free(&d);
  CHECK_EQ_INT(gw_rxbuf_inflight(), 0);
  /* other assemblers (polling bodies) */
  size_t held = 0;
  CHECK_EQ_INT(gw_rxbuf_charge(&held, 150000), 0);
  CHECK_EQ_INT(gw_rxbuf_charge(&held, 250000), -1);
  CHECK_EQ_INT(held, 150000);
  CHECK_EQ_INT(gw_rxbuf_charge(&held, 0), 0);
  CHECK_EQ_INT(gw_rxbuf_inflight(), 0);
  gw_rxbuf_set_budget((size_t)-1);
  gw_rxbuf_free(&a);
  gw_rxbuf_release_spare();
  free(src);
}

int main(void) {
  test_process_budget();
  test_whole_message_is_not_copied();
  test_pieces_in_order();
  test_limit_counts_every_piece();
  test_known_size_is_one_allocation();
  test_spare_is_reused();
  return check_done();
}
