/* The unmasked-frame guard: frame_guard.h says why it exists and what it costs. */
#define _GNU_SOURCE
#include "frame_guard.h"

#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <openssl/ssl.h>

enum { MODE_OFF, MODE_HEAD, MODE_BODY, MODE_FRAMES, MODE_VIOLATED };

/* The start of a header line, enough to tell Upgrade, Content-Length and
 * Transfer-Encoding; the rest of a longer line is not needed. */
#define LINE_KEEP 48

typedef struct guard {
  unsigned char mode, upgrade, chunked, hdr_have, hdr_need;
  unsigned char tls;   /* followed through SSL_read (its raw recv bytes are ciphertext) */
  unsigned char armed; /* violated, and the frames read before the bad one are handled */
  unsigned char line_len; /* bytes kept of the current head line (at most LINE_KEEP) */
  unsigned char line_empty; /* the current line has had nothing but '\r' so far */
  char line[LINE_KEEP];
  unsigned char hdr[14];
  uint64_t left;           /* body bytes (MODE_BODY) or payload bytes (MODE_FRAMES) to skip */
  uint64_t content_length; /* of the head being read */
  void *owner;
} guard_t;

static guard_t *g_guards;
static size_t g_cap;
static size_t g_watched;
static gw_frame_guard_cb g_cb;

void gw_frame_guard_set_callback(gw_frame_guard_cb cb) { g_cb = cb; }

static guard_t *guard_of(int fd) {
  if (fd < 0 || (size_t)fd >= g_cap || g_guards[fd].mode == MODE_OFF) return NULL;
  return &g_guards[fd];
}

static void head_reset(guard_t *g) {
  g->mode = MODE_HEAD;
  g->upgrade = g->chunked = 0;
  g->line_len = 0;
  g->line_empty = 1;
  g->content_length = 0;
}

int gw_frame_guard_watch(int fd, int tls) {
  if (fd < 0) return -1;
  if ((size_t)fd >= g_cap) {
    size_t cap = g_cap ? g_cap : 256;
    while (cap <= (size_t)fd) cap *= 2;
    guard_t *n = realloc(g_guards, cap * sizeof *n);
    if (!n) return -1;
    memset(n + g_cap, 0, (cap - g_cap) * sizeof *n);
    g_guards = n;
    g_cap = cap;
  }
  guard_t *g = &g_guards[fd];
  if (g->mode == MODE_OFF) g_watched++;
  memset(g, 0, sizeof *g);
  g->tls = tls ? 1 : 0;
  head_reset(g);
  return 0;
}

void gw_frame_guard_bind(int fd, void *owner) {
  guard_t *g = guard_of(fd);
  if (g) g->owner = owner;
}

void gw_frame_guard_forget(int fd) {
  guard_t *g = guard_of(fd);
  if (!g) return;
  memset(g, 0, sizeof *g);
  g_watched--;
}

int gw_frame_guard_violated(int fd) {
  guard_t *g = guard_of(fd);
  return g && g->mode == MODE_VIOLATED;
}

void gw_frame_guard_arm(int fd) {
  guard_t *g = guard_of(fd);
  if (g && g->mode == MODE_VIOLATED) g->armed = 1;
}

int gw_frame_guard_armed(int fd) {
  guard_t *g = guard_of(fd);
  return g && g->mode == MODE_VIOLATED && g->armed;
}

size_t gw_frame_guard_count(void) { return g_watched; }

void gw_frame_guard_shutdown(void) {
  free(g_guards);
  g_guards = NULL;
  g_cap = g_watched = 0;
  g_cb = NULL;
}

static int has_prefix(const char *line, size_t len, const char *name) {
  size_t n = strlen(name);
  return len >= n && strncasecmp(line, name, n) == 0;
}

static int contains_nocase(const char *s, size_t len, const char *word) {
  size_t w = strlen(word);
  for (size_t i = 0; i + w <= len; i++)
    if (strncasecmp(s + i, word, w) == 0) return 1;
  return 0;
}

/* A complete head line (without its "\r\n"), of which the first line_len bytes are kept. */
static void head_line(guard_t *g) {
  const char *l = g->line;
  size_t n = g->line_len;
  if (has_prefix(l, n, "upgrade:") && contains_nocase(l, n, "websocket")) g->upgrade = 1;
  else if (has_prefix(l, n, "transfer-encoding:")) g->chunked = 1;
  else if (has_prefix(l, n, "content-length:")) {
    uint64_t v = 0;
    for (size_t i = strlen("content-length:"); i < n; i++) {
      if (l[i] >= '0' && l[i] <= '9') {
        if (v > (UINT64_MAX - 9) / 10) break; /* absurd: lws refuses it anyway */
        v = v * 10 + (uint64_t)(l[i] - '0');
      }
    }
    g->content_length = v;
  }
}

