/* aivo-loadgen: a single-threaded load generator for aivo-gw's native /ws protocol and for
 * Socket.IO v4 servers over the websocket transport (--proto socketio).
 *
 * epoll + non-blocking sockets and a minimal RFC 6455 client (upgrade with
 * Sec-WebSocket-Key, masked client frames, unmasked server frames of any length,
 * fragmented messages, PING -> PONG). Socket.IO: Engine.IO v4 over websocket only (the
 * open packet, "2" pings answered with "3"), the CONNECT to "/" with an auth payload
 * {"token"}, events and acks. Modes: echo, fanout, idle, connect; see usage(). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define MAX_FRAME (64u << 20) /* refuse server frames larger than this */
#define MAX_EVENTS 1024
#define SCRATCH_SIZE (256u << 10)
#define MAX_SOURCES 64

/* ---- small helpers ------------------------------------------------------------------- */

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...) {
  va_list ap;
  fputs("aivo-loadgen: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  exit(1);
}

static void warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void warnx(const char *fmt, ...) {
  va_list ap;
  fputs("aivo-loadgen: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

static int64_t g_epoch; /* monotonic ns at start: timestamps are relative to it */

static int64_t mono_ns(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) die("clock_gettime: %s", strerror(errno));
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ns since start: stays below 2^47 for days, so lua-cjson's 14 digits keep it exact */
static int64_t now_ns(void) { return mono_ns() - g_epoch; }

static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n, size);
  if (!p) die("out of memory");
  return p;
}

/* xorshift64*: WebSocket keys and masking keys (a load generator needs no CSPRNG) */
static uint64_t g_rng;
static uint64_t rnd(void) {
  g_rng ^= g_rng >> 12;
  g_rng ^= g_rng << 25;
  g_rng ^= g_rng >> 27;
  return g_rng * 0x2545F4914F6CDD1DULL;
}

/* growable byte buffer; off is the consumed prefix (used by send buffers) */
typedef struct {
  uint8_t *p;
  size_t len, off, cap;
} buf_t;

static void buf_reserve(buf_t *b, size_t extra) {
  if (b->len + extra <= b->cap) return;
  if (b->off) { /* reclaim the consumed prefix first */
    memmove(b->p, b->p + b->off, b->len - b->off);
    b->len -= b->off;
    b->off = 0;
    if (b->len + extra <= b->cap) return;
  }
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + extra) cap *= 2;
  uint8_t *p = realloc(b->p, cap);
  if (!p) die("out of memory");
  b->p = p;
  b->cap = cap;
}

static void buf_append(buf_t *b, const void *data, size_t len) {
  buf_reserve(b, len);
  memcpy(b->p + b->len, data, len);
  b->len += len;
}

static void buf_free(buf_t *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

/* ---- SHA-1 (FIPS 180-4) and base64, for the handshake only ----------------------------- */

static uint32_t rol32(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1(const uint8_t *msg, size_t len, uint8_t out[20]) {
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  size_t nblocks = (len + 9 + 63) / 64, total = nblocks * 64;
  uint64_t bits = (uint64_t)len * 8;
  for (size_t b = 0; b < nblocks; b++) {
    uint8_t blk[64];
    for (size_t i = 0; i < 64; i++) { /* message, 0x80, zeros, 64-bit length */
      size_t pos = b * 64 + i;
      if (pos < len) blk[i] = msg[pos];
      else if (pos == len) blk[i] = 0x80;
      else if (pos >= total - 8) blk[i] = (uint8_t)(bits >> (8 * (total - 1 - pos)));
      else blk[i] = 0;
    }
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
      w[i] = (uint32_t)blk[4 * i] << 24 | (uint32_t)blk[4 * i + 1] << 16 | (uint32_t)blk[4 * i + 2] << 8 |
             blk[4 * i + 3];
    for (int i = 16; i < 80; i++) w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], bb = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
      uint32_t f, k;
      if (i < 20) f = (bb & c) | (~bb & d), k = 0x5A827999;
      else if (i < 40) f = bb ^ c ^ d, k = 0x6ED9EBA1;
      else if (i < 60) f = (bb & c) | (bb & d) | (c & d), k = 0x8F1BBCDC;
      else f = bb ^ c ^ d, k = 0xCA62C1D6;
      uint32_t t = rol32(a, 5) + f + e + k + w[i];
      e = d, d = c, c = rol32(bb, 30), bb = a, a = t;
    }
    h[0] += a, h[1] += bb, h[2] += c, h[3] += d, h[4] += e;
  }
  for (int i = 0; i < 5; i++)
    for (int j = 0; j < 4; j++) out[4 * i + j] = (uint8_t)(h[i] >> (24 - 8 * j));
}

/* writes the NUL-terminated base64 of in[0..len) to out (4*ceil(len/3)+1 bytes) */
static void base64(const uint8_t *in, size_t len, char *out) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < len; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16;
    if (i + 1 < len) v |= (uint32_t)in[i + 1] << 8;
    if (i + 2 < len) v |= in[i + 2];
    out[o++] = tab[v >> 18 & 63];
    out[o++] = tab[v >> 12 & 63];
    out[o++] = i + 1 < len ? tab[v >> 6 & 63] : '=';
    out[o++] = i + 2 < len ? tab[v & 63] : '=';
  }
  out[o] = 0;
}

/* Sec-WebSocket-Accept for a key (RFC 6455 section 4.2.2) */
static void ws_accept_for(const char *key, char out[29]) {
  static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  char cat[64];
  int n = snprintf(cat, sizeof cat, "%s%s", key, guid);
  uint8_t d[20];
  sha1((const uint8_t *)cat, (size_t)n, d);
  base64(d, sizeof d, out);
}

/* ---- latency histogram: log-linear, 64 sub-buckets per power of two (~1.5 %) ------------ */

#define H_SUB 64
#define H_BUCKETS (59 * H_SUB)

typedef struct {
  uint64_t n[H_BUCKETS];
  uint64_t count;
  int64_t max;
} hist_t;

static size_t h_index(uint64_t v) {
  if (v < H_SUB) return (size_t)v;
  int e = 63 - __builtin_clzll(v); /* >= 6 */
  return (size_t)(e - 5) * H_SUB + ((v >> (e - 6)) & (H_SUB - 1));
}

static double h_value(size_t i) { /* middle of bucket i */
  if (i < H_SUB) return (double)i;
  int e = (int)(i / H_SUB) + 5;
  double width = ldexp(1.0, e - 6);
  return (double)(H_SUB + i % H_SUB) * width + width / 2;
}

static void hist_add(hist_t *h, int64_t v) {
  if (v < 0) v = 0;
  h->n[h_index((uint64_t)v)]++;
  h->count++;
  if (v > h->max) h->max = v;
}

/* q-quantile in microseconds (values are ns) */
static double hist_q_us(const hist_t *h, double q) {
  if (!h->count) return 0;
  uint64_t want = (uint64_t)ceil(q * (double)h->count), seen = 0;
  if (want < 1) want = 1;
  for (size_t i = 0; i < H_BUCKETS; i++) {
    seen += h->n[i];
    if (seen >= want) {
      double v = h_value(i);
      return (v > (double)h->max ? (double)h->max : v) / 1000.0;
    }
  }
  return (double)h->max / 1000.0;
}

/* ---- state --------------------------------------------------------------------------- */

#define MAX_XPROCS 4

typedef enum { M_ECHO, M_FANOUT, M_IDLE, M_CONNECT } mode_t_;
typedef enum { R_ECHO, R_SUB, R_PUB, R_IDLE, R_CONNECT } role_t;
typedef enum { P_NATIVE, P_SOCKETIO } proto_t;
/* C_SIO: upgraded, waiting for the Engine.IO open packet and the Socket.IO CONNECT reply */
typedef enum { C_CONNECTING, C_HANDSHAKE, C_SIO, C_OPEN, C_CLOSING, C_DEAD } cstate_t;
typedef enum { PH_SETUP, PH_WARMUP, PH_MEASURE, PH_DRAIN, PH_DONE } phase_t;
typedef enum { END_FAIL, END_LOST, END_DONE } end_t;

typedef struct {
  int fd;
  cstate_t st;
  role_t role;
  uint8_t in_msg, joined, want_out;
  uint8_t target; /* 0: --url, 1: --url2 */
  size_t slot;
  uint32_t inflight;
  uint64_t next_id;
  int64_t t_start; /* when connect() was called */
  char accept[29]; /* expected Sec-WebSocket-Accept */
  buf_t rx, tx, msg;
} conn_t;

typedef struct {
  int ok;
  double cpu_us, user_us; /* utime + stime, and utime alone */
  long rss_kib;
} gwstat_t;

