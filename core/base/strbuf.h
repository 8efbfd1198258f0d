/* A growable byte buffer, reused where a hot path must not allocate per message (the JSON
 * encoder, Engine.IO payloads) and for building text (metrics, admin answers). */
#ifndef GW_STRBUF_H
#define GW_STRBUF_H

#include <stddef.h>

typedef struct gw_strbuf {
  char *p;
  size_t len, cap;
} gw_strbuf_t;

/* Room for `more` bytes after len (capacity doubles); 0, or -1 when out of memory. */
int gw_strbuf_reserve(gw_strbuf_t *b, size_t more);
int gw_strbuf_append(gw_strbuf_t *b, const void *data, size_t n);
/* printf-style append; keeps the buffer NUL-terminated. */
int gw_strbuf_appendf(gw_strbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void gw_strbuf_free(gw_strbuf_t *b);

#endif