static void head_end(guard_t *g) {
  if (g->upgrade) {
    g->mode = MODE_FRAMES;
    g->hdr_have = 0;
    g->left = 0;
  } else if (g->chunked) {
    g->mode = MODE_OFF; /* not followed further (frame_guard.h) */
    g->owner = NULL;
    g_watched--;
  } else if (g->content_length) {
    g->mode = MODE_BODY;
    g->left = g->content_length;
  } else {
    head_reset(g);
  }
}

static void violated(guard_t *g) {
  g->mode = MODE_VIOLATED;
  if (g_cb && g->owner) g_cb(g->owner);
}

/* One frame-header byte; the header is complete when hdr_have reaches hdr_need. */
static void frame_byte(guard_t *g, unsigned char b) {
  g->hdr[g->hdr_have++] = b;
  if (g->hdr_have == 2) {
    if (!(b & 0x80)) {
      violated(g);
      return;
    }
    unsigned len7 = b & 0x7f;
    g->hdr_need = (unsigned char)(2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4);
  }
  if (g->hdr_have < 2 || g->hdr_have < g->hdr_need) return;
  unsigned len7 = g->hdr[1] & 0x7f;
  uint64_t len = len7;
  if (len7 == 126) len = (uint64_t)g->hdr[2] << 8 | g->hdr[3];
  else if (len7 == 127) {
    len = 0;
    for (int i = 2; i < 10; i++) len = len << 8 | g->hdr[i];
  }
  g->left = len;
  g->hdr_have = 0;
}

static size_t feed(guard_t *g, const unsigned char *p, size_t n);

size_t gw_frame_guard_feed(int fd, const unsigned char *p, size_t n) { return feed(guard_of(fd), p, n); }

/* Returns n, or where the first unmasked frame of this read starts (0 if it started in an
 * earlier read): the bytes before it are complete frames lws may still handle. */
static size_t feed(guard_t *g, const unsigned char *p, size_t n) {
  size_t i = 0;
  if (g && g->mode == MODE_VIOLATED) g->armed = 1; /* the read that found it is handled */
  while (g && i < n) {
    switch (g->mode) {
      case MODE_HEAD: {
        unsigned char c = p[i++];
        if (c == '\n') {
          if (g->line_empty) head_end(g);
          else {
            head_line(g);
            g->line_len = 0;
            g->line_empty = 1;
          }
        } else if (c != '\r' || !g->line_empty) {
          g->line_empty = 0;
          if (g->line_len < LINE_KEEP && c != '\r') g->line[g->line_len++] = (char)c;
        }
        break;
      }
      case MODE_BODY: {
        uint64_t take = n - i < g->left ? n - i : g->left;
        i += take;
        g->left -= take;
        if (!g->left) head_reset(g);
        break;
      }
      case MODE_FRAMES:
        if (g->left) {
          uint64_t take = n - i < g->left ? n - i : g->left;
          i += take;
          g->left -= take;
        } else {
          size_t start = i >= g->hdr_have ? i - g->hdr_have : 0;
          frame_byte(g, p[i++]);
          if (g->mode == MODE_VIOLATED) {
            if (!start) g->armed = 1; /* nothing before it in this read */
            return start;
          }
        }
        break;
      default: /* MODE_VIOLATED, or OFF after a chunked head: nothing more to follow */
        return n;
    }
    if (g->mode == MODE_OFF) return n;
  }
  return n;
}

/* ---- the interposed reads -------------------------------------------------------------- */

typedef ssize_t (*recv_fn)(int, void *, size_t, int);
typedef int (*ssl_read_fn)(SSL *, void *, int);

ssize_t recv(int fd, void *buf, size_t len, int flags) {
  static recv_fn real;
  if (!real) real = (recv_fn)dlsym(RTLD_NEXT, "recv");
  ssize_t r = real(fd, buf, len, flags);
  guard_t *g;
  if (r > 0 && !(flags & MSG_PEEK) && (g = guard_of(fd)) && !g->tls) {
    size_t keep = feed(g, buf, (size_t)r);
    if (keep) return (ssize_t)keep; /* the bad frame and what follows never reach lws */
  }
  return r;
}

int SSL_read(SSL *ssl, void *buf, int num) {
  static ssl_read_fn real;
  if (!real) real = (ssl_read_fn)dlsym(RTLD_NEXT, "SSL_read");
  int r = real(ssl, buf, num);
  guard_t *g;
  if (r > 0 && g_watched && (g = guard_of(SSL_get_fd(ssl))) && g->tls) {
    size_t keep = feed(g, buf, (size_t)r);
    if (keep) return (int)keep;
  }
  return r;
}