static struct {
  /* options */
  mode_t_ mode;
  proto_t proto;
  const char *url, *url2, *token;
  /* where connections go: --url, and --url2 for every other subscriber (two gateways) */
  struct target {
    char host[256], path[512];
    struct sockaddr_in dst;
  } tgt[2];
  struct in_addr sources[MAX_SOURCES];
  size_t nsources, next_source;
  long conns, depth, subs, active, max_pending, size;
  double seconds, warmup, rate, setup_timeout;
  long gw_pid;
  /* --pid NAME=PID: more processes whose CPU per message is reported (a second gateway,
   * Redis) */
  struct xproc {
    const char *name;
    long pid;
    gwstat_t begin, end;
  } xp[MAX_XPROCS];
  size_t nxp;
  int json;
  /* runtime */
  int ep, tfd;
  long fds;
  conn_t **conns_v;
  size_t nslots, open_limit, next_slot;
  long pending, open, failed, lost, joined, unexpected, errors;
  long closes_by_gw, slow_consumer_closes, quality_events;
  int last_close_code;
  char first_error[256], first_loss[256];
  phase_t phase;
  int stage; /* idle mode: 0 opening idle, 1 settling, 2 opening active */
  int setup_cut; /* idle mode: --setup-timeout ended the opening of idle connections */
  int echo_running, measuring;
  int64_t deadline, phase_start, rx_now;
  /* counters of the measured interval */
  uint64_t msgs, sent, pings;
  hist_t hist, reach; /* reach: publish to its last delivery (fan-out) */
  /* fan-out */
  uint64_t published, published_total, delivered_total, pub_acked, pub_id;
  /* rate-limited echo */
  int64_t rate_t0;
  uint64_t rate_sent, rate_cursor;
  /* idle */
  long idle_open, idle_lost;
  double idle_setup_s; /* seconds to open the idle connections */
  gwstat_t gw_base, gw_idle;
  /* measurement snapshots */
  int64_t t_begin, t_end;
  struct rusage ru_begin, ru_end;
  gwstat_t gw_begin, gw_end;
  double busy_begin, busy_end, setup_s;
  char *sendbuf, *pad;
  size_t sendcap;
} G;

static char g_timer_tag; /* epoll data for the timerfd */
static uint8_t g_scratch[SCRATCH_SIZE];
static volatile sig_atomic_t g_stop;

/* ---- gateway process figures (/proc) --------------------------------------------------- */

static gwstat_t proc_read(long pid);
static gwstat_t gw_read(void) { return proc_read(G.gw_pid); }

static gwstat_t proc_read(long pid) {
  gwstat_t s = {0};
  if (pid <= 0) return s;
  char path[64], line[1024];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) {
    warnx("cannot read %s: %s (has the gateway exited?)", path, strerror(errno));
    return s;
  }
  char *ok = fgets(line, sizeof line, f);
  if (fclose(f) != 0 || !ok) {
    warnx("cannot read %s", path);
    return s;
  }
  char *p = strrchr(line, ')'); /* the command name may contain spaces */
  unsigned long long ut = 0, st = 0;
  if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) {
    warnx("cannot parse %s", path);
    return s;
  }
  long tck = sysconf(_SC_CLK_TCK);
  if (tck <= 0) die("sysconf(_SC_CLK_TCK) failed");
  s.cpu_us = (double)(ut + st) * 1e6 / (double)tck;
  s.user_us = (double)ut * 1e6 / (double)tck; /* without the kernel's share: the server's own code */

  snprintf(path, sizeof path, "/proc/%ld/status", pid);
  f = fopen(path, "r");
  if (!f) {
    warnx("cannot read %s: %s", path, strerror(errno));
    return s;
  }
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0) s.rss_kib = strtol(line + 6, NULL, 10);
  if (fclose(f) != 0) warnx("cannot close %s", path);
  s.ok = 1;
  return s;
}

/* busy CPU time of the whole machine, in us (all CPUs, from /proc/stat) */
static double machine_busy_us(void) {
  FILE *f = fopen("/proc/stat", "r");
  if (!f) return -1;
  unsigned long long v[8] = {0};
  int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                 &v[6], &v[7]);
  if (fclose(f) != 0 || n != 8) return -1;
  long tck = sysconf(_SC_CLK_TCK);
  if (tck <= 0) return -1;
  /* everything but idle (3) and iowait (4) */
  return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) * 1e6 / (double)tck;
}

static void self_rusage(struct rusage *ru) {
  if (getrusage(RUSAGE_SELF, ru) != 0) die("getrusage: %s", strerror(errno));
}

static double ru_us(const struct rusage *ru) {
  return (double)(ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) * 1e6 + (double)ru->ru_utime.tv_usec +
         (double)ru->ru_stime.tv_usec;
}

/* ---- connections --------------------------------------------------------------------- */

static void set_want_out(conn_t *c, int on) {
  struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
  if (epoll_ctl(G.ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) die("epoll_ctl(MOD): %s", strerror(errno));
  c->want_out = (uint8_t)on;
}

static void note(char *dst, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void note(char *dst, size_t cap, const char *fmt, ...) {
  if (dst[0]) return; /* keep the first one */
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(dst, cap, fmt, ap);
  va_end(ap);
}

/* Ends a connection: closes the socket, counts the outcome. The struct and its buffers
 * live on until conn_free (a frame parser may still be walking c->rx). */
static void conn_end(conn_t *c, end_t how, const char *why) {
  if (c->st == C_DEAD) return;
  int was_pending = c->st == C_CONNECTING || c->st == C_HANDSHAKE || c->st == C_SIO;
  if (was_pending) G.pending--;
  else G.open--;
  if (how == END_LOST && was_pending) how = END_FAIL;
  if (how == END_FAIL) {
    G.failed++;
    note(G.first_error, sizeof G.first_error, "connection setup failed: %s", why);
  } else if (how == END_LOST && !g_stop && G.phase != PH_DONE) {
    G.lost++;
    if (c->role == R_IDLE) G.idle_lost++;
    note(G.first_loss, sizeof G.first_loss, "connection lost: %s", why);
  }
  if (how == END_DONE && c->role == R_CONNECT && G.measuring) G.msgs++;
  if (c->fd >= 0 && close(c->fd) != 0) warnx("close: %s", strerror(errno));
  c->fd = -1;
  c->st = C_DEAD;
}

static void conn_free(conn_t *c) {
  if (!c) return;
  if (c->st != C_DEAD) conn_end(c, END_DONE, "finished");
  buf_free(&c->rx);
  buf_free(&c->tx);
  buf_free(&c->msg);
  free(c);
}

/* appends one masked client frame to c->tx */
static void ws_send(conn_t *c, int op, const void *data, size_t len) {
  buf_reserve(&c->tx, len + 14);
  uint8_t *h = c->tx.p + c->tx.len;
  size_t n = 0;
  h[n++] = (uint8_t)(0x80 | op);
  if (len < 126) {
    h[n++] = (uint8_t)(0x80 | len);
  } else if (len <= 0xffff) {
    h[n++] = 0x80 | 126;
    h[n++] = (uint8_t)(len >> 8);
    h[n++] = (uint8_t)len;
  } else {
    h[n++] = 0x80 | 127;
    for (int i = 7; i >= 0; i--) h[n++] = (uint8_t)((uint64_t)len >> (8 * i));
  }
  uint32_t m = (uint32_t)rnd();
  uint8_t mk[4];
  memcpy(mk, &m, 4);
  memcpy(h + n, mk, 4);
  n += 4;
  const uint8_t *s = data;
  for (size_t i = 0; i < len; i++) h[n + i] = s[i] ^ mk[i & 3];
  c->tx.len += n + len;
}

static void conn_flush(conn_t *c) {
  if (c->st == C_DEAD || c->st == C_CONNECTING) return;
  while (c->tx.off < c->tx.len) {
    ssize_t n = send(c->fd, c->tx.p + c->tx.off, c->tx.len - c->tx.off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!c->want_out) set_want_out(c, 1);
        return;
      }
      char why[96];
      snprintf(why, sizeof why, "send: %s", strerror(errno));
      conn_end(c, END_LOST, why);
      return;
    }
    c->tx.off += (size_t)n;
  }
  c->tx.off = c->tx.len = 0;
  if (c->want_out) set_want_out(c, 0);
}

