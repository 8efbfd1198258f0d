/* The node layer (DESIGN.md §7): the one place that talks to the broker (broker.h) and the
 * history store (history.h). Below it: rooms and connections (hub); above it: the policy,
 * the protocols and the gateway, which register a delivery table at start so that a
 * publication arriving from the broker reaches the local members of a room without the
 * node knowing any protocol.
 *
 * Wired by the gateway at start with the local broker (broker_local.h) and a delivery that
 * fans out through the members' protocol tables (gw_room_fanout): gw.publish, room sends and
 * admin publishes all go through gw_node_publish, so the Redis broker plugs in here.
 *
 * Publish: gw_node_publish hands the publication (origin = this node) to the broker, which
 * delivers it back to this node at once (broker.h); the node passes it to deliver() for the
 * local members. A publication of this node's origin that arrives at any other time is an
 * echo from a transport (Redis hands a publisher its own messages) and is dropped, so local
 * members get each publication exactly once. If the broker did not deliver it during
 * publish (a transport that only echoes, or one that is down), the node delivers it itself
 * before returning: local members never depend on the transport.
 *
 * Subscriptions: rooms report their first and last local member (room.h); the node records
 * the room as changed and, at gw_node_flush(), subscribes every changed room that has local
 * members and is not subscribed, and unsubscribes every subscribed one that has none, in one
 * batch each. A room joined and left within one loop pass costs the broker nothing. The
 * gateway calls gw_node_flush() once per loop pass (an ev_prepare or a zero timer started
 * from the wake callback); publications to a room whose subscription is not flushed yet still
 * reach its local members (they come back through publish), remote ones reach it after the
 * flush. After the broker reports down then up, every subscribed room is subscribed again at
 * the next flush. */
#ifndef GW_NODE_H
#define GW_NODE_H

#include <stddef.h>
#include <stdint.h>

#include "broker.h"
#include "history.h"

typedef struct gw_node_delivery {
  /* Delivers pub to the local members of pub->channel, skipping pub->except_conn (0: none);
   * returns how many got it. */
  size_t (*deliver)(void *ud, const char *channel, const gw_publication_t *pub);
  void *ud;
} gw_node_delivery_t;

typedef struct gw_node_config {
  const gw_broker_t *broker;   /* required; the table is copied, the broker stays the caller's */
  const gw_history_t *history; /* optional (NULL: nothing is kept for replay) */
  gw_node_delivery_t delivery; /* required */
  uint64_t id;                 /* this node's origin id; 0: a random one (never 0) */
  /* 1: every room join and leave is a presence entry at the broker (cluster-wide presence;
   * the gateway turns it on with Redis). 0: no presence calls (alone, the rooms are it). */
  int presence;
  /* Called when the first change is recorded since the last flush (optional): the gateway
   * starts its zero timer here instead of flushing on every loop pass. */
  void (*wake)(void *ud);
  void *wake_ud;
} gw_node_config_t;

typedef struct gw_node_stats {
  uint64_t published;       /* gw_node_publish calls accepted */
  uint64_t delivered;       /* local deliveries (members reached) */
  uint64_t remote;          /* publications from other nodes handed to deliver() */
  uint64_t echoes_dropped;  /* own publications coming back from the transport */
  uint64_t subscribes, unsubscribes; /* channels sent to the broker */
  uint64_t flush_errors;    /* flushes the broker refused (retried at the next flush) */
  uint64_t kept;            /* publications kept in the history (replay rules) */
  uint64_t keep_failed;     /* matched a replay rule but the store refused or failed */
  size_t subscribed;        /* channels subscribed now */
  size_t pending;           /* rooms changed since the last flush */
  int broker_up;
} gw_node_stats_t;

/* Registers the room observer and the broker handler; call it before any room exists (a
 * room created earlier is unknown to the node until its members change). 0, GW_EINVAL (no
 * broker, a broker without publish/set_handler/subscribe/unsubscribe, no deliver, or
 * already initialised), or the broker's error from set_handler. */
