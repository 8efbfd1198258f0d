/* Watches folders for saved .lua files with inotify, debounced: editors write several times
 * per save, or write a new file and rename it over the old one, so folders are watched
 * rather than files. Each folder given is watched with its subfolders (bounded), and a
 * subfolder created later is watched as soon as it appears (a plugins/ folder made after
 * start). The gateway hands it the policy generation's folders after every reload. */
#ifndef GW_WATCH_H
#define GW_WATCH_H

#include <stddef.h>

#include "loop.h"

/* Bounds on the tree below each folder: deeper folders and folders past the count are not
 * watched (a warning says so once); folders whose name starts with '.' and node_modules
 * are skipped. */
#define GW_WATCH_MAX_DEPTH 8
#define GW_WATCH_MAX_DIRS 1024

typedef struct gw_watch gw_watch_t;
typedef void (*gw_watch_cb)(void *ud);

/* NULL (with a warning logged) when inotify is unavailable: SIGHUP still reloads. */
gw_watch_t *gw_watch_new(gw_loop_t *loop, double debounce_s, gw_watch_cb cb, void *ud);
void gw_watch_free(gw_watch_t *w);
/* Watches exactly these folders (NULL-terminated) and their subfolders from now on: new
 * ones are added, folders no longer listed are dropped, events already queued are kept.
 * A folder that does not exist is skipped. Returns the number of folders watched. NULL w:
 * 0. */
size_t gw_watch_set_dirs(gw_watch_t *w, const char *const *dirs);
/* A reload is about to read every source: the edits seen so far are covered by it, so their
 * events are read and dropped and a pending debounce is cancelled (no second reload of the
 * same files). Edits made after this call are seen as usual; folders created before it are
 * still added to the watch. NULL is a no-op. */
void gw_watch_absorb(gw_watch_t *w);

#endif
