#define _GNU_SOURCE /* accept4 */
#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

#define ACCEPTS_PER_WAKEUP 64 /* fairness: other sockets get their turn under a connect storm */
#define BACKLOG 4096

struct gw_listener {
  gw_loop_t *loop;
  int fd, port;
  ev_io io;
  ev_timer pause; /* out of file descriptors: stop accepting for a moment */
  gw_accept_cb cb;
  void *ud;
};

static void on_resume(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)revents;
  gw_listener_t *l = w->data;
  if (l->fd >= 0) ev_io_start(loop, &l->io);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents) {
  (void)revents;
  gw_listener_t *l = w->data;
  for (int i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
    int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        gw_warn("accept: %s: pausing new connections for 100 ms (raise the open-file limit?)",
                strerror(errno));
        ev_io_stop(loop, &l->io);
        ev_timer_set(&l->pause, 0.1, 0);
        ev_timer_start(loop, &l->pause);
      }
      return; /* EAGAIN: drained */
    }
    /* no Nagle: lws sets TCP_NODELAY only on sockets it accepts itself, and with Nagle a
     * small frame after an unacknowledged one (a close after the last reply, a push after
     * an ack) waited for the peer's delayed ACK, 40 ms */
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
      gw_debug("setsockopt(TCP_NODELAY): %s", strerror(errno));
    l->cb(fd, l->ud);
  }
}

gw_listener_t *gw_listener_new(gw_loop_t *loop, const char *host, int port, int reuse_port,
                               gw_accept_cb cb, void *ud, char *err, size_t errlen) {
  const char *shown = host ? host : "0.0.0.0";
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  char portstr[8];
  snprintf(portstr, sizeof portstr, "%d", port);
  int rc = getaddrinfo(host && strcmp(host, "0.0.0.0") != 0 ? host : NULL, portstr, &hints, &res);
  if (rc) {
    snprintf(err, errlen, "cannot listen on %s:%d: %s", shown, port, gai_strerror(rc));
    return NULL;
  }
  /* no host (or 0.0.0.0): every IPv4 interface; "[::]:PORT" asks for IPv6 */
  struct addrinfo *ai = res;
  if (!host || strcmp(host, "0.0.0.0") == 0)
    for (struct addrinfo *a = res; a; a = a->ai_next)
      if (a->ai_family == AF_INET) ai = a;
  int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
      (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one)) ||
      bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, BACKLOG)) {
    int e = errno;
    snprintf(err, errlen, "cannot listen on %s:%d: %s%s", shown, port, strerror(e),
             e == EADDRINUSE ? (reuse_port ? " (is the other process using --reuse-port too?)"
                                           : " (another process has this port)")
                             : "");
    if (fd >= 0) close(fd);
    freeaddrinfo(res);
    return NULL;
  }
  freeaddrinfo(res);

  gw_listener_t *l = calloc(1, sizeof *l);
  if (!l) {
    close(fd);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  getsockname(fd, (struct sockaddr *)&ss, &sl);
  l->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                           : ((struct sockaddr_in *)&ss)->sin_port);
  l->loop = loop;
  l->fd = fd;
  l->cb = cb;
  l->ud = ud;
  ev_io_init(&l->io, on_accept, fd, EV_READ);
  l->io.data = l;
  ev_init(&l->pause, on_resume);
  l->pause.data = l;
  ev_io_start(loop, &l->io);
  return l;
}

int gw_listener_port(const gw_listener_t *l) { return l->port; }

void gw_listener_close(gw_listener_t *l) {
  if (!l || l->fd < 0) return;
  ev_io_stop(l->loop, &l->io);
  ev_timer_stop(l->loop, &l->pause);
  close(l->fd);
  l->fd = -1;
}

void gw_listener_free(gw_listener_t *l) {
  gw_listener_close(l);
  free(l);
}