int gw_node_init(const gw_node_config_t *cfg);
/* Unregisters both and forgets the subscriptions, without telling the broker (which is
 * being closed too, at exit). Rooms should be empty or about to be. */
void gw_node_close(void);
uint64_t gw_node_id(void);

/* Publishes event + json (NULL: no data) to room on every node; except_id: a local
 * connection that must not get it (0: none). *delivered (optional) is the number of local
 * members reached. 0, GW_EINVAL (a bad room, an event starting with GW_NODE_RESERVED_PREFIX;
 * nothing delivered), or the broker's
 * error (GW_EUNAVAIL while it is down: local members got it all the same).
 * When a replay rule of the running policy keeps the event (replay_rule.h), it is appended
 * to the history first and published with its position once the store has it (at once
 * with the memory store; after a round trip with Redis, and then *delivered is 0). A store
 * that fails or refuses (too large) still lets it go out live, without a position. */
int gw_node_publish(const char *room, const char *event, size_t evlen, const char *json,
                    size_t jlen, uint64_t except_id, size_t *delivered);

/* gw_node_publish_then's answer: status as gw_node_publish returns it (the broker's error, or
 * 0), pos the message's position when it was kept (NULL: live only), delivered the local
 * members reached. */
typedef void (*gw_node_published_cb)(void *ud, int status, const gw_stream_pos_t *pos, size_t delivered);
/* The same as gw_node_publish, telling cb once the message is stored (when a rule keeps it)
 * and gone out: GW_EINVAL (nothing published, cb never runs), or 0 and cb runs exactly once,
 * perhaps before this returns (memory store, or not kept). For a sender that must only hear
 * "stored" once it is (POST /admin/publish). */
int gw_node_publish_then(const char *room, const char *event, size_t evlen, const char *json, size_t jlen,
                         uint64_t except_id, gw_node_published_cb cb, void *cb_ud);

/* Event names starting with this are the node's own (gw_node_publish refuses them). */
#define GW_NODE_RESERVED_PREFIX "$aivo:"
#define GW_NODE_EVENT_DISCONNECT "$aivo:disconnect"
#define GW_NODE_REASON_MAX 100
/* Closes every member of room on every node with code (1000, 3000..4999) and reason (at most
 * GW_NODE_REASON_MAX bytes; characters that would need JSON escapes become '?'): the admin
 * API's disconnect by user. *closed (optional): members closed on this node. 0, GW_EINVAL,
 * or GW_EUNAVAIL (the broker is down: only this node's members were closed). */
int gw_node_disconnect(const char *room, int code, const char *reason, size_t *closed);
/* Sends the subscription changes recorded since the last flush: 0, or the broker's error
 * (what failed stays pending and is sent again at the next flush). Cheap when nothing
 * changed. */
int gw_node_flush(void);
int gw_node_subscribed(const char *room); /* subscribed at the broker (after a flush) */

/* Presence (broker.h): every node's view when config.presence is on, else this node's
 * rooms. GW_EINVAL before init or when the broker has no presence. */
int gw_node_presence_add(const char *room, uint64_t conn_id, const char *user);
int gw_node_presence_remove(const char *room, uint64_t conn_id);
int gw_node_presence_count(const char *room, gw_presence_cb cb, void *cb_ud);
/* Who: up to max entries (node id, connection id, user) through cb (broker.h's calling
 * convention). Without config.presence, this node's members of the room, at once. */
int gw_node_presence_list(const char *room, size_t max, gw_presence_list_cb cb, void *cb_ud);

/* The distinct non-NULL names among users[0..n) (the array is sorted in place): the "users"
 * of a presence answer, counted the same way everywhere. */
size_t gw_node_count_distinct(const char **users, size_t n);
/* The history store given at init, or NULL. */
const gw_history_t *gw_node_history(void);
void gw_node_stats(gw_node_stats_t *out);

#endif
