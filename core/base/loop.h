/* The one event loop. Everything (lws, hiredis, timers, signals, file watches) runs on it.
 * libev is the measured choice (docs/architecture.md); other modules use the ev_* watcher
 * types through this header only. */
#ifndef GW_LOOP_H
#define GW_LOOP_H

#include <ev.h>

typedef struct ev_loop gw_loop_t;

gw_loop_t *gw_loop_new(void);
void gw_loop_free(gw_loop_t *loop);
void gw_loop_run(gw_loop_t *loop);
void gw_loop_break(gw_loop_t *loop);
/* Monotonic milliseconds, as seen by the loop (cached per iteration). */
double gw_loop_now_ms(gw_loop_t *loop);

/* The process's one loop, set by the gateway at start (NULL before), for the modules that
 * start watchers of their own. */
gw_loop_t *gw_loop_main(void);
void gw_loop_set_main(gw_loop_t *loop);

/* Draining: set once on SIGTERM/SIGINT; new connections are refused from then on. */
int gw_loop_draining(void);
void gw_loop_set_draining(int on);

#endif
