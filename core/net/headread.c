#define _GNU_SOURCE /* memmem */
#include "headread.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "stats.h"

#define LINGER_S 2.0
#define RETRY_FIRST_S 0.002
#define RETRY_MAX_S 0.5

typedef struct hr {
  ev_io io;
  ev_timer timer; /* the deadline, then the lingering close's */
  ev_timer retry; /* a partial head: look again later (the socket stays readable) */
  double retry_s;
  gw_loop_t *loop;
  int fd, lingering;
  size_t max;
  gw_headread_cb cb;
  void *ud;
  struct hr *prev, *next;
} hr_t;

static hr_t *g_all;
static size_t g_count;
static char *g_peek; /* one buffer for every peek: the loop has one thread */
static size_t g_peek_cap;

static void unlink_hr(hr_t *h) {
  ev_io_stop(h->loop, &h->io);
  ev_timer_stop(h->loop, &h->timer);
  ev_timer_stop(h->loop, &h->retry);
  if (h->prev) h->prev->next = h->next;
  else g_all = h->next;
  if (h->next) h->next->prev = h->prev;
  g_count--;
}

static void drop(hr_t *h) {
  unlink_hr(h);
  close(h->fd);
  free(h);
}

static void refuse(hr_t *h) {
  static const char body[] =
      "{\"error\":\"request_header_fields_too_large\",\"reason\":\"the request line and headers are over the limit\"}\n";
  char res[512];
  int n = snprintf(res, sizeof res,
                   "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
                   "content-length: %zu\r\ncache-control: no-store\r\nconnection: close\r\n\r\n%s",
                   sizeof body - 1, body);
  gw_log(GW_LOG_INFO, 0, "answering 431: a request head over %zu bytes", h->max);
  gw_stats_error("header_too_large");
  /* a fresh socket's send buffer takes a few hundred bytes at once */
  if (n <= 0 || send(h->fd, res, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) != n) {
    drop(h);
    return;
  }
  shutdown(h->fd, SHUT_WR);
  h->lingering = 1;
  ev_timer_stop(h->loop, &h->retry);
  ev_timer_stop(h->loop, &h->timer);
  ev_timer_set(&h->timer, LINGER_S, 0);
  ev_timer_start(h->loop, &h->timer);
  ev_io_start(h->loop, &h->io);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop, (void)revents;
  hr_t *h = (hr_t *)((char *)w - offsetof(hr_t, timer));
  if (!h->lingering) gw_log(GW_LOG_DEBUG, 0, "closing a connection that sent no complete request head in time");
  drop(h);
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)revents;
  hr_t *h = (hr_t *)((char *)w - offsetof(hr_t, retry));
  ev_io_start(loop, &h->io);
}

static int head_complete(const char *p, size_t len) {
  return memmem(p, len, "\r\n\r\n", 4) || memmem(p, len, "\n\n", 2);
}

/* The head is looked at with MSG_PEEK and left in the socket: lws then reads the request
 * itself (lws_adopt_socket_vhost_readbuf loses a body that came with the head: lws 4.1.6
 * handed "PO" of "POST ..." to a polling POST as its body, and kept servicing the buffer it
 * never marked used, a busy loop). */
static void on_read(struct ev_loop *loop, ev_io *w, int revents) {
  (void)revents;
  hr_t *h = (hr_t *)w;
  if (h->lingering) { /* drop what comes until the client closes */
    char sink[4096];
    ssize_t n;
    while ((n = recv(h->fd, sink, sizeof sink, 0)) > 0) {}
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) drop(h);
    return;
  }
  if (g_peek_cap < h->max) {
    char *nb = realloc(g_peek, h->max);
    if (!nb) {
      drop(h);
      return;
    }
    g_peek = nb;
    g_peek_cap = h->max;
  }
  ssize_t n = recv(h->fd, g_peek, h->max, MSG_PEEK);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  if (n <= 0) {
    drop(h);
    return;
  }
  if (head_complete(g_peek, (size_t)n)) {
    unlink_hr(h);
    h->cb(h->fd, h->ud);
    free(h);
  } else if ((size_t)n >= h->max) {
    char sink[4096]; /* what was peeked is read, so the lingering close starts after it */
    for (size_t got = 0; got < (size_t)n;) {
      ssize_t r = recv(h->fd, sink, sizeof sink, 0);
      if (r <= 0) break;
      got += (size_t)r;
    }
    refuse(h);
  } else { /* part of a head: the socket stays readable, so look again a little later */
    ev_io_stop(loop, &h->io);
    ev_timer_set(&h->retry, h->retry_s, 0);
    ev_timer_start(loop, &h->retry);
    h->retry_s = h->retry_s * 2 < RETRY_MAX_S ? h->retry_s * 2 : RETRY_MAX_S;
  }
}

int gw_headread_start(gw_loop_t *loop, int fd, size_t max, double timeout_s, gw_headread_cb cb, void *ud) {
  hr_t *h = calloc(1, sizeof *h);
  if (!h) {
    close(fd);
    return -1;
  }
  h->loop = loop;
  h->fd = fd;
  h->max = max;
  h->cb = cb;
  h->ud = ud;
  h->retry_s = RETRY_FIRST_S;
  h->next = g_all;
  if (g_all) g_all->prev = h;
  g_all = h;
  g_count++;
  ev_io_init(&h->io, on_read, fd, EV_READ);
  ev_io_start(loop, &h->io);
  ev_timer_init(&h->timer, on_timer, timeout_s, 0);
  ev_timer_start(loop, &h->timer);
  ev_timer_init(&h->retry, on_retry, 0, 0);
  return 0;
}

size_t gw_headread_count(void) { return g_count; }

void gw_headread_shutdown(void) {
  while (g_all) drop(g_all);
  free(g_peek);
  g_peek = NULL;
  g_peek_cap = 0;
}
