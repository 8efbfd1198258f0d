#include "ack_track.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#include "clock.h"
#include "errors.h"
#include "log.h"
#include "loop.h"
#include "node.h"
#include "replay.h"
#include "resume.h"
#include "settings.h"

#define TICK_S 0.05

typedef struct pending {
  char channel[GW_HISTORY_CHANNEL_MAX + 1];
  gw_stream_pos_t pos;
  gw_msgbuf_t *frame;
  unsigned tries, retries;
  double due, gap; /* next re-send (ms), and the wait before it */
} pending_t;

typedef struct tracked {
  uint64_t conn_id;
  pending_t *p;
  size_t n, cap;
  UT_hash_handle hh;
} tracked_t;

static tracked_t *g_conns;
static ev_timer g_tick;
static int g_tick_init;

static void stop_if_idle(void) {
  if (!g_conns && g_tick_init) ev_timer_stop(gw_loop_main(), &g_tick);
}

static void drop(tracked_t *t, size_t i) {
  gw_msgbuf_unref(t->p[i].frame);
  t->p[i] = t->p[--t->n];
}

static void free_tracked(tracked_t *t) {
  while (t->n) drop(t, t->n - 1);
  HASH_DEL(g_conns, t);
  free(t->p);
  free(t);
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop, (void)w, (void)revents;
  double now = gw_clock_now_ms();
  gw_replay_stats_t *st = gw_replay_stats_mut();
  tracked_t *t, *tmp;
  HASH_ITER(hh, g_conns, t, tmp) {
    gw_conn_t *c = gw_conn_find(t->conn_id);
    if (!c || c->close_code) {
      free_tracked(t);
      continue;
    }
    for (size_t i = 0; i < t->n;) {
      pending_t *p = &t->p[i];
      if (p->due > now) {
        i++;
        continue;
      }
      if (p->tries >= p->retries) {
        st->failed++;
        gw_log(GW_LOG_INFO, c->id, "replay: %s offset %" PRIu64 " not acknowledged after %u re-sends", p->channel,
               p->pos.offset, p->tries);
        drop(t, i);
        continue;
      }
      p->tries++;
      p->gap *= 2;
      p->due = now + p->gap;
      st->redelivered++;
      gw_conn_send(c, p->frame);
      i++;
    }
    if (!t->n) free_tracked(t);
  }
  stop_if_idle();
}

void gw_ack_track_sent(gw_conn_t *c, const gw_event_t *e, gw_msgbuf_t *frame) {
  const gw_settings_t *s = gw_settings();
  const gw_replay_rule_t *r = s && e->channel ? gw_replay_match(s->replay, s->n_replay, e->channel, e->ev, e->evlen) : NULL;
  if (!r || !r->ack || !e->pos) return;
  tracked_t *t;
  HASH_FIND(hh, g_conns, &c->id, sizeof c->id, t);
  if (!t) {
    if (!(t = calloc(1, sizeof *t))) return;
    t->conn_id = c->id;
    HASH_ADD(hh, g_conns, conn_id, sizeof t->conn_id, t);
  }
  for (size_t i = 0; i < t->n; i++) /* sent again (a resume): the same message, one entry */
    if (t->p[i].pos.offset == e->pos->offset && strcmp(t->p[i].channel, e->channel) == 0) return;
  if (t->n == t->cap && t->n < GW_ACK_MAX_PENDING) {
    size_t cap = t->cap ? t->cap * 2 : 8;
    pending_t *np = realloc(t->p, cap * sizeof *np);
    if (np) {
      t->p = np;
      t->cap = cap;
    }
  }
  if (t->n == t->cap) { /* at the bound (or out of memory): sent once, not tracked */
    gw_replay_stats_mut()->failed++;
    if (!t->n) free_tracked(t);
    return;
  }
  pending_t *p = &t->p[t->n++];
  memset(p, 0, sizeof *p);
  snprintf(p->channel, sizeof p->channel, "%s", e->channel);
  p->pos = *e->pos;
  p->frame = gw_msgbuf_ref(frame);
  p->retries = r->retries;
  p->gap = (double)r->ack_timeout_ms;
  p->due = gw_clock_now_ms() + p->gap;
  if (!g_tick_init) {
    ev_timer_init(&g_tick, on_tick, TICK_S, TICK_S);
    g_tick_init = 1;
  }
  if (!ev_is_active(&g_tick)) ev_timer_start(gw_loop_main(), &g_tick);
}

