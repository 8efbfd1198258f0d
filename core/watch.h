/* Watches the policy's folder (and its immediate subfolders, e.g. plugins/) for saved .lua
 * files with inotify, debounced: editors write several times per save, or write a new file
 * and rename it over the old one, so the folder is watched rather than the file. */
#ifndef GW_WATCH_H
#define GW_WATCH_H

#include "loop.h"

typedef struct gw_watch gw_watch_t;
typedef void (*gw_watch_cb)(void *ud);

/* NULL (with a warning logged) when inotify is unavailable: SIGHUP still reloads. */
gw_watch_t *gw_watch_new(gw_loop_t *loop, const char *dir, double debounce_s, gw_watch_cb cb, void *ud);
void gw_watch_free(gw_watch_t *w);
/* A reload is about to read every source: the edits seen so far are covered by it, so their
 * events are read and dropped and a pending debounce is cancelled (no second reload of the
 * same files). Edits made after this call are seen as usual. NULL is a no-op. */
void gw_watch_absorb(gw_watch_t *w);

#endif