static void send_text(conn_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void send_text(conn_t *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(G.sendbuf, G.sendcap, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= G.sendcap) die("message does not fit the send buffer");
  ws_send(c, 0x1, G.sendbuf, (size_t)n);
}

static void send_echo(conn_t *c) {
  if (G.proto == P_SOCKETIO)
    send_text(c, "42%" PRIu64 "[\"echo\",{\"t\":%" PRId64 "%s}]", ++c->next_id, now_ns(), G.pad);
  else
    send_text(c, "{\"event\":\"echo\",\"data\":{\"t\":%" PRId64 "%s},\"id\":%" PRIu64 "}", now_ns(), G.pad,
              ++c->next_id);
  c->inflight++;
  if (G.measuring) G.sent++;
}

static void send_join(conn_t *c) {
  if (G.proto == P_SOCKETIO) send_text(c, "421[\"join\",{\"room\":\"bench\"}]");
  else send_text(c, "{\"event\":\"join\",\"data\":{\"room\":\"bench\"},\"id\":1}");
}

static void send_close(conn_t *c, int code) {
  uint8_t b[2] = {(uint8_t)(code >> 8), (uint8_t)code};
  ws_send(c, 0x8, b, sizeof b);
}

static void conn_open(size_t slot, role_t role) {
  conn_t *c = xcalloc(1, sizeof *c);
  c->slot = slot;
  c->role = role;
  c->target = G.url2 && slot % 2 == 1; /* the publisher (slot 0) stays on --url */
  c->fd = -1;
  c->st = C_CONNECTING;
  c->t_start = now_ns();
  G.conns_v[slot] = c;
  G.pending++;

  char why[128];
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    snprintf(why, sizeof why, "socket: %s", strerror(errno));
    conn_end(c, END_FAIL, why);
    return;
  }
  c->fd = fd;
  int one = 1;
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
    snprintf(why, sizeof why, "setsockopt(TCP_NODELAY): %s", strerror(errno));
    conn_end(c, END_FAIL, why);
    return;
  }
  if (G.nsources) {
    /* the port is picked at connect() time, per source address: more than 28k ports */
    struct sockaddr_in src = {.sin_family = AF_INET, .sin_addr = G.sources[G.next_source++ % G.nsources]};
    if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&src, sizeof src) != 0) {
      char a[INET_ADDRSTRLEN];
      snprintf(why, sizeof why, "bind to %s: %s", inet_ntop(AF_INET, &src.sin_addr, a, sizeof a) ? a : "?",
               strerror(errno));
      conn_end(c, END_FAIL, why);
      return;
    }
  }
  const struct sockaddr_in *dst = &G.tgt[c->target].dst;
  if (connect(fd, (const struct sockaddr *)dst, sizeof *dst) != 0 && errno != EINPROGRESS) {
    snprintf(why, sizeof why, "connect: %s", strerror(errno));
    conn_end(c, END_FAIL, why);
    return;
  }
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
  if (epoll_ctl(G.ep, EPOLL_CTL_ADD, fd, &ev) != 0) die("epoll_ctl(ADD): %s", strerror(errno));
  c->want_out = 1;
}

static void handshake_send(conn_t *c) {
  uint8_t raw[16];
  for (int i = 0; i < 16; i += 8) {
    uint64_t r = rnd();
    memcpy(raw + i, &r, 8);
  }
  char key[25];
  base64(raw, sizeof raw, key);
  ws_accept_for(key, c->accept);
  int n = snprintf(G.sendbuf, G.sendcap,
                   "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                   "User-Agent: aivo-loadgen\r\n\r\n",
                   G.tgt[c->target].path, G.tgt[c->target].host, key);
  if (n < 0 || (size_t)n >= G.sendcap) die("handshake does not fit the send buffer");
  buf_append(&c->tx, G.sendbuf, (size_t)n);
  c->st = C_HANDSHAKE;
  conn_flush(c);
}

static void note_error(const uint8_t *p, size_t len) {
  G.errors++;
  note(G.first_error, sizeof G.first_error, "gateway error reply: %.*s", (int)(len > 200 ? 200 : len),
       (const char *)p);
}

static int has(const uint8_t *p, size_t len, const char *s) { return memmem(p, len, s, strlen(s)) != NULL; }

/* reads the number after "KEY": (an integer, or cjson's %.14g form); key is "\"t\":" */
static int find_num(const uint8_t *p, size_t len, const char *key, int64_t *t) {
  size_t kl = strlen(key);
  const uint8_t *k = memmem(p, len, key, kl);
  if (!k) return -1;
  k += kl;
  char tmp[40];
  size_t n = 0;
  while (k + n < p + len && n < sizeof tmp - 1 && k[n] && strchr("0123456789.eE+-", k[n])) {
    tmp[n] = (char)k[n];
    n++;
  }
  tmp[n] = 0;
  char *end;
  double v = strtod(tmp, &end);
  if (end == tmp) return -1;
  *t = (int64_t)v;
  return 0;
}

static int find_t(const uint8_t *p, size_t len, int64_t *t) { return find_num(p, len, "\"t\":", t); }

/* fan-out: when did the last subscriber get publish number s? Direct-mapped by s; a slot
 * is reused REACH_SLOTS publishes later. */
#define REACH_SLOTS 1024
static struct {
  int64_t s, t;
  long n;
} g_reach[REACH_SLOTS];

static void record_reach(const uint8_t *p, size_t len, int64_t t) {
  int64_t seq;
  if (find_num(p, len, "\"s\":", &seq) != 0 || seq <= 0) return;
  size_t i = (size_t)seq % REACH_SLOTS;
  if (g_reach[i].s != seq) g_reach[i].s = seq, g_reach[i].t = t, g_reach[i].n = 0;
  /* every open connection but the publisher is a subscriber */
  if (++g_reach[i].n == G.open - 1 && G.measuring && t >= G.t_begin) hist_add(&G.reach, G.rx_now - t);
}

static void record_latency(const uint8_t *p, size_t len) {
  int64_t t;
  if (find_t(p, len, &t) != 0) {
    G.unexpected++;
    return;
  }
  if (G.measuring) {
    G.msgs++;
    hist_add(&G.hist, G.rx_now - t);
  }
}

/* What a message is, whatever the protocol. Native: {"ack":N,...} / {"event":"...",...};
 * Socket.IO: 43N[...] / 42["...",...]. A refusal carries "error" (an ack with an error
 * object, or the error event) or, for a Socket.IO rate-limit ack, "rateLimited". */
static int is_ack(const uint8_t *p, size_t len) {
  if (G.proto == P_SOCKETIO) return len >= 2 && p[0] == '4' && p[1] == '3';
  return has(p, len, "\"ack\":");
}

static int is_error(const uint8_t *p, size_t len) {
  return has(p, len, "\"error\"") || (G.proto == P_SOCKETIO && has(p, len, "\"rateLimited\""));
}

static int is_room_message(const uint8_t *p, size_t len) {
  if (G.proto == P_SOCKETIO) return len >= 17 && !memcmp(p, "42[\"room:message\"", 17);
  return has(p, len, "\"room:message\"");
}

/* a join ack: {"ack":1,"data":{"ok":true,...}} or 431[{"ok":true,...}] */
static void on_join_ack(conn_t *c, const uint8_t *p, size_t len) {
  if (!is_ack(p, len)) {
    G.unexpected++;
    return;
  }
  if (is_error(p, len)) {
    note_error(p, len);
    conn_end(c, END_FAIL, "join refused");
    return;
  }
  c->joined = 1;
  G.joined++;
}

/* the gateway's connection:quality reports (docs/quality.md): not part of any workload */
static int is_quality_event(const uint8_t *p, size_t len) {
  if (G.proto == P_SOCKETIO) return len >= 23 && !memcmp(p, "42[\"connection:quality\"", 23);
  return has(p, len, "\"event\":\"connection:quality\"");
}

static void on_message(conn_t *c, const uint8_t *p, size_t len) {
  if (!is_ack(p, len) && is_quality_event(p, len)) {
    G.quality_events++;
    return;
  }
  switch (c->role) {
  case R_ECHO:
    if (!is_ack(p, len)) {
      G.unexpected++;
      return;
    }
    if (is_error(p, len)) note_error(p, len);
    else record_latency(p, len);
    if (c->inflight) c->inflight--;
    if (G.rate <= 0 && G.echo_running) send_echo(c); /* closed loop */
    break;
  case R_SUB:
    if (!c->joined) {
      on_join_ack(c, p, len);
    } else if (is_room_message(p, len)) {
      G.delivered_total++;
      record_latency(p, len);
      int64_t t;
      if (find_t(p, len, &t) == 0) record_reach(p, len, t);
    } else {
      if (is_error(p, len)) note_error(p, len);
      G.unexpected++;
    }
    break;
  case R_PUB:
    if (!c->joined) on_join_ack(c, p, len);
    else if (is_error(p, len)) note_error(p, len);
    else if (is_ack(p, len)) G.pub_acked++;
    else G.unexpected++;
    break;
  case R_IDLE:
  case R_CONNECT:
    G.unexpected++;
    break;
  }
}

static void on_open(conn_t *c);

/* Socket.IO over websocket: one Engine.IO packet per text frame. Handles the transport's
 * own packets and the CONNECT, and passes Socket.IO EVENT/ACK packets on to on_message. */
