/* lws-floor: the floor aivo-gw runs on. A bare libwebsockets echo and fan-out server on a
 * libev foreign loop, set up like the gateway (its own listening socket, accepted sockets
 * adopted by lws, one libev loop, no threads), speaking just enough of the native /ws
 * protocol for aivo-loadgen to drive it:
 *
 *   {"event":"echo","data":D,"id":N}      -> {"ack":N,"data":D}   (no id: {"event":"echo","data":D})
 *   {"event":"join","data":{...},"id":N}  -> {"ack":N,"data":{"ok":true}}; joins THE room
 *   {"event":"room:send","data":{"room":R,"msg":M},"id":N}
 *                                         -> {"ack":N,"data":{"ok":true}}; every other member
 *                                            gets {"event":"room:message","data":{"room":"bench",
 *                                            "from":"floor","msg":M}}
 *
 * There is one room whatever its name, no Lua, no JSON parsing beyond finding the top-level
 * "event", "data" and "id" (and "msg" inside data): what is left is lws framing, the loop and
 * the kernel. A fan-out message is encoded once and shared by reference by every recipient's
 * queue; a message goes out at once when the connection has nothing queued and lws holds no
 * rest of an earlier write (lws_partial_buffered(), a flag: no system call), else on the next
 * WRITEABLE callback. The vhost has no lws "validity" timer (see main()), and the receive
 * buffer is the gateway's size unless --rx-buffer says otherwise (docs/benchmarks.md: it is
 * most of the memory of an idle connection).
 *
 * usage: lws-floor [--host 127.0.0.1] [--port 0] [--rx-buffer 1024]
 * prints "lws-floor: listening on HOST:PORT" on stderr; SIGTERM/SIGINT stop it. */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define QMAX 4096                /* messages queued per connection before it is closed */
#define MAX_MSG (1u << 20)       /* larger incoming messages close the connection */

typedef struct {
  int refs;
  size_t len;
  unsigned char buf[]; /* LWS_PRE bytes of headroom, then the payload */
} msg_t;

typedef struct pss {
  struct lws *wsi;
  msg_t **q; /* ring of qcap (a power of two) messages, allocated when first needed */
  unsigned qhead, qlen, qcap;
  long member; /* index in the room, or -1 */
  unsigned char *rx;
  size_t rxlen, rxcap;
  int dead;
} pss_t;

static struct {
  struct ev_loop *loop;
  struct lws_context *ctx;
  struct lws_vhost *vh;
  int lfd;
  ev_io accept_w;
  ev_signal sigterm_w, sigint_w;
  pss_t **room;
  size_t nroom, room_cap;
} S;

static msg_t *msg_new(size_t len) {
  msg_t *m = malloc(sizeof *m + LWS_PRE + len);
  if (!m) {
    fputs("lws-floor: out of memory\n", stderr);
    exit(1);
  }
  m->refs = 1;
  m->len = len;
  return m;
}

static void msg_unref(msg_t *m) {
  if (--m->refs == 0) free(m);
}

/* ---- the little JSON the protocol needs ------------------------------------------------ */

/* end of the JSON value starting at p (p < e), or NULL when it is cut off */
static const unsigned char *skip_value(const unsigned char *p, const unsigned char *e) {
  int depth = 0, in_str = 0;
  for (; p < e; p++) {
    unsigned char ch = *p;
    if (in_str) {
      if (ch == '\\') p++;
      else if (ch == '"') {
        in_str = 0;
        if (!depth) return p + 1;
      }
    } else if (ch == '"') {
      in_str = 1;
    } else if (ch == '{' || ch == '[') {
      depth++;
    } else if (ch == '}' || ch == ']') {
      if (!depth) return p; /* the end of the enclosing object */
      if (--depth == 0) return p + 1;
    } else if (!depth && (ch == ',')) {
      return p;
    }
  }
  return NULL;
}

