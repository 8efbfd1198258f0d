/* The policy's replay rules (docs/offline-replay.md), as C reads them once per policy
 * generation (policy.c) from what lua/aivo/replay.lua checked: which publications are kept
 * in the history (history.h), how many and how long, and which need an ack. The node asks
 * here on every publish, so matching is a few string compares, never Lua. */
#ifndef GW_REPLAY_RULE_H
#define GW_REPLAY_RULE_H

#include <stddef.h>
#include <stdint.h>

typedef struct gw_replay_rule {
  char *channel; /* a room name, or a prefix when it ends with '*' */
  size_t clen;   /* without the '*' */
  int prefix;
  char **events; /* NULL: every event */
  size_t n_events;
  int keep, ack;
  uint64_t ttl_ms;
  size_t size;             /* messages kept per stream */
  unsigned retries;        /* re-sends to a connected client that does not ack */
  uint64_t ack_timeout_ms; /* the first wait; each next one doubles */
} gw_replay_rule_t;

/* The first rule matching channel and event, when it keeps the message; NULL: not kept. */
const gw_replay_rule_t *gw_replay_match(const gw_replay_rule_t *rules, size_t n, const char *channel,
                                        const char *ev, size_t evlen);
/* 1 when some rule keeps some event of channel (a resume of it can be answered). */
int gw_replay_channel_kept(const gw_replay_rule_t *rules, size_t n, const char *channel);
/* The first rule of channel that keeps with acks (for any event), or NULL. */
const gw_replay_rule_t *gw_replay_ack_rule(const gw_replay_rule_t *rules, size_t n, const char *channel);
void gw_replay_rules_free(gw_replay_rule_t *rules, size_t n);

#endif
