#include "watch.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "log.h"

#define WATCH_MASK (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE)

struct gw_watch {
  gw_loop_t *loop;
  int fd;
  ev_io io;
  ev_timer debounce;
  double debounce_s;
  gw_watch_cb cb;
  void *ud;
};

static int is_lua(const char *name, size_t len) {
  return len > 4 && memcmp(name + len - 4, ".lua", 4) == 0;
}

static void on_debounced(struct ev_loop *loop, ev_timer *t, int revents) {
  (void)loop, (void)revents;
  gw_watch_t *w = t->data;
  w->cb(w->ud);
}

static void on_events(struct ev_loop *loop, ev_io *io, int revents) {
  (void)revents;
  gw_watch_t *w = io->data;
  char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
  int relevant = 0;
  for (;;) {
    ssize_t n = read(w->fd, buf, sizeof buf);
    if (n <= 0) break;
    for (char *p = buf; p < buf + n;) {
      struct inotify_event *e = (struct inotify_event *)p;
      size_t len = e->len ? strlen(e->name) : 0;
      if (e->mask & IN_Q_OVERFLOW) relevant = 1;
      else if (len && is_lua(e->name, len)) relevant = 1; /* not editor swap or backup files */
      p += sizeof *e + e->len;
    }
  }
  if (!relevant) return;
  ev_timer_stop(loop, &w->debounce);
  ev_timer_set(&w->debounce, w->debounce_s, 0);
  ev_timer_start(loop, &w->debounce);
}

gw_watch_t *gw_watch_new(gw_loop_t *loop, const char *dir, double debounce_s, gw_watch_cb cb, void *ud) {
  int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) {
    gw_warn("cannot watch %s for policy edits (inotify: %s); reload with SIGHUP", dir, strerror(errno));
    return NULL;
  }
  if (inotify_add_watch(fd, dir, WATCH_MASK) < 0) {
    gw_warn("cannot watch %s for policy edits (%s); reload with SIGHUP", dir, strerror(errno));
    close(fd);
    return NULL;
  }
  DIR *d = opendir(dir);
  for (struct dirent *de; d && (de = readdir(d));) {
    if (de->d_name[0] == '.' || de->d_type != DT_DIR) continue;
    char sub[PATH_MAX];
    if (snprintf(sub, sizeof sub, "%s/%s", dir, de->d_name) < (int)sizeof sub)
      inotify_add_watch(fd, sub, WATCH_MASK); /* best effort: plugins/ and the like */
  }
  if (d) closedir(d);
  gw_watch_t *w = calloc(1, sizeof *w);
  if (!w) {
    close(fd);
    return NULL;
  }
  w->loop = loop;
  w->fd = fd;
  w->debounce_s = debounce_s;
  w->cb = cb;
  w->ud = ud;
  ev_io_init(&w->io, on_events, fd, EV_READ);
  w->io.data = w;
  ev_init(&w->debounce, on_debounced);
  w->debounce.data = w;
  ev_io_start(loop, &w->io);
  return w;
}

void gw_watch_absorb(gw_watch_t *w) {
  if (!w) return;
  char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
  while (read(w->fd, buf, sizeof buf) > 0) {
  }
  ev_timer_stop(w->loop, &w->debounce);
}

void gw_watch_free(gw_watch_t *w) {
  if (!w) return;
  ev_io_stop(w->loop, &w->io);
  ev_timer_stop(w->loop, &w->debounce);
  close(w->fd);
  free(w);
}