static const unsigned char *skip_ws(const unsigned char *p, const unsigned char *e) {
  while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

typedef struct {
  const unsigned char *p;
  size_t len;
} span_t;

/* finds the values of the top-level keys of the object in [p, e): keys[i] -> out[i] */
static int object_fields(const unsigned char *p, const unsigned char *e, const char *const *keys, span_t *out,
                         int nkeys) {
  for (int i = 0; i < nkeys; i++) out[i].p = NULL, out[i].len = 0;
  p = skip_ws(p, e);
  if (p >= e || *p != '{') return -1;
  p++;
  for (;;) {
    p = skip_ws(p, e);
    if (p < e && *p == '}') return 0;
    if (p >= e || *p != '"') return -1;
    const unsigned char *k = ++p;
    while (p < e && *p != '"') p += *p == '\\' ? 2 : 1;
    if (p >= e) return -1;
    size_t klen = (size_t)(p - k);
    p = skip_ws(p + 1, e);
    if (p >= e || *p != ':') return -1;
    p = skip_ws(p + 1, e);
    const unsigned char *v = p, *ve = skip_value(p, e);
    if (!ve || ve == v) return -1;
    for (int i = 0; i < nkeys; i++)
      if (strlen(keys[i]) == klen && !memcmp(keys[i], k, klen)) out[i].p = v, out[i].len = (size_t)(ve - v);
    p = skip_ws(ve, e);
    if (p < e && *p == ',') p++;
    else if (p < e && *p == '}') return 0;
    else return -1;
  }
}

static int span_is(span_t s, const char *lit) {
  size_t n = strlen(lit);
  return s.len == n && !memcmp(s.p, lit, n);
}

/* ---- sending ------------------------------------------------------------------------- */

static void enqueue(pss_t *c, msg_t *m) {
  if (c->dead) return;
  /* Nothing queued and lws holds no unsent rest of an earlier write: write now, without a
   * WRITEABLE round trip. lws_partial_buffered() is a flag test; lws_send_pipe_choked()
   * would cost a poll() system call per message. When the kernel takes only part of it,
   * lws keeps the rest and sends it before the next WRITEABLE callback. */
  if (!c->qlen && !lws_partial_buffered(c->wsi)) {
    if (lws_write(c->wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT) < (int)m->len) {
      c->dead = 1;
      lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
    return;
  }
  if (c->qlen == c->qcap) {
    if (c->qcap == QMAX) { /* a slow consumer: close it, as the gateway does (4008) */
      c->dead = 1;
      lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
      return;
    }
    unsigned cap = c->qcap ? c->qcap * 2 : 16;
    msg_t **q = malloc(cap * sizeof *q);
    if (!q) {
      fputs("lws-floor: out of memory\n", stderr);
      exit(1);
    }
    for (unsigned i = 0; i < c->qlen; i++) q[i] = c->q[(c->qhead + i) & (c->qcap - 1)];
    free(c->q);
    c->q = q;
    c->qcap = cap;
    c->qhead = 0;
  }
  m->refs++;
  c->q[(c->qhead + c->qlen++) & (c->qcap - 1)] = m;
  if (c->qlen == 1) lws_callback_on_writable(c->wsi);
}

static int writeable(pss_t *c) {
  if (!c->qlen) return 0;
  msg_t *m = c->q[c->qhead];
  c->qhead = (c->qhead + 1) & (c->qcap - 1);
  c->qlen--;
  int n = lws_write(c->wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT);
  size_t len = m->len;
  msg_unref(m);
  if (n < (int)len) return -1;
  if (c->qlen) lws_callback_on_writable(c->wsi);
  return 0;
}

/* builds prefix + a + mid + b + suffix into a new message */
static msg_t *build(const char *pre, span_t a, const char *mid, span_t b, const char *post) {
  size_t lp = strlen(pre), lm = strlen(mid), lq = strlen(post);
  msg_t *m = msg_new(lp + a.len + lm + b.len + lq);
  unsigned char *o = m->buf + LWS_PRE;
  memcpy(o, pre, lp), o += lp;
  memcpy(o, a.p, a.len), o += a.len;
  memcpy(o, mid, lm), o += lm;
  memcpy(o, b.p, b.len), o += b.len;
  memcpy(o, post, lq);
  return m;
}

static void send_ack(pss_t *c, span_t id, span_t data) {
  static const span_t none = {(const unsigned char *)"", 0};
  msg_t *m = id.p ? build("{\"ack\":", id, ",\"data\":", data, "}") : build("{\"event\":\"echo\",\"data\":", data, "", none, "}");
  enqueue(c, m);
  msg_unref(m);
}

static void send_error(pss_t *c, span_t id, const char *code) {
  char tail[160];
  snprintf(tail, sizeof tail, ",\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, code);
  static const span_t none = {(const unsigned char *)"", 0};
  msg_t *m = id.p ? build("{\"ack\":", id, tail, none, "")
                  : build("{\"event\":\"error\",\"data\":{\"code\":\"", (span_t){(const unsigned char *)code, strlen(code)},
                          "\"}}", none, "");
  enqueue(c, m);
  msg_unref(m);
}

/* ---- the room -------------------------------------------------------------------------- */

static void room_join(pss_t *c) {
  if (c->member >= 0) return;
  if (S.nroom == S.room_cap) {
    size_t cap = S.room_cap ? S.room_cap * 2 : 1024;
    pss_t **r = realloc(S.room, cap * sizeof *r);
    if (!r) {
      fputs("lws-floor: out of memory\n", stderr);
      exit(1);
    }
    S.room = r;
    S.room_cap = cap;
  }
  c->member = (long)S.nroom;
  S.room[S.nroom++] = c;
}

static void room_leave(pss_t *c) {
  if (c->member < 0) return;
  pss_t *last = S.room[--S.nroom];
  S.room[c->member] = last;
  last->member = c->member;
  c->member = -1;
}

static void on_message(pss_t *c, const unsigned char *p, size_t len) {
  static const char *const top[] = {"event", "data", "id"};
  static const char *const inner[] = {"msg"};
  static const span_t ok = {(const unsigned char *)"{\"ok\":true}", 11};
  span_t f[3], m[1];
  if (object_fields(p, p + len, top, f, 3) || !f[0].p) {
    send_error(c, f[2], "bad_request");
    return;
  }
  if (span_is(f[0], "\"echo\"")) {
    send_ack(c, f[2], f[1].p ? f[1] : (span_t){(const unsigned char *)"null", 4});
  } else if (span_is(f[0], "\"join\"")) {
    room_join(c);
    send_ack(c, f[2], ok);
  } else if (span_is(f[0], "\"room:send\"")) {
    if (c->member < 0) {
      send_error(c, f[2], "not_in_room");
      return;
    }
    if (!f[1].p || object_fields(f[1].p, f[1].p + f[1].len, inner, m, 1) || !m[0].p) {
      send_error(c, f[2], "bad_request");
      return;
    }
    static const span_t none = {(const unsigned char *)"", 0};
    msg_t *out = build("{\"event\":\"room:message\",\"data\":{\"room\":\"bench\",\"from\":\"floor\",\"msg\":", m[0],
                       "}}", none, "");
    for (size_t i = 0; i < S.nroom; i++)
      if (S.room[i] != c) enqueue(S.room[i], out);
    msg_unref(out);
    send_ack(c, f[2], ok);
  } else {
    send_error(c, f[2], "unknown_event");
  }
}

/* ---- lws ----------------------------------------------------------------------------- */

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
  pss_t *c = user;
  switch (reason) {
  case LWS_CALLBACK_ESTABLISHED:
    c->wsi = wsi;
    c->member = -1;
    return 0;
  case LWS_CALLBACK_RECEIVE: {
    int first = lws_is_first_fragment(wsi), final = lws_is_final_fragment(wsi);
    if (lws_frame_is_binary(wsi)) return 0; /* text only */
    if (first && final) { /* the common case: the whole message in one piece */
      on_message(c, in, len);
      return 0;
    }
    if (first) c->rxlen = 0;
    if (c->rxlen + len > MAX_MSG) return -1;
    if (c->rxlen + len > c->rxcap) {
      size_t cap = c->rxcap ? c->rxcap : 4096;
      while (cap < c->rxlen + len) cap *= 2;
      unsigned char *r = realloc(c->rx, cap);
      if (!r) return -1;
      c->rx = r;
      c->rxcap = cap;
    }
    memcpy(c->rx + c->rxlen, in, len);
    c->rxlen += len;
    if (final) on_message(c, c->rx, c->rxlen);
    return 0;
  }
  case LWS_CALLBACK_SERVER_WRITEABLE:
    return writeable(c);
  case LWS_CALLBACK_CLOSED:
    room_leave(c);
    while (c->qlen) {
      msg_unref(c->q[c->qhead]);
      c->qhead = (c->qhead + 1) & (c->qcap - 1);
      c->qlen--;
    }
    free(c->q);
    c->q = NULL;
    free(c->rx);
    c->rx = NULL;
    c->dead = 1;
    return 0;
  default:
    break;
  }
  return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* rx_buffer_size 1024 and no send() limit of lws's own, as the gateway's (core/net/server.c
 * RX_CHUNK, TX_CHUNK); --rx-buffer changes the first */
static struct lws_protocols protocols[] = {
    {"floor", callback, sizeof(pss_t), 1024, 0, NULL, 64u << 20},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void on_accept(struct ev_loop *loop, ev_io *w, int revents) {
  (void)loop, (void)w, (void)revents;
  for (int i = 0; i < 64; i++) {
    int fd = accept4(S.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
        fprintf(stderr, "lws-floor: accept: %s\n", strerror(errno));
      return;
    }
    int one = 1; /* as the gateway: no Nagle on adopted sockets */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (!lws_adopt_socket_vhost(S.vh, fd)) fputs("lws-floor: lws could not adopt a connection\n", stderr);
  }
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents) {
  (void)w, (void)revents;
  ev_break(loop, EVBREAK_ALL);
}

static void ignore_signal(void *handle, int signum) { (void)handle, (void)signum; }

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  int port = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--host") && i + 1 < argc) host = argv[++i];
    else if (!strcmp(argv[i], "--port") && i + 1 < argc) port = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--rx-buffer") && i + 1 < argc) protocols[0].rx_buffer_size = (size_t)atol(argv[++i]);
    else {
      fprintf(stderr, "usage: %s [--host 127.0.0.1] [--port 0] [--rx-buffer 1024]\n", argv[0]);
      return 2;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  S.loop = ev_default_loop(EVFLAG_AUTO);
  void *foreign[1] = {S.loop};
  lws_set_log_level(LLL_ERR | LLL_WARN, NULL);

  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.options = LWS_SERVER_OPTION_LIBEV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
  info.foreign_loops = foreign;
  info.signal_cb = ignore_signal;
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.pcontext = &S.ctx;
  S.ctx = lws_create_context(&info);
  if (!S.ctx) {
    fputs("lws-floor: cannot create the lws context (is libwebsockets-evlib-ev installed?)\n", stderr);
    return 1;
  }
  struct lws_context_creation_info vinfo;
  memset(&vinfo, 0, sizeof vinfo);
  vinfo.port = CONTEXT_PORT_NO_LISTEN_SERVER;
  vinfo.protocols = protocols;
  vinfo.vhost_name = "floor";
  vinfo.timeout_secs = 10;
  /* No lws "validity" timer: by default lws 4.1 (re)schedules one per connection (300 s) at
   * the upgrade and at every PONG, and its timer list is sorted by insertion from the head,
   * so each costs O(connections). A server that pings on its own does not need it. */
  static const lws_retry_bo_t no_validity = {.secs_since_valid_ping = 0, .secs_since_valid_hangup = 0};
  vinfo.retry_and_idle_policy = &no_validity;
  S.vh = lws_create_vhost(S.ctx, &vinfo);
  if (!S.vh) {
    fputs("lws-floor: cannot create the lws vhost\n", stderr);
    return 1;
  }

  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  socklen_t alen = sizeof a;
  int one = 1;
  S.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (S.lfd < 0 || inet_pton(AF_INET, host, &a.sin_addr) != 1 ||
      setsockopt(S.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
      bind(S.lfd, (struct sockaddr *)&a, sizeof a) || listen(S.lfd, 4096) ||
      getsockname(S.lfd, (struct sockaddr *)&a, &alen)) {
    fprintf(stderr, "lws-floor: cannot listen on %s:%d: %s\n", host, port, strerror(errno));
    return 1;
  }
  ev_io_init(&S.accept_w, on_accept, S.lfd, EV_READ);
  ev_io_start(S.loop, &S.accept_w);
  /* our own signal handling, installed after lws's */
  ev_signal_init(&S.sigterm_w, on_signal, SIGTERM);
  ev_signal_start(S.loop, &S.sigterm_w);
  ev_signal_init(&S.sigint_w, on_signal, SIGINT);
  ev_signal_start(S.loop, &S.sigint_w);
  fprintf(stderr, "lws-floor: listening on %s:%d\n", host, ntohs(a.sin_port));

  ev_run(S.loop, 0);

  /* two-step shutdown on a foreign loop: destroy, let lws close its handles, destroy again */
  ev_io_stop(S.loop, &S.accept_w);
  ev_signal_stop(S.loop, &S.sigterm_w);
  ev_signal_stop(S.loop, &S.sigint_w);
  close(S.lfd);
  lws_context_destroy(S.ctx);
  ev_run(S.loop, 0);
  if (S.ctx) lws_context_destroy(S.ctx);
  ev_loop_destroy(S.loop);
  free(S.room);
  return 0;
}
