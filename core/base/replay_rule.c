#include "replay_rule.h"

#include <stdlib.h>
#include <string.h>

static int channel_matches(const gw_replay_rule_t *r, const char *channel) {
  return r->prefix ? strncmp(channel, r->channel, r->clen) == 0 : strcmp(channel, r->channel) == 0;
}

static int event_matches(const gw_replay_rule_t *r, const char *ev, size_t evlen) {
  if (!r->events) return 1;
  for (size_t i = 0; i < r->n_events; i++)
    if (strlen(r->events[i]) == evlen && memcmp(r->events[i], ev, evlen) == 0) return 1;
  return 0;
}

const gw_replay_rule_t *gw_replay_match(const gw_replay_rule_t *rules, size_t n, const char *channel,
                                        const char *ev, size_t evlen) {
  for (size_t i = 0; i < n; i++)
    if (channel_matches(&rules[i], channel) && event_matches(&rules[i], ev, evlen))
      return rules[i].keep ? &rules[i] : NULL;
  return NULL;
}

int gw_replay_channel_kept(const gw_replay_rule_t *rules, size_t n, const char *channel) {
  for (size_t i = 0; i < n; i++) {
    if (!channel_matches(&rules[i], channel)) continue;
    if (rules[i].keep) return 1;
    if (!rules[i].events) return 0; /* every later rule is shadowed for this channel */
  }
  return 0;
}

const gw_replay_rule_t *gw_replay_ack_rule(const gw_replay_rule_t *rules, size_t n, const char *channel) {
  for (size_t i = 0; i < n; i++) {
    if (!channel_matches(&rules[i], channel)) continue;
    if (rules[i].keep && rules[i].ack) return &rules[i];
    if (!rules[i].events) return NULL;
  }
  return NULL;
}

void gw_replay_rules_free(gw_replay_rule_t *rules, size_t n) {
  for (size_t i = 0; rules && i < n; i++) {
    free(rules[i].channel);
    for (size_t k = 0; k < rules[i].n_events; k++) free(rules[i].events[k]);
    free(rules[i].events);
  }
  free(rules);
}
