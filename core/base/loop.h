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

#endif
