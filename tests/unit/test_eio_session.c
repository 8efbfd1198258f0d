/* Engine.IO session logic on its own (issue 13: it needs no gateway now): a session over
 * fake links (the network layer's table) carrying a fake upper protocol (Socket.IO's table).
 * Polling: POSTed packets reach the upper protocol in order, what the session sends wakes the
 * pending poll and comes out in one payload, a ping is answered; a malformed POST and a second
 * POST at once close the session; a graceful close ends with a close packet to the poll. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "engineio.h"
#include "loop.h"
#include "msgbuf.h"
#include "settings.h"
#include "strbuf.h"

static struct {
  int packets, pings, pongs, closed, wakes;
  char last[64];
} g;

static int up_packet(gw_eio_t *s, const unsigned char *data, size_t len, int binary) {
  (void)s, (void)binary;
  g.packets++;
  size_t n = len < sizeof g.last - 1 ? len : sizeof g.last - 1;
  memcpy(g.last, data, n);
  g.last[n] = 0;
  return 0;
}
static void up_closed(gw_eio_t *s, const char *reason) { (void)s, (void)reason, g.closed++; }
static void up_mark(gw_eio_t *s, int code) { (void)s, (void)code; }
static void up_reap(gw_eio_t *s) { (void)s; }
static size_t up_count(const gw_eio_t *s) { (void)s; return 1; } /* one namespace connected */
static void up_ping(gw_eio_t *s) { (void)s, g.pings++; }
static void up_pong(gw_eio_t *s, double rtt) { (void)s, (void)rtt, g.pongs++; }
static const gw_eio_upper_t UPPER = {up_packet, up_closed, up_mark, up_reap, up_count, up_ping, up_pong};

static void link_wake(gw_eio_link_t *l) { (void)l, g.wakes++; }
static int link_big(gw_eio_link_t *l) { (void)l; return 0; }
static int link_write(gw_eio_link_t *l, gw_msgbuf_t *b) { (void)l, (void)b; return 1; }
static const gw_eio_links_t LINKS = {link_wake, link_big, link_write};

/* link identities: engineio.c only compares and hands them back */
static char poll_link, post_link, post_link2;
#define POLL ((gw_eio_link_t *)&poll_link)
#define POST ((gw_eio_link_t *)&post_link)
#define POST2 ((gw_eio_link_t *)&post_link2)

/* A new polling session with the recorded calls reset; its sid copied to sid (if given), to
 * look it up after it may have been freed. */
static gw_eio_t *open_session(char sid[24]) {
  memset(&g, 0, sizeof g);
  gw_eio_req_t req = {"EIO=4&transport=polling", NULL, "test", "127.0.0.1"};
  gw_eio_t *s = gw_eio_new(GW_EIO_POLLING, &req);
  CHECK(s != NULL);
  if (s && sid) memcpy(sid, s->sid, 24);
  return s;
}

static void test_polling_roundtrip(gw_loop_t *loop) {
  gw_eio_t *s = open_session(NULL);
  if (!s) return;
  CHECK(gw_eio_find(s->sid) == s);
  /* two packets in one POST, in order */
  gw_eio_attach(s);
  CHECK_EQ_INT(gw_eio_post_begin(s, POST), 0);
  const char body[] = "40{\"a\":1}\x1e" "42[\"x\"]";
  CHECK_EQ_INT(gw_eio_post_body(s, POST, body, sizeof body - 1), 0);
  gw_eio_detach(s, POST, 0);
  CHECK_EQ_INT(g.packets, 2);
  CHECK_STR(g.last, "2[\"x\"]");
  /* a pending poll is woken by a send and takes everything queued */
  gw_eio_attach(s);
  CHECK_EQ_INT(gw_eio_poll_begin(s, POLL), 0);
  int w = g.wakes;
  gw_msgbuf_t *b1 = gw_msgbuf_from("4one", 4, 0), *b2 = gw_msgbuf_from("4two", 4, 0);
  CHECK_EQ_INT(gw_eio_send(s, b1), 0);
  CHECK_EQ_INT(gw_eio_send(s, b2), 0);
  gw_msgbuf_unref(b1);
  gw_msgbuf_unref(b2);
  CHECK(g.wakes > w);
  gw_strbuf_t out = {0};
  CHECK_EQ_INT(gw_eio_poll_take(s, POLL, &out), 0);
  CHECK(out.len == 9 && memcmp(out.p, "4one\x1e" "4two", 9) == 0);
  gw_eio_detach(s, POLL, 0);
  /* a graceful close: the pending poll gets the close packet, then the session is gone */
  char sid[24];
  memcpy(sid, s->sid, sizeof sid);
  gw_eio_attach(s);
  CHECK_EQ_INT(gw_eio_poll_begin(s, POLL), 0);
  gw_eio_close(s, "bye", 1, 1000);
  ev_run(loop, EVRUN_NOWAIT); /* the reaper */
  CHECK_EQ_INT(gw_eio_poll_take(s, POLL, &out), 0);
  CHECK(out.len >= 1 && out.p[out.len - 1] == '1');
  CHECK(gw_eio_find(sid) == NULL);
  gw_eio_detach(s, POLL, 0); /* the last link: the session is freed */
  gw_strbuf_free(&out);
}

static void test_overlapping_posts_close(gw_loop_t *loop) {
  char sid[24];
  gw_eio_t *s = open_session(sid);
  if (!s) return;
  gw_eio_attach(s);
  gw_eio_attach(s);
  CHECK_EQ_INT(gw_eio_post_begin(s, POST), 0);
  CHECK(gw_eio_post_begin(s, POST2) != 0);
  ev_run(loop, EVRUN_NOWAIT);
  CHECK(gw_eio_find(sid) == NULL);
  gw_eio_detach(s, POST2, 0);
  gw_eio_detach(s, POST, 0);
}

static void test_malformed_post_closes(gw_loop_t *loop) {
  char sid[24];
  gw_eio_t *s = open_session(sid);
  if (!s) return;
  gw_eio_attach(s);
  CHECK_EQ_INT(gw_eio_post_begin(s, POST), 0);
  CHECK_EQ_INT(gw_eio_post_body(s, POST, "9nonsense", 9), -1);
  gw_eio_detach(s, POST, 0);
  CHECK_EQ_INT(g.packets, 0);
  ev_run(loop, EVRUN_NOWAIT);
  CHECK(gw_eio_find(sid) == NULL); /* no longer open */
}

int main(void) {
  gw_loop_t *loop = gw_loop_new();
  gw_loop_set_main(loop);
  static gw_settings_t st;
  st.sendq_max_bytes = 1 << 20;
  st.sendq_max_messages = 1000;
  st.max_sendq_total_bytes = (size_t)1 << 30;
  st.max_inflight_bytes = (size_t)1 << 26;
  st.max_message_size = 1 << 20;
  st.socketio = (gw_socketio_settings_t)GW_EIO_CFG_DEFAULTS;
  gw_settings_set(&st);
  gw_eio_set_upper(&UPPER);
  gw_eio_set_links(&LINKS);
  test_polling_roundtrip(loop);
  test_overlapping_posts_close(loop);
  test_malformed_post_closes(loop);
  gw_eio_shutdown();
  gw_loop_free(loop);
  return check_done();
}
