#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int gw_strbuf_reserve(gw_strbuf_t *b, size_t more) {
  if (b->len + more <= b->cap) return 0;
  size_t ncap = b->cap ? b->cap : 256;
  while (ncap < b->len + more) ncap *= 2;
  char *n = realloc(b->p, ncap);
  if (!n) return -1;
  b->p = n;
  b->cap = ncap;
  return 0;
}

int gw_strbuf_append(gw_strbuf_t *b, const void *data, size_t n) {
  if (gw_strbuf_reserve(b, n)) return -1;
  if (n) memcpy(b->p + b->len, data, n);
  b->len += n;
  return 0;
}

int gw_strbuf_appendf(gw_strbuf_t *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || gw_strbuf_reserve(b, (size_t)n + 1)) return -1;
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

void gw_strbuf_free(gw_strbuf_t *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}
