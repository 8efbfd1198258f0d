/* Socket.IO namespaces as a unit (issue 13): the real Socket.IO layer (socketio.c) over an
 * Engine.IO polling session with fake links, driven by a real policy generation, no server.
 * A CONNECT to a declared namespace is accepted (its sid, then what the connect hook queued);
 * one to an undeclared namespace gets CONNECT_ERROR "Invalid namespace"; the list comes from
 * the generation in force, so after a swap to one declaring other namespaces the answers
 * change for the same session (and a new session's open packet carries the new generation's
 * socketio.*); a second CONNECT to a connected namespace closes the session. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "engineio.h"
#include "loop.h"
#include "policy.h"
#include "socketio.h"
#include "stats.h"
#include "strbuf.h"

static void link_wake(gw_eio_link_t *l) { (void)l; }
static int link_big(gw_eio_link_t *l) { (void)l; return 0; }
static int link_write(gw_eio_link_t *l, gw_msgbuf_t *b) { (void)l, (void)b; return 1; }
static const gw_eio_links_t LINKS = {link_wake, link_big, link_write};

static char poll_link, post_link;
#define POLL ((gw_eio_link_t *)&poll_link)
#define POST ((gw_eio_link_t *)&post_link)

static char g_lua[1024], g_plugins[1024], g_policy_dir[1024];
static const char *g_plugin_dirs[2];

static gw_policy_t *load(const char *src) {
  char path[1100];
  snprintf(path, sizeof path, "%s/policy.lua", g_policy_dir);
  FILE *f = fopen(path, "w");
  if (!f) return NULL;
  fputs(src, f);
  fclose(f);
  gw_errlist_t errs = {0};
  gw_policy_opts_t o = {path, g_lua, g_plugin_dirs, NULL, 0};
  gw_policy_t *p = gw_policy_load(&o, &errs);
  for (size_t i = 0; i < errs.n; i++) fprintf(stderr, "policy: %s\n", errs.items[i]);
  gw_errlist_free(&errs);
  CHECK(p != NULL);
  return p;
}

static const char POLICY_ADMIN[] =
    "local gw = require 'aivo'\n"
    "return gw.policy { name = 'ns-a', namespaces = { '/admin' }, config = { auth = { required = false } },\n"
    "  connect = function(conn, req) conn:emit('welcome', { namespace = req.namespace }); return true end }\n";
static const char POLICY_CHAT[] =
    "local gw = require 'aivo'\n"
    "return gw.policy { name = 'ns-b', namespaces = { '/chat', '/ops' },\n"
    "  config = { auth = { required = false }, socketio = { ping_interval = 5000 } } }\n";

/* POSTs one packet, then takes what the session answered from a poll. */
static void exchange(gw_eio_t *s, const char *packet, gw_strbuf_t *out) {
  gw_eio_attach(s);
  CHECK_EQ_INT(gw_eio_post_begin(s, POST), 0);
  CHECK_EQ_INT(gw_eio_post_body(s, POST, packet, strlen(packet)), 0);
  gw_eio_detach(s, POST, 0);
  out->len = 0;
  gw_eio_attach(s);
  CHECK_EQ_INT(gw_eio_poll_begin(s, POLL), 0);
  CHECK_EQ_INT(gw_eio_poll_take(s, POLL, out), 0);
  gw_eio_detach(s, POLL, 0);
  if (gw_strbuf_append(out, "", 1) == 0) out->len--; /* a C string for the checks */
}

/* A new polling session; its open packet (the handshake GET's answer) into hs. */
static gw_eio_t *open_session(char *hs, size_t cap) {
  gw_eio_req_t req = {"EIO=4&transport=polling", NULL, "test", "127.0.0.1"};
  gw_eio_t *s = gw_eio_new(GW_EIO_POLLING, &req);
  CHECK(s != NULL);
  if (!s) return NULL;
  size_t n = gw_eio_handshake(s, hs, cap);
  CHECK(n > 0 && n < cap && hs[0] == '0');
  return s;
}