size_t gw_ack_track_ack(gw_conn_t *c, const char *channel, const gw_stream_pos_t *pos) {
  const gw_history_t *h = gw_node_history();
  if (h && h->ack_set) h->ack_set(h->ud, channel, pos);
  tracked_t *t;
  HASH_FIND(hh, g_conns, &c->id, sizeof c->id, t);
  size_t settled = 0;
  for (size_t i = 0; t && i < t->n;) {
    pending_t *p = &t->p[i];
    if (strcmp(p->channel, channel) == 0 && strcmp(p->pos.epoch, pos->epoch) == 0 && p->pos.offset <= pos->offset) {
      drop(t, i);
      settled++;
    } else {
      i++;
    }
  }
  gw_replay_stats_mut()->acked += settled;
  if (t && !t->n) free_tracked(t);
  stop_if_idle();
  return settled;
}

void gw_ack_track_forget(gw_conn_t *c) {
  tracked_t *t;
  HASH_FIND(hh, g_conns, &c->id, sizeof c->id, t);
  if (t) free_tracked(t);
  stop_if_idle();
}

/* ---- the next connection: what was not acknowledged comes again -------------------------- */

typedef struct redeliver {
  uint64_t conn_id;
  char channel[];
} redeliver_t;

static void on_unacked(void *ud, int status, const gw_replay_item_t *items, size_t n, const gw_stream_pos_t *top,
                       int recovered, int last) {
  redeliver_t *q = ud;
  gw_conn_t *c = gw_conn_find(q->conn_id);
  const gw_settings_t *s = gw_settings();
  (void)recovered; /* lost ones are lost; what is still kept after the cursor goes out */
  for (size_t i = 0; !status && c && !c->close_code && s && i < n; i++) {
    const gw_replay_rule_t *r = gw_replay_match(s->replay, s->n_replay, q->channel, items[i].ev, items[i].evlen);
    if (!r || !r->ack) continue;
    gw_stream_pos_t pos = {items[i].offset, ""};
    memcpy(pos.epoch, top->epoch, sizeof pos.epoch);
    gw_event_t e = {items[i].ev, items[i].evlen, items[i].json, items[i].jlen, q->channel, &pos, 1};
    gw_resume_send_one(c, &e); /* tracked again by the protocol's send */
  }
  if (last) free(q);
}

static void on_cursor(void *ud, int status, const gw_stream_pos_t *pos) {
  redeliver_t *q = ud;
  const gw_settings_t *s = gw_settings();
  if (status || !gw_conn_find(q->conn_id) || !s ||
      gw_node_replay_read(q->channel, pos, s->history.max_stream_len, on_unacked, q) < 0) {
    if (status && status != GW_ECANCELED)
      gw_log(GW_LOG_WARN, q->conn_id, "replay: the unacknowledged messages of %s cannot be read (%s)", q->channel,
             gw_strerror(status));
    free(q);
  }
}

void gw_ack_track_connected(gw_conn_t *c, const char *user_channel) {
  const gw_settings_t *s = gw_settings();
  const gw_history_t *h = gw_node_history();
  if (!s || !h || !h->ack_get || !gw_replay_ack_rule(s->replay, s->n_replay, user_channel)) return;
  size_t len = strlen(user_channel);
  redeliver_t *q = malloc(sizeof *q + len + 1);
  if (!q) return;
  q->conn_id = c->id;
  memcpy(q->channel, user_channel, len + 1);
  if (h->ack_get(h->ud, user_channel, on_cursor, q) < 0) free(q);
}
