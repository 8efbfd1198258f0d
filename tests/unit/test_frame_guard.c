/* gw_frame_guard: follows a client socket's stream (HTTP heads, bodies, then WebSocket frame
 * headers) and marks it at the first unmasked frame, whatever way the bytes are split; a
 * plain HTTP connection is never marked, and the interposed recv() feeds it. */
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "frame_guard.h"

static const char UPGRADE[] =
    "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

static void *g_marked;
static void on_mark(void *owner) { g_marked = owner; }

/* a masked frame with a payload of len bytes (of 'a') into out; returns its size */
static size_t masked_frame(unsigned char *out, size_t len) {
  size_t o = 0;
  out[o++] = 0x81;
  if (len < 126) out[o++] = (unsigned char)(0x80 | len);
  else if (len < 65536) {
    out[o++] = 0x80 | 126;
    out[o++] = (unsigned char)(len >> 8);
    out[o++] = (unsigned char)len;
  } else {
    out[o++] = 0x80 | 127;
    for (int i = 7; i >= 0; i--) out[o++] = (unsigned char)((uint64_t)len >> (8 * i));
  }
  memcpy(out + o, "\x01\x02\x03\x04", 4);
  o += 4;
  memset(out + o, 'a', len);
  return o + len;
}

static void feed_str(int fd, const char *s) { gw_frame_guard_feed(fd, (const unsigned char *)s, strlen(s)); }

static void test_masked_frames_pass_unmasked_marks(void) {
  static unsigned char buf[70000 + 20];
  int owner;
  g_marked = NULL;
  CHECK_EQ_INT(gw_frame_guard_watch(5, 0), 0);
  gw_frame_guard_bind(5, &owner);
  feed_str(5, UPGRADE);
  /* frames of all three length forms, fed whole, then byte by byte */
  size_t sizes[] = {0, 5, 125, 126, 300, 65535, 65536, 70000};
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    size_t n = masked_frame(buf, sizes[i]);
    gw_frame_guard_feed(5, buf, n);
  }
  size_t n = masked_frame(buf, 200);
  for (size_t i = 0; i < n; i++) gw_frame_guard_feed(5, buf + i, 1);
  CHECK_EQ_INT(gw_frame_guard_violated(5), 0);
  CHECK(g_marked == NULL);
  /* payload bytes that look like an unmasked header are skipped, not parsed */
  n = masked_frame(buf, 4);
  memcpy(buf + n - 4, "\x81\x05\x81\x05", 4);
  gw_frame_guard_feed(5, buf, n);
  CHECK_EQ_INT(gw_frame_guard_violated(5), 0);
  /* an unmasked text frame, after a masked one in the same read */
  n = masked_frame(buf, 3);
  memcpy(buf + n, "\x81\x02hi", 4);
  /* the read is cut before the bad frame: the masked one is still handled */
  CHECK_EQ_INT(gw_frame_guard_feed(5, buf, n + 4), n);
  CHECK_EQ_INT(gw_frame_guard_violated(5), 1);
  CHECK_EQ_INT(gw_frame_guard_armed(5), 0);
  CHECK(g_marked == &owner);
  gw_frame_guard_feed(5, (const unsigned char *)"x", 1); /* the next read: armed */
  CHECK_EQ_INT(gw_frame_guard_armed(5), 1);
  gw_frame_guard_forget(5);
  CHECK_EQ_INT(gw_frame_guard_violated(5), 0);
}

static void test_head_split_anywhere(void) {
  /* the head in pieces of every size, then an unmasked ping */
  for (size_t step = 1; step < 20; step++) {
    CHECK_EQ_INT(gw_frame_guard_watch(7, 0), 0);
    for (size_t i = 0; i < sizeof UPGRADE - 1; i += step) {
      size_t k = sizeof UPGRADE - 1 - i < step ? sizeof UPGRADE - 1 - i : step;
      gw_frame_guard_feed(7, (const unsigned char *)UPGRADE + i, k);
    }
    CHECK_EQ_INT(gw_frame_guard_violated(7), 0);
    CHECK_EQ_INT(gw_frame_guard_feed(7, (const unsigned char *)"\x89\x00", 2), 0);
    CHECK_EQ_INT(gw_frame_guard_armed(7), 1); /* nothing before it: at once */
  }
  gw_frame_guard_forget(7);
}

static void test_plain_http_is_never_marked(void) {
  /* kept-alive polling: a POST whose body holds bytes like an unmasked frame, then a GET */
  CHECK_EQ_INT(gw_frame_guard_watch(9, 0), 0);
  feed_str(9, "POST /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n");
  gw_frame_guard_feed(9, (const unsigned char *)"\x81\x02hi", 4);
  feed_str(9, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK_EQ_INT(gw_frame_guard_violated(9), 0);
  /* then an upgrade on the same connection is followed */
  feed_str(9, UPGRADE);
  gw_frame_guard_feed(9, (const unsigned char *)"\x81\x02hi", 4);
  CHECK_EQ_INT(gw_frame_guard_violated(9), 1);
  gw_frame_guard_forget(9);
  /* a head line of 10 KB does not overflow anything; a chunked body stops the watch */
  CHECK_EQ_INT(gw_frame_guard_watch(9, 0), 0);
  static char big[10000];
  memset(big, 'x', sizeof big - 1);
  feed_str(9, "POST /x HTTP/1.1\r\nX-Big: ");
  feed_str(9, big);
  feed_str(9, "\r\nTransfer-Encoding: chunked\r\n\r\n");
  CHECK_EQ_INT(gw_frame_guard_count(), 0);
  gw_frame_guard_feed(9, (const unsigned char *)"\x81\x02hi", 4);
  CHECK_EQ_INT(gw_frame_guard_violated(9), 0);
}

static void test_unwatched_and_tls_sockets_are_left_alone(void) {
  /* a socket pair: the interposed recv() feeds a watched plain socket, and only that */
  int sv[2];
  CHECK_EQ_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  CHECK_EQ_INT(gw_frame_guard_watch(sv[1], 1), 0); /* TLS: recv bytes are ciphertext */
  char buf[512];
  CHECK(write(sv[0], UPGRADE, sizeof UPGRADE - 1) > 0);
  CHECK(write(sv[0], "\x81\x02hi", 4) == 4);
  CHECK(recv(sv[1], buf, sizeof buf, 0) > 0);
  CHECK_EQ_INT(gw_frame_guard_violated(sv[1]), 0);
  CHECK_EQ_INT(gw_frame_guard_watch(sv[1], 0), 0); /* plain now */
  CHECK(write(sv[0], UPGRADE, sizeof UPGRADE - 1) > 0);
  CHECK(recv(sv[1], buf, sizeof buf, MSG_PEEK) > 0); /* a peek is not followed */
  CHECK(recv(sv[1], buf, sizeof buf, 0) > 0);
  CHECK_EQ_INT(gw_frame_guard_violated(sv[1]), 0);
  CHECK(write(sv[0], "\x82\x01z", 3) == 3);
  CHECK(recv(sv[1], buf, sizeof buf, 0) == 3);
  CHECK_EQ_INT(gw_frame_guard_violated(sv[1]), 1);
  gw_frame_guard_forget(sv[1]);
  close(sv[0]);
  close(sv[1]);
}

int main(void) {
  gw_frame_guard_set_callback(on_mark);
  test_masked_frames_pass_unmasked_marks();
  test_head_split_anywhere();
  test_plain_http_is_never_marked();
  test_unwatched_and_tls_sockets_are_left_alone();
  gw_frame_guard_shutdown();
  return check_done();
}