static void on_sio_packet(conn_t *c, const uint8_t *p, size_t len) {
  if (!len) {
    G.unexpected++;
    return;
  }
  switch (p[0]) {
  case '0': /* open {"sid",...}: connect to the "/" namespace */
    if (c->st != C_SIO) {
      G.unexpected++;
      return;
    }
    if (G.token) send_text(c, "40{\"token\":\"%s\"}", G.token);
    else send_text(c, "40");
    return;
  case '2': /* ping -> pong */
    send_text(c, "3%.*s", (int)(len - 1 > 100 ? 100 : len - 1), (const char *)p + 1);
    if (G.measuring) G.pings++;
    return;
  case '1': /* close */
    conn_end(c, c->st == C_CLOSING ? END_DONE : END_LOST, "Engine.IO close packet from the server");
    return;
  case '6': /* noop */
    return;
  case '4':
    break;
  default:
    G.unexpected++;
    return;
  }
  if (len >= 2 && p[1] == '0') { /* CONNECT reply 40{"sid":...} */
    if (c->st == C_SIO) on_open(c);
    return;
  }
  if (len >= 2 && p[1] == '4') { /* CONNECT_ERROR 44{"message":...} */
    char why[200];
    snprintf(why, sizeof why, "Socket.IO CONNECT refused: %.*s", (int)(len > 150 ? 150 : len), (const char *)p);
    if (c->st == C_SIO) conn_end(c, END_FAIL, why);
    else conn_end(c, END_LOST, why);
    return;
  }
  if (len >= 2 && p[1] == '1') { /* DISCONNECT by the server */
    conn_end(c, END_LOST, "Socket.IO DISCONNECT from the server");
    return;
  }
  if (c->st != C_OPEN) {
    G.unexpected++;
    return;
  }
  on_message(c, p, len);
}

static void on_text(conn_t *c, const uint8_t *p, size_t len) {
  if (G.proto == P_SOCKETIO) on_sio_packet(c, p, len);
  else on_message(c, p, len);
}

static void protocol_error(conn_t *c, const char *what) {
  char why[128];
  snprintf(why, sizeof why, "WebSocket protocol error from the gateway: %s", what);
  conn_end(c, END_LOST, why);
}

static void handle_frame(conn_t *c, int fin, int op, const uint8_t *pl, size_t len) {
  switch (op) {
  case 0x9: /* PING -> PONG with the same payload */
    if (len > 125 || !fin) return protocol_error(c, "bad PING");
    ws_send(c, 0xA, pl, len);
    if (G.measuring) G.pings++;
    break;
  case 0xA:
    break;
  case 0x8: { /* CLOSE */
    int code = len >= 2 ? pl[0] << 8 | pl[1] : 1005;
    if (c->st == C_CLOSING) {
      conn_end(c, END_DONE, "closed");
      return;
    }
    G.closes_by_gw++;
    G.last_close_code = code;
    if (code == 4008) G.slow_consumer_closes++;
    send_close(c, code == 1005 ? 1000 : code);
    conn_flush(c);
    char why[200];
    snprintf(why, sizeof why, "closed by the gateway with code %d \"%.*s\"", code,
             (int)(len > 2 ? (len - 2 > 120 ? 120 : len - 2) : 0), len > 2 ? (const char *)pl + 2 : "");
    conn_end(c, END_LOST, why);
    break;
  }
  case 0x1:
  case 0x2:
    if (c->in_msg) return protocol_error(c, "new message inside a fragmented one");
    if (fin) {
      on_text(c, pl, len);
    } else {
      c->in_msg = 1;
      c->msg.len = 0;
      buf_append(&c->msg, pl, len);
    }
    break;
  case 0x0:
    if (!c->in_msg) return protocol_error(c, "continuation without a message");
    if (c->msg.len + len > MAX_FRAME) return protocol_error(c, "message too large");
    buf_append(&c->msg, pl, len);
    if (fin) {
      c->in_msg = 0;
      on_text(c, c->msg.p, c->msg.len);
    }
    break;
  default:
    protocol_error(c, "unknown opcode");
  }
}

/* parses complete frames from p[0..len); returns the bytes consumed */
static size_t parse_frames(conn_t *c, const uint8_t *p, size_t len) {
  size_t off = 0;
  while (c->st != C_DEAD && len - off >= 2) {
    const uint8_t *f = p + off;
    size_t avail = len - off, hl = 2;
    uint64_t plen = f[1] & 0x7f;
    if (f[0] & 0x70) {
      protocol_error(c, "RSV bits set");
      break;
    }
    if (f[1] & 0x80) {
      protocol_error(c, "masked server frame");
      break;
    }
    if (plen == 126) {
      if (avail < 4) break;
      plen = (uint64_t)f[2] << 8 | f[3];
      hl = 4;
    } else if (plen == 127) {
      if (avail < 10) break;
      plen = 0;
      for (int i = 0; i < 8; i++) plen = plen << 8 | f[2 + i];
      hl = 10;
    }
    if (plen > MAX_FRAME) {
      protocol_error(c, "frame too large");
      break;
    }
    if (avail - hl < plen) break; /* incomplete: wait for more bytes */
    handle_frame(c, f[0] & 0x80, f[0] & 0x0f, f + hl, (size_t)plen);
    off += hl + (size_t)plen;
  }
  return off;
}

static void on_open(conn_t *c) {
  G.pending--;
  G.open++;
  c->st = C_OPEN;
  switch (c->role) {
  case R_SUB:
  case R_PUB:
    send_join(c);
    break;
  case R_IDLE:
    G.idle_open++;
    break;
  case R_CONNECT: /* latency = connect() to 101; the count is taken when the close is done */
    if (G.measuring) hist_add(&G.hist, now_ns() - c->t_start);
    send_close(c, 1000);
    c->st = C_CLOSING;
    break;
  case R_ECHO:
    break;
  }
}

/* checks the 101 response; leaves any bytes after it in c->rx */
static void handshake_check(conn_t *c) {
  buf_reserve(&c->rx, 1);
  c->rx.p[c->rx.len] = 0;
  char *s = (char *)c->rx.p, *end = strstr(s, "\r\n\r\n");
  if (!end) {
    if (c->rx.len > 16384 || strlen(s) != c->rx.len) conn_end(c, END_FAIL, "bad upgrade response");
    return;
  }
  *end = 0;
  char why[160];
  if (strncmp(s, "HTTP/1.1 101", 12) != 0) {
    char *eol = strstr(s, "\r\n");
    snprintf(why, sizeof why, "upgrade refused: %.*s", (int)(eol ? eol - s : 80), s);
    conn_end(c, END_FAIL, why);
    return;
  }
  char *a = strcasestr(s, "\r\nSec-WebSocket-Accept:");
  if (a) {
    a += 23;
    while (*a == ' ' || *a == '\t') a++;
  }
  if (!a || strncmp(a, c->accept, 28) != 0) {
    conn_end(c, END_FAIL, "upgrade response without the right Sec-WebSocket-Accept");
    return;
  }
  size_t hdr = (size_t)(end - s) + 4, rest = c->rx.len - hdr;
  memmove(c->rx.p, c->rx.p + hdr, rest);
  c->rx.len = rest;
  if (G.proto == P_SOCKETIO) c->st = C_SIO; /* open once the CONNECT is answered */
  else on_open(c);
  if (rest) {
    size_t used = parse_frames(c, c->rx.p, c->rx.len);
    if (c->st != C_DEAD) {
      memmove(c->rx.p, c->rx.p + used, c->rx.len - used);
      c->rx.len -= used;
    }
  }
}

static void conn_read(conn_t *c) {
  ssize_t n = recv(c->fd, g_scratch, sizeof g_scratch, 0);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
    char why[96];
    snprintf(why, sizeof why, "recv: %s", strerror(errno));
    conn_end(c, END_LOST, why);
    return;
  }
  if (n == 0) {
    conn_end(c, c->st == C_CLOSING ? END_DONE : END_LOST, "the gateway closed the TCP connection");
    return;
  }
  G.rx_now = now_ns();
  if (c->st == C_HANDSHAKE) {
    buf_append(&c->rx, g_scratch, (size_t)n);
    handshake_check(c);
  } else if (c->rx.len == 0) { /* common case: parse in place, keep only a partial frame */
    size_t used = parse_frames(c, g_scratch, (size_t)n);
    if (c->st != C_DEAD && used < (size_t)n) buf_append(&c->rx, g_scratch + used, (size_t)n - used);
  } else {
    buf_append(&c->rx, g_scratch, (size_t)n);
    size_t used = parse_frames(c, c->rx.p, c->rx.len);
    if (c->st != C_DEAD) {
      memmove(c->rx.p, c->rx.p + used, c->rx.len - used);
      c->rx.len -= used;
    }
  }
  conn_flush(c);
}