static void test_namespaces_follow_the_generation(gw_loop_t *loop) {
  gw_policy_t *a = load(POLICY_ADMIN);
  if (!a) return;
  gw_policy_set_current(a);
  gw_strbuf_t out = {0};
  char hs[512];
  gw_eio_t *s = open_session(hs, sizeof hs);
  if (!s) return;
  CHECK(strstr(hs, "\"pingInterval\":25000") != NULL); /* the default */

  exchange(s, "40/admin,", &out);
  CHECK(strncmp(out.p, "40/admin,{\"sid\":\"", 17) == 0);
  CHECK(strstr(out.p, "42/admin,[\"welcome\",{\"namespace\":\"/admin\"}]") != NULL);
  CHECK_EQ_INT(gw_sio_socket_count(s), 1);

  exchange(s, "40/chat,", &out);
  CHECK_STR(out.p, "44/chat,{\"message\":\"Invalid namespace\"}");
  CHECK_EQ_INT(gw_sio_socket_count(s), 1);

  /* a new generation declares other namespaces: the same session sees them at once */
  gw_policy_t *b = load(POLICY_CHAT);
  if (!b) return;
  gw_policy_set_current(b);
  exchange(s, "40/chat,", &out);
  CHECK(strncmp(out.p, "40/chat,{\"sid\":\"", 16) == 0);
  exchange(s, "40/ops,", &out);
  CHECK(strncmp(out.p, "40/ops,{\"sid\":\"", 15) == 0);
  CHECK_EQ_INT(gw_sio_socket_count(s), 3);
  /* the root namespace is always there */
  exchange(s, "40", &out);
  CHECK(strncmp(out.p, "40{\"sid\":\"", 10) == 0);
  CHECK_EQ_INT(gw_sio_socket_count(s), 4);

  /* and a session opened now gets the new generation's socketio.* */
  gw_eio_t *s2 = open_session(hs, sizeof hs);
  CHECK(strstr(hs, "\"pingInterval\":5000") != NULL);
  if (s2) gw_eio_close(s2, "test over", 0, 1000);

  /* a second CONNECT to a namespace already connected is a protocol error: the session
   * closes, as the Socket.IO server does */
  char sid[24];
  memcpy(sid, s->sid, sizeof sid);
  gw_eio_attach(s);
  CHECK_EQ_INT(gw_eio_post_begin(s, POST), 0);
  CHECK_EQ_INT(gw_eio_post_body(s, POST, "40/chat,", 8), -1);
  gw_eio_detach(s, POST, 0);
  ev_run(loop, EVRUN_NOWAIT); /* the reaper */
  CHECK(gw_eio_find(sid) == NULL);
  gw_strbuf_free(&out);
  gw_policy_set_current(NULL);
  gw_policy_free(a);
  gw_policy_free(b);
}

int main(void) {
  const char *src = getenv("AIVO_SOURCE_DIR");
  if (!src || !*src) src = AIVO_SOURCE_DIR;
  snprintf(g_lua, sizeof g_lua, "%s/lua", src);
  snprintf(g_plugins, sizeof g_plugins, "%s/plugins", src);
  g_plugin_dirs[0] = g_plugins;
  char tmpl[] = "/tmp/aivo-sio-XXXXXX";
  if (!mkdtemp(tmpl)) return 2;
  snprintf(g_policy_dir, sizeof g_policy_dir, "%s", tmpl);
  gw_loop_t *loop = gw_loop_new();
  gw_loop_set_main(loop);
  if (gw_stats_init()) return 2;
  gw_eio_set_upper(&gw_sio_eio_upper);
  gw_eio_set_links(&LINKS);
  test_namespaces_follow_the_generation(loop);
  gw_eio_shutdown();
  gw_loop_free(loop);
  char path[1100];
  snprintf(path, sizeof path, "%s/policy.lua", g_policy_dir);
  remove(path);
  rmdir(g_policy_dir);
  return check_done();
}
