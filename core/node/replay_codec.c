#include "replay_codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"

char *gw_replay_encode(const char *ev, size_t evlen, const char *json, size_t jlen, size_t *out_len) {
  char head[24];
  int hl = snprintf(head, sizeof head, "%zu:", evlen);
  size_t n = (size_t)hl + evlen + (json ? jlen : 0);
  char *p = malloc(n ? n : 1);
  if (!p) return NULL;
  memcpy(p, head, (size_t)hl);
  memcpy(p + hl, ev, evlen);
  if (json && jlen) memcpy(p + hl + evlen, json, jlen);
  *out_len = n;
  return p;
}

int gw_replay_decode(const void *data, size_t len, uint64_t offset, gw_replay_item_t *out) {
  const char *p = data;
  size_t i = 0, evlen = 0;
  while (i < len && i < 4 && p[i] >= '0' && p[i] <= '9') evlen = evlen * 10 + (size_t)(p[i++] - '0');
  if (i == 0 || i >= len || p[i] != ':' || evlen == 0 || evlen > 200 || len - i - 1 < evlen) return GW_EIO;
  i++;
  out->offset = offset;
  out->ev = p + i;
  out->evlen = evlen;
  out->jlen = len - i - evlen;
  out->json = out->jlen ? p + i + evlen : NULL;
  return 0;
}