static void conn_event(conn_t *c, uint32_t ev) {
  if (c->st == C_CONNECTING) {
    if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    int err = 0;
    socklen_t l = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0) err = errno;
    if (err) {
      char why[96];
      snprintf(why, sizeof why, "connect: %s", strerror(err));
      conn_end(c, END_FAIL, why);
      return;
    }
    handshake_send(c);
    return;
  }
  if (ev & EPOLLIN) conn_read(c);
  if (c->st != C_DEAD && (ev & EPOLLOUT)) conn_flush(c);
  if (c->st != C_DEAD && (ev & (EPOLLERR | EPOLLHUP)) && !(ev & EPOLLIN))
    conn_end(c, END_LOST, "socket error or hang-up");
}

/* ---- workloads ----------------------------------------------------------------------- */

static void timer_start(int64_t period_ns) {
  struct itimerspec its = {
      .it_interval = {period_ns / 1000000000, period_ns % 1000000000},
      .it_value = {period_ns / 1000000000, period_ns % 1000000000},
  };
  if (timerfd_settime(G.tfd, 0, &its, NULL) != 0) die("timerfd_settime: %s", strerror(errno));
}

static void timer_stop(void) {
  struct itimerspec its = {{0, 0}, {0, 0}};
  if (timerfd_settime(G.tfd, 0, &its, NULL) != 0) die("timerfd_settime: %s", strerror(errno));
}

/* the echo workload on every open R_ECHO connection: D requests each, or paced by --rate */
static void echo_start(void) {
  G.echo_running = 1;
  if (G.rate > 0) {
    G.rate_t0 = now_ns();
    G.rate_sent = 0;
    timer_start(1000000); /* 1 ms ticks */
    return;
  }
  for (size_t i = 0; i < G.nslots; i++) {
    conn_t *c = G.conns_v[i];
    if (!c || c->role != R_ECHO || c->st != C_OPEN) continue;
    for (long d = 0; d < G.depth; d++) send_echo(c);
    conn_flush(c);
  }
}

/* --rate: sends what is due since the start, round-robin over connections below --depth */
static void rate_tick(void) {
  double due = (double)(now_ns() - G.rate_t0) * 1e-9 * G.rate;
  double cap = G.rate / 100 + 1; /* at most 10 ms of backlog; the rest is skipped */
  if (due - (double)G.rate_sent > cap) G.rate_sent = (uint64_t)(due - cap);
  uint64_t budget = due > (double)G.rate_sent ? (uint64_t)due - G.rate_sent : 0;
  /* in idle mode only the slots after the idle ones carry echo traffic */
  size_t first = G.mode == M_IDLE ? (size_t)G.conns : 0, span = G.nslots - first, misses = 0;
  if (!span) return;
  while (budget && misses < span) {
    conn_t *c = G.conns_v[first + G.rate_cursor++ % span];
    if (!c || c->role != R_ECHO || c->st != C_OPEN || c->inflight >= (uint32_t)G.depth) {
      misses++;
      continue;
    }
    misses = 0;
    send_echo(c);
    conn_flush(c);
    G.rate_sent++;
    budget--;
  }
}

static void publish_tick(uint64_t n) {
  conn_t *pub = G.conns_v[0];
  if (!pub || pub->st != C_OPEN) return;
  if (n > 1000) n = 1000;
  for (uint64_t i = 0; i < n; i++) {
    if (G.proto == P_SOCKETIO)
      send_text(pub, "42%" PRIu64 "[\"room:send\",{\"room\":\"bench\",\"msg\":{\"t\":%" PRId64 ",\"s\":%" PRIu64 "}}]",
                G.pub_id + 1, now_ns(), G.pub_id + 1);
    else
      send_text(pub,
              "{\"event\":\"room:send\",\"data\":{\"room\":\"bench\",\"msg\":{\"t\":%" PRId64
              ",\"s\":%" PRIu64 "}},\"id\":%" PRIu64 "}",
              now_ns(), G.pub_id + 1, G.pub_id + 1);
    G.pub_id++;
    G.published_total++;
    if (G.measuring) G.published++;
  }
  conn_flush(pub);
}

static void on_timer(void) {
  uint64_t n;
  ssize_t r = read(G.tfd, &n, sizeof n);
  if (r < 0) {
    if (errno == EAGAIN || errno == EINTR) return;
    die("read(timerfd): %s", strerror(errno));
  }
  if (r != sizeof n || !G.echo_running) return;
  if (G.mode == M_FANOUT) publish_tick(n);
  else rate_tick();
}

static void measure_begin(void) {
  G.measuring = 1;
  G.msgs = G.sent = G.published = G.pings = 0;
  G.setup_s = (double)now_ns() / 1e9;
  memset(&G.hist, 0, sizeof G.hist);
  memset(&G.reach, 0, sizeof G.reach);
  G.gw_begin = gw_read();
  for (size_t i = 0; i < G.nxp; i++) G.xp[i].begin = proc_read(G.xp[i].pid);
  G.busy_begin = machine_busy_us();
  self_rusage(&G.ru_begin);
  G.t_begin = now_ns();
}

static void measure_end(void) {
  G.t_end = now_ns();
  G.measuring = 0;
  self_rusage(&G.ru_end);
  G.busy_end = machine_busy_us();
  G.gw_end = gw_read();
  for (size_t i = 0; i < G.nxp; i++) G.xp[i].end = proc_read(G.xp[i].pid);
}

static void open_more(void) {
  while (G.next_slot < G.open_limit && G.pending < G.max_pending) {
    role_t role = R_ECHO;
    if (G.mode == M_FANOUT) role = G.next_slot == 0 ? R_PUB : R_SUB;
    else if (G.mode == M_IDLE) role = G.next_slot < (size_t)G.conns ? R_IDLE : R_ECHO;
    else if (G.mode == M_CONNECT) role = R_CONNECT;
    conn_open(G.next_slot++, role);
  }
}

static void set_phase(phase_t p, double secs) {
  G.phase = p;
  G.phase_start = now_ns();
  G.deadline = G.phase_start + (int64_t)(secs * 1e9);
}

static void start_warmup(void) {
  if (G.open == 0) die("no connection could be opened (%s)", G.first_error[0] ? G.first_error : "?");
  if (G.failed)
    warnx("%ld of %zu connections failed to open; first: %s", G.failed, G.open_limit, G.first_error);
  set_phase(PH_WARMUP, G.warmup);
  if (G.mode == M_FANOUT) {
    G.echo_running = 1;
    timer_start((int64_t)(1e9 / G.rate));
  } else if (G.mode != M_CONNECT) {
    echo_start();
  }
}

/* moves between phases; called after every epoll round */
static void advance(void) {
  int64_t now = now_ns();
  if (g_stop && G.phase != PH_DONE) {
    if (G.phase == PH_MEASURE) measure_end();
    G.phase = PH_DONE;
    return;
  }
  switch (G.phase) {
  case PH_SETUP:
    if (G.mode == M_IDLE && G.stage == 0 && now - G.phase_start > (int64_t)(G.setup_timeout * 1e9)) {
      /* idle: what the server could take in time is the result; stop opening more */
      warnx("idle: only %ld of %ld connections open after %.0f s (%ld pending, %ld failed): measuring those",
            G.open, G.conns, G.setup_timeout, G.pending, G.failed);
      G.setup_cut = 1;
      G.open_limit = G.next_slot;
      for (size_t i = 0; i < G.next_slot; i++) {
        conn_t *c = G.conns_v[i];
        if (c && (c->st == C_CONNECTING || c->st == C_HANDSHAKE || c->st == C_SIO)) conn_end(c, END_DONE, "cut");
      }
    } else if (!(G.mode == M_IDLE && G.stage == 1) && now - G.phase_start > (int64_t)(G.setup_timeout * 1e9))
      die("setup did not finish in %.0f s: %ld open, %ld pending, %ld failed (%s)", G.setup_timeout, G.open,
          G.pending, G.failed, G.first_error[0] ? G.first_error : "no error seen");
    open_more();
    if (G.next_slot < G.open_limit || G.pending) break;
    if (G.mode == M_FANOUT) {
      conn_t *pub = G.conns_v[0];
      if (!pub || pub->st == C_DEAD) die("the publisher connection failed: %s", G.first_error);
      if (G.joined < G.open) break; /* waiting for join acks */
      start_warmup();
    } else if (G.mode == M_IDLE && G.stage == 0) {
      G.idle_setup_s = (double)(now - G.phase_start) / 1e9;
      G.stage = 1; /* let the gateway settle before reading its RSS */
      G.deadline = now + 1000000000;
    } else if (G.mode == M_IDLE && G.stage == 1) {
      if (now < G.deadline) break;
      G.gw_idle = gw_read();
      G.stage = 2;
      G.phase_start = now; /* the active connections get a --setup-timeout of their own */
      G.open_limit = G.nslots;
      if (!G.active) set_phase(PH_DONE, 0);
    } else {
      start_warmup();
    }
    break;
  case PH_WARMUP:
    if (now >= G.deadline) {
      measure_begin();
      set_phase(PH_MEASURE, G.seconds);
    }
    break;
  case PH_MEASURE:
    if (now >= G.deadline) {
      measure_end();
      if (G.mode == M_FANOUT) {
        timer_stop();
        G.echo_running = 0;
        set_phase(PH_DRAIN, 2.0);
      } else {
        G.phase = PH_DONE;
      }
    }
    break;
  case PH_DRAIN: {
    long subs_alive = G.open - 1;
    if (now >= G.deadline ||
        G.delivered_total >= G.published_total * (uint64_t)(subs_alive > 0 ? subs_alive : 0))
      G.phase = PH_DONE;
    break;
  }
  case PH_DONE:
    break;
  }
  if (G.mode == M_CONNECT && (G.phase == PH_WARMUP || G.phase == PH_MEASURE))
    for (size_t i = 0; i < G.nslots; i++) { /* a finished connection makes room for the next */
      conn_t *c = G.conns_v[i];
      if (c && c->st != C_DEAD) continue;
      conn_free(c);
      conn_open(i, R_CONNECT);
    }
}

