/* The bytes of a kept publication in a history store (docs/offline-replay.md): written by
 * gw_node_publish, read back by replay.h. */
#ifndef GW_REPLAY_CODEC_H
#define GW_REPLAY_CODEC_H

#include <stddef.h>
#include <stdint.h>

/* A kept publication's bytes in the store: "<event length>:<event><json>" (no json: none).
 * Stores may be shared (Redis), so decoding checks everything. */
char *gw_replay_encode(const char *ev, size_t evlen, const char *json, size_t jlen, size_t *out_len);

typedef struct gw_replay_item {
  uint64_t offset;
  const char *ev;
  size_t evlen;
  const char *json; /* NULL: no data */
  size_t jlen;
} gw_replay_item_t;

/* 0, or GW_EIO when p is not a payload gw_replay_encode wrote. */
int gw_replay_decode(const void *p, size_t len, uint64_t offset, gw_replay_item_t *out);

#endif
