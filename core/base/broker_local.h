/* The local broker (broker.h): one node, no transport. publish() hands every publication to
 * the registered handler at once, subscribed or not (this node is the only one, and the
 * layer above finds its own members: today's behaviour, through the same path a Redis broker
 * takes). Subscriptions are kept as a set (idempotent, like Redis) so that tests and /admin
 * can see what the node asked for; presence is kept per channel in memory. Always up. */
#ifndef GW_BROKER_LOCAL_H
#define GW_BROKER_LOCAL_H

#include <stddef.h>
#include <stdint.h>

#include "broker.h"

typedef struct gw_broker_local gw_broker_local_t;

typedef struct gw_broker_local_stats {
  size_t channels;        /* subscribed now */
  size_t presence_channels; /* channels with someone present now */
  uint64_t published;     /* publish() calls accepted */
  uint64_t delivered;     /* of them, handed to a handler */
  uint64_t subscribes;    /* channels added to the set */
  uint64_t unsubscribes;  /* channels removed from it */
} gw_broker_local_stats_t;

/* 0 or GW_ENOMEM. */
int gw_broker_local_new(gw_broker_local_t **out);
/* Its operations table (valid until it is freed). */
const gw_broker_t *gw_broker_local_broker(gw_broker_local_t *b);
int gw_broker_local_subscribed(const gw_broker_local_t *b, const char *channel);
/* Calls fn for every subscribed channel (in no particular order), for /admin. */
void gw_broker_local_each_channel(const gw_broker_local_t *b,
                                  void (*fn)(void *ud, const char *channel), void *ud);
/* The presence of channel, synchronously (0 and 0 when nobody is there). */
void gw_broker_local_presence(const gw_broker_local_t *b, const char *channel, size_t *clients,
                              size_t *users);
void gw_broker_local_stats(const gw_broker_local_t *b, gw_broker_local_stats_t *out);
/* Frees it (the table's close does the same). NULL: nothing. */
void gw_broker_local_free(gw_broker_local_t *b);

#endif
