/* A list of error messages, collected while a policy, its config or a token key is read,
 * so that every mistake is reported at once rather than the first alone. */
#ifndef GW_ERRLIST_H
#define GW_ERRLIST_H

#include <stddef.h>

typedef struct gw_errlist {
  char **items;
  size_t n;
} gw_errlist_t;

void gw_errlist_add(gw_errlist_t *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void gw_errlist_free(gw_errlist_t *e);

#endif