static int next_timeout_ms(void) {
  if (G.phase == PH_WARMUP || G.phase == PH_MEASURE || G.phase == PH_DRAIN ||
      (G.phase == PH_SETUP && G.stage == 1)) {
    int64_t left = G.deadline - now_ns();
    if (left <= 0) return 0;
    int ms = (int)((left + 999999) / 1000000);
    return ms < 100 ? ms : 100;
  }
  return 100;
}

static void run(void) {
  static struct epoll_event evs[MAX_EVENTS];
  while (G.phase != PH_DONE) {
    int n = epoll_wait(G.ep, evs, MAX_EVENTS, next_timeout_ms());
    if (n < 0) {
      if (errno != EINTR) die("epoll_wait: %s", strerror(errno));
      n = 0;
    }
    for (int i = 0; i < n; i++) {
      if (evs[i].data.ptr == &g_timer_tag) {
        on_timer();
        continue;
      }
      conn_event(evs[i].data.ptr, evs[i].events);
    }
    advance();
  }
}

/* ---- report -------------------------------------------------------------------------- */

static const char *mode_name(void) {
  static const char *const names[] = {"echo", "fanout", "idle", "connect"};
  return names[G.mode];
}

static void report(void) {
  double secs = (double)(G.t_end - G.t_begin) / 1e9;
  int measured = G.t_end > G.t_begin && secs > 0;
  double rate = measured ? (double)G.msgs / secs : 0;
  double self_pct = measured ? (ru_us(&G.ru_end) - ru_us(&G.ru_begin)) / (secs * 1e4) : 0;
  int gw_ok = G.gw_begin.ok && G.gw_end.ok;
  double gw_cpu = gw_ok ? G.gw_end.cpu_us - G.gw_begin.cpu_us : 0;
  double gw_per = gw_ok && G.msgs ? gw_cpu / (double)G.msgs : 0;
  double gw_user_per = gw_ok && G.msgs ? (G.gw_end.user_us - G.gw_begin.user_us) / (double)G.msgs : 0;
  double gw_pct = gw_ok && measured ? gw_cpu / (secs * 1e4) : 0;
  /* CPU used by everything else on the machine: a run that shared its CPUs shows here */
  double other_pct = -1;
  if (measured && G.busy_begin >= 0 && G.busy_end >= 0) {
    other_pct = (G.busy_end - G.busy_begin) / (secs * 1e4) - self_pct - gw_pct;
    for (size_t i = 0; i < G.nxp; i++)
      if (G.xp[i].begin.ok && G.xp[i].end.ok) other_pct -= (G.xp[i].end.cpu_us - G.xp[i].begin.cpu_us) / (secs * 1e4);
    if (other_pct < 0) other_pct = 0;
  }
  double p50 = hist_q_us(&G.hist, 0.50), p99 = hist_q_us(&G.hist, 0.99), p999 = hist_q_us(&G.hist, 0.999);
  double pmax = (double)G.hist.max / 1000.0;
  long rss = G.gw_end.ok ? G.gw_end.rss_kib : G.gw_idle.rss_kib;
  double kib_idle = 0;
  if (G.mode == M_IDLE && G.gw_base.ok && G.gw_idle.ok && G.idle_open)
    kib_idle = (double)(G.gw_idle.rss_kib - G.gw_base.rss_kib) / (double)G.idle_open;
  uint64_t expected = 0;
  if (G.mode == M_FANOUT) expected = G.published_total * (uint64_t)(G.open > 1 ? G.open - 1 : 0);
  const char *unit = G.mode == M_FANOUT ? "deliveries" : G.mode == M_CONNECT ? "conns" : "msgs";
  const char *per = G.mode == M_FANOUT ? "delivery" : G.mode == M_CONNECT ? "conn" : "msg";

  /* the human-readable line */
  printf("%s%s:", mode_name(), G.proto == P_SOCKETIO ? " (socketio)" : "");
  switch (G.mode) {
  case M_ECHO:
    printf(" %ld conns x depth %ld", G.conns, G.depth);
    break;
  case M_FANOUT:
    printf(" %ld subscribers, %.0f publishes/s", G.subs, G.rate);
    break;
  case M_IDLE:
    printf(" %ld/%ld idle held (%ld lost)", G.idle_open, G.conns, G.idle_lost);
    if (G.gw_base.ok && G.gw_idle.ok)
      printf(", gw RSS %ld -> %ld KiB = %.2f KiB/idle conn", G.gw_base.rss_kib, G.gw_idle.rss_kib, kib_idle);
    if (G.active) printf("; %ld active x depth %ld", G.active, G.depth);
    break;
  case M_CONNECT:
    printf(" %ld in parallel", G.conns);
    break;
  }
  if (G.rate > 0 && G.mode != M_FANOUT) printf(" at <= %.0f/s", G.rate);
  if (measured) {
    printf(", %.1f s: %.0f %s/s, latency p50 %.0f p99 %.0f p999 %.0f max %.0f us", secs, rate, unit, p50, p99,
           p999, pmax);
    if (gw_ok) printf(", gw CPU %.2f us/%s (user space %.2f; %.0f%% of a core)", gw_per, per, gw_user_per, gw_pct);
    for (size_t i = 0; i < G.nxp; i++) {
      const struct xproc *x = &G.xp[i];
      if (!x->begin.ok || !x->end.ok) continue;
      double cpu = x->end.cpu_us - x->begin.cpu_us;
      printf(", %s CPU %.2f us/%s (%.0f%% of a core)", x->name, G.msgs ? cpu / (double)G.msgs : 0, per,
             cpu / (secs * 1e4));
    }
    printf(", loadgen CPU %.0f%%%s", self_pct,
           self_pct > 90 ? " (SATURATED: the generator is the bottleneck)" : "");
    if (other_pct >= 0)
      printf(", other processes %.0f%%%s", other_pct, other_pct > 10 ? " (BUSY MACHINE)" : "");
  }
  if (rss) printf(", gw RSS %ld KiB", rss);
  if (G.mode == M_FANOUT) {
    printf(", delivered %" PRIu64 "/%" PRIu64, G.delivered_total, expected);
    if (G.reach.count)
      printf(", reaching all %ld subscribers: p50 %.0f p99 %.0f max %.0f us (%" PRIu64 " publishes)", G.open - 1,
             hist_q_us(&G.reach, 0.5), hist_q_us(&G.reach, 0.99), (double)G.reach.max / 1000.0, G.reach.count);
  }
  if (G.errors) printf(", %ld error replies", G.errors);
  if (G.lost) printf(", %ld connections lost", G.lost);
  if (G.failed) printf(", %ld failed to open", G.failed);
  if (G.slow_consumer_closes) printf(", %ld slow-consumer closes (4008)", G.slow_consumer_closes);
  printf(" [fds %ld]\n", G.fds);
  if (G.first_error[0]) warnx("first error: %s", G.first_error);
  if (G.first_loss[0]) warnx("first loss: %s", G.first_loss);
  if (G.unexpected) warnx("%ld unexpected messages", G.unexpected);

  if (!G.json) return;
  printf("{\"mode\":\"%s\",\"proto\":\"%s\",\"connections\":%zu,\"conns\":%ld,\"depth\":%ld,\"subs\":%ld,"
         "\"active\":%ld,\"rate\":%.0f,"
         "\"seconds\":%.3f,\"messages\":%" PRIu64 ",\"unit\":\"%s\",\"per_second\":%.1f,"
         "\"lat_p50_us\":%.1f,\"lat_p99_us\":%.1f,\"lat_p999_us\":%.1f,\"lat_max_us\":%.1f,",
         mode_name(), G.proto == P_SOCKETIO ? "socketio" : "native", G.nslots, G.conns, G.depth, G.subs, G.active, G.rate, measured ? secs : 0, G.msgs, unit,
         rate, p50, p99, p999, pmax);
  if (gw_ok)
    printf("\"gw_pid\":%ld,\"gw_cpu_us\":%.0f,\"gw_cpu_us_per_msg\":%.3f,\"gw_user_us_per_msg\":%.3f,"
           "\"gw_cpu_pct\":%.1f,", G.gw_pid, gw_cpu, gw_per, gw_user_per, gw_pct);
  else
    printf("\"gw_pid\":%ld,\"gw_cpu_us\":null,\"gw_cpu_us_per_msg\":null,\"gw_user_us_per_msg\":null,"
           "\"gw_cpu_pct\":null,", G.gw_pid);
  printf("\"gw_rss_kib\":%ld,", rss);
  for (size_t i = 0; i < G.nxp; i++) { /* flat keys: proc_NAME_... (bench/run.sh's get) */
    const struct xproc *x = &G.xp[i];
    int ok = x->begin.ok && x->end.ok;
    double cpu = ok ? x->end.cpu_us - x->begin.cpu_us : 0;
    printf("\"proc_%s_pid\":%ld,\"proc_%s_cpu_us\":%.0f,\"proc_%s_cpu_us_per_msg\":%.3f,\"proc_%s_rss_kib\":%ld,",
           x->name, x->pid, x->name, cpu, x->name, ok && G.msgs ? cpu / (double)G.msgs : 0, x->name, x->end.rss_kib);
  }
  if (G.mode == M_IDLE)
    printf("\"idle_open\":%ld,\"idle_lost\":%ld,\"gw_rss_base_kib\":%ld,\"gw_rss_idle_kib\":%ld,"
           "\"kib_per_idle_conn\":%.3f,\"idle_setup_cut\":%s,\"idle_setup_s\":%.2f,",
           G.idle_open, G.idle_lost, G.gw_base.rss_kib, G.gw_idle.rss_kib, kib_idle, G.setup_cut ? "true" : "false",
           G.idle_setup_s);
  if (G.mode == M_FANOUT) {
    printf("\"reach_all_count\":%" PRIu64 ",\"reach_all_p50_us\":%.1f,\"reach_all_p99_us\":%.1f,"
           "\"reach_all_max_us\":%.1f,",
           G.reach.count, hist_q_us(&G.reach, 0.5), hist_q_us(&G.reach, 0.99), (double)G.reach.max / 1000.0);
    printf("\"published\":%" PRIu64 ",\"published_total\":%" PRIu64 ",\"publish_acks\":%" PRIu64
           ",\"delivered_total\":%" PRIu64 ",\"expected_total\":%" PRIu64 ",",
           G.published, G.published_total, G.pub_acked, G.delivered_total, expected);
  }
  if (G.mode == M_ECHO || G.mode == M_IDLE) printf("\"requests_sent\":%" PRIu64 ",", G.sent);
  printf("\"pings_answered\":%" PRIu64 ",\"started_after_s\":%.2f,\"other_cpu_pct\":%.1f,", G.pings, G.setup_s,
         other_pct);
  printf("\"loadgen_cpu_pct\":%.1f,\"loadgen_saturated\":%s,\"errors\":%ld,\"lost\":%ld,\"failed\":%ld,"
         "\"gw_closes\":%ld,\"slow_consumer_closes\":%ld,\"last_close_code\":%d,\"unexpected\":%ld,"
         "\"quality_events\":%ld,\"fds\":%ld}\n",
         self_pct, self_pct > 90 ? "true" : "false", G.errors, G.lost, G.failed, G.closes_by_gw,
         G.slow_consumer_closes, G.last_close_code, G.unexpected, G.quality_events, G.fds);
}

