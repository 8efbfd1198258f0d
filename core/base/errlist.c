#include "errlist.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void gw_errlist_add(gw_errlist_t *e, const char *fmt, ...) {
  char buf[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  char **n = realloc(e->items, (e->n + 1) * sizeof *n);
  if (!n) return;
  e->items = n;
  e->items[e->n] = strdup(buf);
  if (e->items[e->n]) e->n++;
}

void gw_errlist_free(gw_errlist_t *e) {
  for (size_t i = 0; i < e->n; i++) free(e->items[i]);
  free(e->items);
  e->items = NULL;
  e->n = 0;
}
