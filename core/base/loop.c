#include "loop.h"

gw_loop_t *gw_loop_new(void) {
  /* EVFLAG_NOSIGMASK: signals are delivered through ev_signal watchers only. */
  return ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOSIGMASK);
}

void gw_loop_free(gw_loop_t *loop) {
  if (loop) ev_loop_destroy(loop);
}

void gw_loop_run(gw_loop_t *loop) { ev_run(loop, 0); }

void gw_loop_break(gw_loop_t *loop) { ev_break(loop, EVBREAK_ALL); }

double gw_loop_now_ms(gw_loop_t *loop) { return ev_now(loop) * 1000.0; }

static gw_loop_t *g_main;
static int g_draining;

gw_loop_t *gw_loop_main(void) { return g_main; }
void gw_loop_set_main(gw_loop_t *loop) { g_main = loop; }
int gw_loop_draining(void) { return g_draining; }
void gw_loop_set_draining(int on) { g_draining = on; }
