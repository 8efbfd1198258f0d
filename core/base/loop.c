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
