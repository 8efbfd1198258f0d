/* Test helper: a real redis-server on a free loopback port, started and stopped by PID, plus
 * a loop runner. A missing redis-server FAILS the test (CI installs it:
 * scripts/install-deps.sh --test). Header-only, for tests/unit/test_redis_*.c. */
#ifndef AIVO_TEST_REDIS_SERVER_H
#define AIVO_TEST_REDIS_SERVER_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"

typedef struct test_redis {
  pid_t pid;
  int port;
  char password[64];
} test_redis_t;

static double test_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

__attribute__((unused)) static int test_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t l = sizeof a;
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &l)) {
    if (fd >= 0) close(fd);
    return -1;
  }
  close(fd);
  return ntohs(a.sin_port);
}

/* A sync connection for checks from the test itself (NULL when it cannot connect). */
__attribute__((unused)) static redisContext *test_redis_sync(const test_redis_t *r) {
  struct timeval tv = {1, 0};
  redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
  if (!c || c->err) {
    if (c) redisFree(c);
    return NULL;
  }
  redisSetTimeout(c, tv);
  if (r->password[0]) {
    redisReply *rep = redisCommand(c, "AUTH %s", r->password);
    if (rep) freeReplyObject(rep);
  }
  return c;
}

/* Starts redis-server on r->port (0: a free one); waits until it answers PING. 0, or -1
 * with a message on stderr (redis-server missing, did not start). */
__attribute__((unused)) static int test_redis_start(test_redis_t *r, int port, const char *password) {
  r->port = port ? port : test_free_port();
  snprintf(r->password, sizeof r->password, "%s", password ? password : "");
  char portstr[16];
  snprintf(portstr, sizeof portstr, "%d", r->port);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* a test that crashes leaves no redis-server behind */
    const char *argv[20];
    int n = 0;
    argv[n++] = "redis-server";
    argv[n++] = "--port";
    argv[n++] = portstr;
    argv[n++] = "--bind";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--save";
    argv[n++] = "";
    argv[n++] = "--appendonly";
    argv[n++] = "no";
    argv[n++] = "--dir";
    argv[n++] = "/tmp";
    argv[n++] = "--loglevel";
    argv[n++] = "warning";
    if (password) {
      argv[n++] = "--requirepass";
      argv[n++] = password;
    }
    argv[n] = NULL;
    int devnull = open("/dev/null", 1);
    if (devnull >= 0) dup2(devnull, 1);
    execvp("redis-server", (char *const *)argv);
    fprintf(stderr, "FAILED: cannot run redis-server (%s): install it "
                    "(scripts/install-deps.sh --test installs redis-server)\n", strerror(errno));
    _exit(127);
  }
  r->pid = pid;
  double until = test_now_s() + 10;
  while (test_now_s() < until) {
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) {
      fprintf(stderr, "FAILED: redis-server exited at start (status %d)\n", st);
      r->pid = 0;
      return -1;
    }
    redisContext *c = test_redis_sync(r);
    if (c) {
      redisReply *rep = redisCommand(c, "PING");
      int ok = rep && rep->type == REDIS_REPLY_STATUS;
      if (rep) freeReplyObject(rep);
      redisFree(c);
      if (ok) return 0;
    }
    usleep(20000);
  }
  fprintf(stderr, "FAILED: redis-server did not answer on port %d\n", r->port);
  return -1;
}

__attribute__((unused)) static void test_redis_signal(test_redis_t *r, int sig) {
  if (r->pid > 0) kill(r->pid, sig);
}

/* SIGKILL and reap (the port is free again right after). */
__attribute__((unused)) static void test_redis_stop(test_redis_t *r) {
  if (r->pid <= 0) return;
  kill(r->pid, SIGCONT);
  kill(r->pid, SIGKILL);
  waitpid(r->pid, NULL, 0);
  r->pid = 0;
}

/* A sync command for checks; the reply (or NULL) is the caller's to free. */
__attribute__((unused)) static redisReply *test_redis_cmd(const test_redis_t *r, const char *fmt, ...) {
  redisContext *c = test_redis_sync(r);
  if (!c) return NULL;
  va_list ap;
  va_start(ap, fmt);
  redisReply *rep = redisvCommand(c, fmt, ap);
  va_end(ap);
  redisFree(c);
  return rep;
}

/* "calls=" of one command in INFO commandstats (-1: unknown). */
__attribute__((unused)) static long test_redis_calls(const test_redis_t *r, const char *cmd) {
  redisReply *rep = test_redis_cmd(r, "INFO commandstats");
  long n = 0;
  if (!rep || rep->type != REDIS_REPLY_STRING) {
    if (rep) freeReplyObject(rep);
    return -1;
  }
  char needle[64];
  snprintf(needle, sizeof needle, "cmdstat_%s:calls=", cmd);
  const char *p = strstr(rep->str, needle);
  if (p) n = strtol(p + strlen(needle), NULL, 10);
  freeReplyObject(rep);
  return n;
}

static void test_wake(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop;
  (void)w;
  (void)revents;
}

/* Runs the loop until pred(ud) or timeout_s; returns pred's last value. */
__attribute__((unused)) static int test_run_until(gw_loop_t *loop, int (*pred)(void *), void *ud,
                                                  double timeout_s) {
  ev_timer w;
  ev_timer_init(&w, test_wake, 0.01, 0.01);
  ev_timer_start(loop, &w);
  double until = test_now_s() + timeout_s;
  int ok;
  while (!(ok = pred ? pred(ud) : 0) && test_now_s() < until) ev_run(loop, EVRUN_ONCE);
  ev_timer_stop(loop, &w);
  return ok;
}

__attribute__((unused)) static void test_run_for(gw_loop_t *loop, double s) {
  test_run_until(loop, NULL, NULL, s);
}

#endif
