/* The broker seam: how publications travel between gateway processes (nodes), and who is
 * present in a channel across all of them. The local broker (broker_local.h) is the first
 * implementation: one node, synchronous, today's behaviour. A Redis pub/sub broker (issue 14)
 * implements the same table. Only the node layer (node.h) calls a broker; the broker calls
 * back up through the handler the node registers.
 *
 * Contract for every broker:
 *  - publish() delivers the publication to the handler of THIS node at once, before it
 *    returns (so local members get it with no round trip, in the order published), and to
 *    every other node subscribed to the channel through its transport. A transport that also
 *    hands a node its own publications back (Redis pub/sub does) may do so: the node drops
 *    anything of its own origin that arrives outside its own publish() (the "echo").
 *    When the transport is down, publish() still delivers locally and returns GW_EUNAVAIL.
 *  - subscribe()/unsubscribe() take a batch of channels (the node flushes the changes of
 *    one loop iteration at once: one SUBSCRIBE command for many rooms). Both are idempotent
 *    (subscribing twice is one subscription, unsubscribing an unknown channel is a no-op),
 *    and record the intent even while the transport is down: a broker resubscribes on its
 *    own after a reconnect, and the node also subscribes its channels again on every
 *    on_state(up) after a down.
 *  - presence: entries are (channel, client, user). client is the connection id on this
 *    node; a broker shared by several nodes qualifies it with the node id itself.
 *    presence_count answers through a callback (Redis is a round trip); the same calling
 *    convention as history.h: a negative return means the callback never runs, 0 means it
 *    runs exactly once, perhaps before the call returns.
 *  - on_state(up/down) reports the transport's state; the local broker is up from the moment
 *    a handler is set. Publications missed while down are not replayed by the broker: that is
 *    the history store's job (history.h).
 * Pointers in a publication handed to the handler are valid only during the call. */
#ifndef GW_BROKER_H
#define GW_BROKER_H

#include <stddef.h>
#include <stdint.h>

#include "history.h"

#define GW_BROKER_CHANNEL_MAX GW_HISTORY_CHANNEL_MAX /* bytes of a channel name */

/* One message to the members of a channel (a room), protocol-neutral: each protocol encodes
 * event + data its own way when it delivers. */
typedef struct gw_publication {
  uint64_t origin;         /* the publishing node's id (node.h: random per process, never 0) */
  const char *channel;     /* NUL-terminated room name */
  const char *event;       /* event name, event_len bytes */
  size_t event_len;
  const char *data;        /* JSON text, data_len bytes; NULL: no data */
  size_t data_len;
  int has_position;        /* position is set: the publication was kept in the history */
  gw_stream_pos_t position;
  uint64_t except_conn;    /* a connection of the ORIGIN node that must not get it (0: none);
                              connection ids are per process, so other nodes ignore it */
} gw_publication_t;

typedef struct gw_broker_handler {
  void (*on_publication)(void *ud, const gw_publication_t *pub);
  void (*on_state)(void *ud, int up); /* 1: up, 0: down */
  void *ud;
} gw_broker_handler_t;

/* clients: connection entries in the channel; users: distinct non-NULL users among them. */
typedef void (*gw_presence_cb)(void *cb_ud, int status, size_t clients, size_t users);

/* One presence entry: which node added it, its connection id there, its user (NULL:
 * anonymous). Valid during the callback only. */
typedef struct gw_presence_entry {
  uint64_t node; /* 0 from a broker that does not know node ids (local): this node */
  uint64_t client;
  const char *user;
} gw_presence_entry_t;
#define GW_BROKER_PRESENCE_LIST_MAX 10000
/* more: 1 when entries were left out (over max). */
typedef void (*gw_presence_list_cb)(void *cb_ud, int status, const gw_presence_entry_t *entries, size_t n,
                                    int more);

/* A broker: its operations and its own data (the model: gw_rl_store_t, ratelimit.h). */
typedef struct gw_broker {
  /* The handler is copied; NULL unregisters. Brokers call on_state(up) from here when they
   * are already up. */
  int (*set_handler)(void *ud, const gw_broker_handler_t *h);
  int (*publish)(void *ud, const gw_publication_t *pub);
  int (*subscribe)(void *ud, const char *const *channels, size_t n);
  int (*unsubscribe)(void *ud, const char *const *channels, size_t n);
  /* user NULL: anonymous. Adding an existing client replaces its user. */
  int (*presence_add)(void *ud, const char *channel, uint64_t client, const char *user);
  /* GW_ENOENT when the client was not present. */
  int (*presence_remove)(void *ud, const char *channel, uint64_t client);
  int (*presence_count)(void *ud, const char *channel, gw_presence_cb cb, void *cb_ud);
  /* Up to max (1..GW_BROKER_PRESENCE_LIST_MAX) entries; optional (NULL: counts only). */
  int (*presence_list)(void *ud, const char *channel, size_t max, gw_presence_list_cb cb, void *cb_ud);
  /* Frees the broker: pending callbacks run first with GW_ECANCELED. */
  void (*close)(void *ud);
  const char *name; /* "local", "redis": for logs and /admin */
  void *ud;
} gw_broker_t;

#endif
