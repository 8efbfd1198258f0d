#include "watch.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define WATCH_MASK (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ONLYDIR)

typedef struct watched {
  int wd;
  int keep; /* mark of gw_watch_set_dirs */
  char *path;
} watched_t;

struct gw_watch {
  gw_loop_t *loop;
  int fd;
  ev_io io;
  ev_timer debounce;
  double debounce_s;
  gw_watch_cb cb;
  void *ud;
  watched_t *dirs;
  size_t n, cap;
  int warned_full;
};

static int is_lua(const char *name, size_t len) {
  return len > 4 && memcmp(name + len - 4, ".lua", 4) == 0;
}

static int skip_name(const char *name) { return name[0] == '.' || strcmp(name, "node_modules") == 0; }

static watched_t *find_wd(gw_watch_t *w, int wd) {
  for (size_t i = 0; i < w->n; i++)
    if (w->dirs[i].wd == wd) return &w->dirs[i];
  return NULL;
}

static void drop_at(gw_watch_t *w, size_t i) {
  free(w->dirs[i].path);
  w->dirs[i] = w->dirs[--w->n];
}

/* Watches one folder; 1: newly watched, 0: watched already, -1: not watched. */
static int add_one(gw_watch_t *w, const char *path) {
  watched_t *e;
  int wd = inotify_add_watch(w->fd, path, WATCH_MASK);
  if (wd < 0) return -1;
  if ((e = find_wd(w, wd))) { /* already watched (another name for the same folder, or again) */
    e->keep = 1;
    return 0;
  }
  if (w->n >= GW_WATCH_MAX_DIRS) {
    inotify_rm_watch(w->fd, wd);
    if (!w->warned_full)
      gw_warn("policy watch: more than %d folders; %s and others are not watched (reload with SIGHUP)",
              GW_WATCH_MAX_DIRS, path);
    w->warned_full = 1;
    return -1;
  }
  if (w->n == w->cap) {
    size_t cap = w->cap ? w->cap * 2 : 16;
    watched_t *d = realloc(w->dirs, cap * sizeof *d);
    if (!d) {
      inotify_rm_watch(w->fd, wd);
      return -1;
    }
    w->dirs = d;
    w->cap = cap;
  }
  char *copy = strdup(path);
  if (!copy) {
    inotify_rm_watch(w->fd, wd);
    return -1;
  }
  w->dirs[w->n++] = (watched_t){wd, 1, copy};
  return 1;
}

/* Watches path and the folders below it, up to GW_WATCH_MAX_DEPTH levels. has_lua (may be
 * NULL) is set when one of them holds a .lua file: a folder that appeared with files in it
 * already (mkdir -p, cp -r, mv) had them written before the watch could see them. */
static void add_tree(gw_watch_t *w, const char *path, int depth, int *has_lua) {
  if (add_one(w, path) < 0) return;
  DIR *d = opendir(path);
  if (!d) return;
  for (struct dirent *de; (de = readdir(d));) {
    size_t len = strlen(de->d_name);
    if (has_lua && de->d_type != DT_DIR && is_lua(de->d_name, len)) *has_lua = 1;
    if (skip_name(de->d_name)) continue;
    char sub[PATH_MAX];
    if (snprintf(sub, sizeof sub, "%s/%s", path, de->d_name) >= (int)sizeof sub) continue;
    if (de->d_type == DT_UNKNOWN) { /* some file systems do not fill d_type */
      struct stat st;
      if (lstat(sub, &st) || !S_ISDIR(st.st_mode)) continue;
    } else if (de->d_type != DT_DIR) {
      continue;
    }
    if (depth < GW_WATCH_MAX_DEPTH) add_tree(w, sub, depth + 1, has_lua);
  }
  closedir(d);
}

static void on_debounced(struct ev_loop *loop, ev_timer *t, int revents) {
  (void)loop, (void)revents;
  gw_watch_t *w = t->data;
  w->cb(w->ud);
}

/* Reads every queued event; returns 1 when one of them calls for a reload. New folders
 * are added to the watch either way (also while absorbing before a reload). */
static int drain_events(gw_watch_t *w) {
  char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
  int relevant = 0;
  for (;;) {
    ssize_t n = read(w->fd, buf, sizeof buf);
    if (n <= 0) break;
    for (char *p = buf; p < buf + n;) {
      struct inotify_event *e = (struct inotify_event *)p;
      size_t len = e->len ? strlen(e->name) : 0;
      p += sizeof *e + e->len;
      if (e->mask & IN_Q_OVERFLOW) {
        relevant = 1;
        continue;
      }
      if (e->mask & IN_IGNORED) { /* the folder is gone (or was dropped) */
        for (size_t i = 0; i < w->n; i++)
          if (w->dirs[i].wd == e->wd) {
            drop_at(w, i);
            break;
          }
        continue;
      }
      if ((e->mask & IN_ISDIR) && (e->mask & (IN_CREATE | IN_MOVED_TO)) && len && !skip_name(e->name)) {
        watched_t *parent = find_wd(w, e->wd);
        char sub[PATH_MAX];
        if (parent && snprintf(sub, sizeof sub, "%s/%s", parent->path, e->name) < (int)sizeof sub) {
          int has_lua = 0; /* files may be in it already: mkdir -p, cp -r, mv */
          add_tree(w, sub, 1, &has_lua);
          if (has_lua) relevant = 1;
        }
        continue;
      }
      if (len && !(e->mask & IN_ISDIR) && is_lua(e->name, len)) relevant = 1; /* not swap or backup files */
    }
  }
  return relevant;
}

static void on_events(struct ev_loop *loop, ev_io *io, int revents) {
  (void)revents;
  gw_watch_t *w = io->data;
  if (!drain_events(w)) return;
  ev_timer_stop(loop, &w->debounce);
  ev_timer_set(&w->debounce, w->debounce_s, 0);
  ev_timer_start(loop, &w->debounce);
}

gw_watch_t *gw_watch_new(gw_loop_t *loop, double debounce_s, gw_watch_cb cb, void *ud) {
  int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) {
    gw_warn("cannot watch the policy's folders for edits (inotify: %s); reload with SIGHUP", strerror(errno));
    return NULL;
  }
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

size_t gw_watch_set_dirs(gw_watch_t *w, const char *const *dirs) {
  if (!w) return 0;
  for (size_t i = 0; i < w->n; i++) w->dirs[i].keep = 0;
  w->warned_full = 0;
  for (; dirs && *dirs; dirs++) {
    char real[PATH_MAX];
    if (!realpath(*dirs, real)) continue; /* not there (yet): nothing to watch */
    add_tree(w, real, 0, NULL);
  }
  for (size_t i = w->n; i-- > 0;) {
    if (w->dirs[i].keep) continue;
    inotify_rm_watch(w->fd, w->dirs[i].wd); /* its IN_IGNORED finds no entry: fine */
    drop_at(w, i);
  }
  return w->n;
}

void gw_watch_absorb(gw_watch_t *w) {
  if (!w) return;
  drain_events(w);
  ev_timer_stop(w->loop, &w->debounce);
}

void gw_watch_free(gw_watch_t *w) {
  if (!w) return;
  ev_io_stop(w->loop, &w->io);
  ev_timer_stop(w->loop, &w->debounce);
  close(w->fd);
  for (size_t i = 0; i < w->n; i++) free(w->dirs[i].path);
  free(w->dirs);
  free(w);
}