/* ---- command line -------------------------------------------------------------------- */

static void usage(FILE *f) {
  fputs("usage: aivo-loadgen MODE --url ws://HOST:PORT/ws [options]\n"
        "       aivo-loadgen MODE --proto socketio --url ws://HOST:PORT [options]\n"
        "\n"
        "modes:\n"
        "  echo     --conns N --depth D --seconds S [--rate R]\n"
        "           N connections, each with D echo requests in flight (closed loop; with\n"
        "           --rate, at most R requests/s in total); round-trip latency\n"
        "  fanout   --subs S --seconds T --rate R\n"
        "           S subscribers join room \"bench\"; one publisher sends room:send R times/s;\n"
        "           deliveries/s and end-to-end latency\n"
        "  idle     --conns N [--sources IP,IP,...] [--active A --seconds S --depth D --rate R]\n"
        "           holds N idle connections (gateway KiB per connection with --gw-pid), then\n"
        "           runs the echo workload on A more connections; when the N are not all open\n"
        "           after --setup-timeout, the ones that are count (reported as cut)\n"
        "  connect  --seconds S [--conns C]\n"
        "           connections/s (open, upgrade, close), C at a time (default 8)\n"
        "\n"
        "protocols (--proto):\n"
        "  native    (default) aivo-gw's /ws: {\"event\":\"echo\",\"data\":{...},\"id\":N} and acks\n"
        "            {\"ack\":N,...}; fanout: join and room:send, deliveries room:message\n"
        "  socketio  Socket.IO v4 over Engine.IO v4, websocket transport only: the URL's path\n"
        "            (default /socket.io/) gets ?EIO=4&transport=websocket; pings \"2\" are\n"
        "            answered \"3\"; CONNECT \"40\" + {\"token\"} to \"/\"; events 42N[\"echo\",{...}]\n"
        "            acked 43N[...]; fanout: 42N[\"join\",{\"room\":\"bench\"}] and\n"
        "            42N[\"room:send\",{\"room\",\"msg\"}], deliveries 42[\"room:message\",{...}]\n"
        "\n"
        "common:\n"
        "  --proto P           native or socketio (default native)\n"
        "  --token JWT         present this token: ?token= on /ws, the CONNECT auth payload\n"
        "                      {\"token\"} with socketio\n"
        "  --gw-pid PID        read the gateway's CPU time and RSS from /proc/PID\n"
        "  --pid NAME=PID      also report that process's CPU per message (up to 4: a second\n"
        "                      gateway, Redis)\n"
        "  --url2 URL          fanout: every other subscriber connects here (two gateways;\n"
        "                      the publisher stays on --url)\n"
        "  --warmup S          unmeasured seconds before the measured interval (default 1)\n"
        "  --size B            pad each echo payload with B bytes (default 0)\n"
        "  --sources IP,...    bind local addresses round-robin (more than ~28k connections)\n"
        "  --max-pending N     connection attempts in flight at once (default 256)\n"
        "  --setup-timeout S   give up when connections are not all up after S s (default 60)\n"
        "  --json              also print one JSON line with every figure\n"
        "\n"
        "The report also gives the CPU used by other processes during the measured interval\n"
        "(the whole machine from /proc/stat, minus this generator and the gateway).\n"
        "\n"
        "Latency timestamps are ns since the generator started (CLOCK_MONOTONIC).\n",
        f);
}

static double num_arg(const char *opt, const char *v, double lo, double hi) {
  char *end;
  errno = 0;
  double d = v ? strtod(v, &end) : 0;
  if (!v || errno || end == v || *end || d < lo || d > hi) {
    fprintf(stderr, "aivo-loadgen: %s needs a number between %g and %g, got '%s'\n", opt, lo, hi, v ? v : "");
    exit(2);
  }
  return d;
}

static void parse_sources(const char *list) {
  char *copy = strdup(list);
  if (!copy) die("out of memory");
  char *save = NULL;
  for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    if (G.nsources == MAX_SOURCES) die("--sources: at most %d addresses", MAX_SOURCES);
    if (inet_pton(AF_INET, t, &G.sources[G.nsources]) != 1) {
      fprintf(stderr, "aivo-loadgen: --sources: '%s' is not an IPv4 address\n", t);
      free(copy);
      exit(2);
    }
    G.nsources++;
  }
  free(copy);
}

/* ws://HOST[:PORT][/PATH], IPv4 */
static void parse_url(const char *url, struct target *t) {
  if (strncmp(url, "ws://", 5) != 0) {
    fprintf(stderr, "aivo-loadgen: --url must start with ws:// (no TLS), got '%s'\n", url);
    exit(2);
  }
  const char *h = url + 5, *slash = strchr(h, '/');
  size_t hl = slash ? (size_t)(slash - h) : strlen(h);
  if (hl == 0 || hl >= sizeof t->host) {
    fprintf(stderr, "aivo-loadgen: bad host in --url '%s'\n", url);
    exit(2);
  }
  memcpy(t->host, h, hl);
  t->host[hl] = 0;
  if (G.proto == P_SOCKETIO) {
    /* the Engine.IO endpoint, websocket transport only; a bare host or / means /socket.io/ */
    const char *path = slash && strcmp(slash, "/") ? slash : "/socket.io/";
    snprintf(t->path, sizeof t->path, "%s%sEIO=4&transport=websocket", path, strchr(path, '?') ? "&" : "?");
  } else if (G.token) { /* the native protocol takes the token in the query */
    const char *path = slash ? slash : "/ws";
    snprintf(t->path, sizeof t->path, "%s%stoken=%s", path, strchr(path, '?') ? "&" : "?", G.token);
  } else {
    snprintf(t->path, sizeof t->path, "%s", slash ? slash : "/ws");
  }
  char name[256], *colon = strrchr(t->host, ':');
  const char *port = colon ? colon + 1 : "80";
  if (!*port || strspn(port, "0123456789") != strlen(port)) {
    fprintf(stderr, "aivo-loadgen: bad port in --url '%s'\n", url);
    exit(2);
  }
  snprintf(name, sizeof name, "%.*s", colon ? (int)(colon - t->host) : (int)hl, t->host);
  struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res;
  int rc = getaddrinfo(name, port, &hints, &res);
  if (rc != 0) die("cannot resolve %s:%s: %s", name, port, gai_strerror(rc));
  memcpy(&t->dst, res->ai_addr, sizeof t->dst);
  freeaddrinfo(res);
}

static void parse_args(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    exit(argc < 2 ? 2 : 0);
  }
  if (!strcmp(argv[1], "echo")) G.mode = M_ECHO;
  else if (!strcmp(argv[1], "fanout")) G.mode = M_FANOUT;
  else if (!strcmp(argv[1], "idle")) G.mode = M_IDLE;
  else if (!strcmp(argv[1], "connect")) G.mode = M_CONNECT;
  else {
    fprintf(stderr, "aivo-loadgen: unknown mode '%s' (echo, fanout, idle, connect)\n", argv[1]);
    exit(2);
  }
  G.conns = -1;
  G.depth = 1;
  G.subs = 1000;
  G.seconds = 10;
  G.warmup = 1;
  G.max_pending = 256;
  G.setup_timeout = 60;
  for (int i = 2; i < argc; i++) {
    const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    int used = 1;
    if (!strcmp(o, "--url") && v) G.url = v;
    else if (!strcmp(o, "--conns")) G.conns = (long)num_arg(o, v, 1, 10000000);
    else if (!strcmp(o, "--depth")) G.depth = (long)num_arg(o, v, 1, 1000000);
    else if (!strcmp(o, "--subs")) G.subs = (long)num_arg(o, v, 1, 10000000);
    else if (!strcmp(o, "--active")) G.active = (long)num_arg(o, v, 0, 10000000);
    else if (!strcmp(o, "--seconds")) G.seconds = num_arg(o, v, 0.1, 86400);
    else if (!strcmp(o, "--warmup")) G.warmup = num_arg(o, v, 0, 3600);
    else if (!strcmp(o, "--rate")) G.rate = num_arg(o, v, 0, 1e8);
    else if (!strcmp(o, "--size")) G.size = (long)num_arg(o, v, 0, 16 << 20);
    else if (!strcmp(o, "--max-pending")) G.max_pending = (long)num_arg(o, v, 1, 1000000);
    else if (!strcmp(o, "--setup-timeout")) G.setup_timeout = num_arg(o, v, 1, 86400);
    else if (!strcmp(o, "--gw-pid")) G.gw_pid = (long)num_arg(o, v, 1, INT_MAX);
    else if (!strcmp(o, "--url2") && v) G.url2 = v;
    else if (!strcmp(o, "--pid") && v) {
      const char *eq = strchr(v, '=');
      if (!eq || eq == v || G.nxp >= MAX_XPROCS) {
        fprintf(stderr, "aivo-loadgen: --pid NAME=PID (at most %d), got '%s'\n", MAX_XPROCS, v);
        exit(2);
      }
      G.xp[G.nxp].name = strndup(v, (size_t)(eq - v));
      G.xp[G.nxp++].pid = (long)num_arg(o, eq + 1, 1, INT_MAX);
    }
    else if (!strcmp(o, "--sources") && v) parse_sources(v);
    else if (!strcmp(o, "--token") && v) G.token = v;
    else if (!strcmp(o, "--proto") && v) {
      if (!strcmp(v, "native") || !strcmp(v, "ws")) G.proto = P_NATIVE;
      else if (!strcmp(v, "socketio")) G.proto = P_SOCKETIO;
      else {
        fprintf(stderr, "aivo-loadgen: --proto is native or socketio, got '%s'\n", v);
        exit(2);
      }
    }
    else if (!strcmp(o, "--json")) G.json = 1, used = 0;
    else if (!strcmp(o, "--help")) usage(stdout), exit(0);
    else {
      fprintf(stderr, "aivo-loadgen: unknown or incomplete option '%s' (see --help)\n", o);
      exit(2);
    }
    i += used;
  }
  if (!G.url) {
    fprintf(stderr, "aivo-loadgen: --url ws://HOST:PORT/ws is required\n");
    exit(2);
  }
  if (G.mode == M_FANOUT && G.rate <= 0) {
    fprintf(stderr, "aivo-loadgen: fanout needs --rate R (publishes per second)\n");
    exit(2);
  }
  if (G.conns < 0) G.conns = G.mode == M_CONNECT ? 8 : 100;
  parse_url(G.url, &G.tgt[0]);
  if (G.url2) parse_url(G.url2, &G.tgt[1]);
}

static void on_signal(int sig) {
  (void)sig;
  g_stop = 1;
}

int main(int argc, char **argv) {
  parse_args(argc, argv);
  g_epoch = mono_ns();
  if (getrandom(&g_rng, sizeof g_rng, 0) != (ssize_t)sizeof g_rng) die("getrandom: %s", strerror(errno));
  g_rng |= 1;

  /* every connection is an fd: take the hard limit */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) die("getrlimit: %s", strerror(errno));
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) die("setrlimit(RLIMIT_NOFILE): %s", strerror(errno));
  G.fds = rl.rlim_cur == RLIM_INFINITY ? LONG_MAX : (long)rl.rlim_cur;

  switch (G.mode) {
  case M_ECHO:
  case M_CONNECT:
    G.nslots = (size_t)G.conns;
    break;
  case M_FANOUT:
    G.nslots = (size_t)G.subs + 1;
    break;
  case M_IDLE:
    G.nslots = (size_t)(G.conns + G.active);
    break;
  }
  if ((long)G.nslots + 16 > G.fds)
    die("%zu connections need %zu fds but only %ld are available: raise the hard limit (ulimit -Hn)",
        G.nslots, G.nslots + 16, G.fds);
  if (!G.nsources && G.nslots > 28000)
    warnx("%zu connections from one source address may run out of ephemeral ports: use --sources", G.nslots);
  fprintf(stderr, "aivo-loadgen: %s, %zu connections, %ld fds available\n", mode_name(), G.nslots, G.fds);

  G.open_limit = G.mode == M_IDLE ? (size_t)G.conns : G.nslots;
  G.conns_v = xcalloc(G.nslots, sizeof *G.conns_v);
  G.pad = xcalloc((size_t)G.size + 8, 1);
  if (G.size) { /* ,"p":"xxx" */
    memcpy(G.pad, ",\"p\":\"", 6);
    memset(G.pad + 6, 'x', (size_t)G.size);
    G.pad[6 + G.size] = '"';
  }
  G.sendcap = (size_t)G.size + 1024;
  G.sendbuf = xcalloc(G.sendcap, 1);

  G.ep = epoll_create1(EPOLL_CLOEXEC);
  if (G.ep < 0) die("epoll_create1: %s", strerror(errno));
  G.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (G.tfd < 0) die("timerfd_create: %s", strerror(errno));
  struct epoll_event tev = {.events = EPOLLIN, .data.ptr = &g_timer_tag};
  if (epoll_ctl(G.ep, EPOLL_CTL_ADD, G.tfd, &tev) != 0) die("epoll_ctl(timerfd): %s", strerror(errno));

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  if (sigemptyset(&sa.sa_mask) != 0 || sigaction(SIGINT, &sa, NULL) != 0 ||
      sigaction(SIGTERM, &sa, NULL) != 0)
    die("sigaction: %s", strerror(errno));

  if (G.gw_pid) {
    G.gw_base = gw_read();
    if (!G.gw_base.ok) die("--gw-pid %ld: cannot read the gateway's /proc entries", G.gw_pid);
  }
  /* connect mode has no setup: connections are the workload */
  set_phase(G.mode == M_CONNECT ? PH_WARMUP : PH_SETUP, G.mode == M_CONNECT ? G.warmup : 0);
  run();
  report();

  for (size_t i = 0; i < G.nslots; i++) conn_free(G.conns_v[i]);
  free(G.conns_v);
  free(G.pad);
  free(G.sendbuf);
  if (close(G.tfd) != 0 || close(G.ep) != 0) warnx("close: %s", strerror(errno));
  if (fflush(stdout) != 0) die("cannot write the report: %s", strerror(errno));
  return G.errors || G.lost || (G.mode != M_IDLE && G.failed) ? 3 : 0;
}
