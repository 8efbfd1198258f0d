#include "hold.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "errors.h"
#include "settings.h"

typedef struct held {
  struct held *next;
  unsigned slot; /* which channel */
  gw_stream_pos_t pos;
  size_t evlen, jlen, size;
  int has_json, ack;
  char *ev, *json;
  char data[];
} held_t;

struct gw_hold {
  char *channels[GW_HOLD_CHANNELS]; /* NULL: free slot */
  int overflow[GW_HOLD_CHANNELS];
  int claimed[GW_HOLD_CHANNELS];
  double since[GW_HOLD_CHANNELS];
  held_t *head, *tail;
  size_t events, bytes;
};

static size_t g_holding; /* connections with a hold */

size_t gw_hold_count(void) { return g_holding; }

static int slot_of(const struct gw_hold *h, const char *channel) {
  for (int i = 0; h && i < GW_HOLD_CHANNELS; i++)
    if (h->channels[i] && strcmp(h->channels[i], channel) == 0) return i;
  return -1;
}

int gw_hold_begin(gw_conn_t *c, const char *channel, int claim) {
  if (!c->hold) {
    if (!(c->hold = calloc(1, sizeof *c->hold))) return GW_ENOMEM;
    g_holding++;
  }
  struct gw_hold *h = c->hold;
  int i = slot_of(h, channel);
  if (i >= 0) {
    if (h->claimed[i] || !claim) return GW_EEXIST;
    h->claimed[i] = 1;
    return 0;
  }
  for (i = 0; i < GW_HOLD_CHANNELS; i++) {
    if (h->channels[i]) continue;
    if (!(h->channels[i] = strdup(channel))) return GW_ENOMEM;
    h->overflow[i] = 0;
    h->claimed[i] = claim;
    h->since[i] = gw_clock_now_ms();
    return 0;
  }
  return GW_ELIMIT;
}

void gw_hold_on_join(gw_conn_t *c, const char *channel) {
  const gw_settings_t *s = gw_settings();
  if (s && gw_replay_channel_kept(s->replay, s->n_replay, channel)) gw_hold_begin(c, channel, 0);
}

void gw_hold_release_stale(gw_conn_t *c, double before_ms, void (*send)(gw_conn_t *c, const gw_event_t *e)) {
  struct gw_hold *h = c->hold;
  for (int i = 0; h && i < GW_HOLD_CHANNELS; i++) {
    if (!h->channels[i] || h->claimed[i] || h->since[i] >= before_ms) continue;
    gw_stream_pos_t none = {0, ""};
    char *ch = strdup(h->channels[i]);
    if (ch) gw_hold_end(c, ch, &none, send); /* everything held: none was replayed */
    free(ch);
    h = c->hold;
  }
}

int gw_hold_take(gw_conn_t *c, const gw_event_t *e) {
  struct gw_hold *h = c->hold;
  int i;
  if (!h || !e->channel || !e->pos || (i = slot_of(h, e->channel)) < 0) return 0;
  size_t size = sizeof(held_t) + e->evlen + e->jlen + 2;
  if (h->overflow[i]) return 1; /* dropped: the resume says recovered = false */
  held_t *m = NULL;
  if (h->events >= GW_HOLD_MAX_EVENTS || h->bytes + size > GW_HOLD_MAX_BYTES || !(m = malloc(size))) {
    h->overflow[i] = 1;
    return 1;
  }
  m->next = NULL;
  m->slot = (unsigned)i;
  m->pos = *e->pos;
  m->evlen = e->evlen;
  m->jlen = e->jlen;
  m->size = size;
  m->has_json = e->json != NULL;
  m->ack = e->ack;
  m->ev = m->data;
  memcpy(m->ev, e->ev, e->evlen);
  m->json = m->ev + e->evlen + 1;
  if (e->jlen) memcpy(m->json, e->json, e->jlen);
  if (h->tail) h->tail->next = m;
  else h->head = m;
  h->tail = m;
  h->events++;
  h->bytes += size;
  return 1;
}

uint64_t gw_hold_first_offset(const gw_conn_t *c, const char *channel, const char *epoch) {
  const struct gw_hold *h = c->hold;
  int i = slot_of(h, channel);
  if (i < 0) return 0;
  for (const held_t *m = h->head; m; m = m->next)
    if (m->slot == (unsigned)i && strcmp(m->pos.epoch, epoch) == 0) return m->pos.offset;
  return 0;
}

int gw_hold_end(gw_conn_t *c, const char *channel, const gw_stream_pos_t *after,
                void (*send)(gw_conn_t *c, const gw_event_t *e)) {
  struct gw_hold *h = c->hold;
  int i = slot_of(h, channel);
  if (i < 0) return 0;
  int overflow = h->overflow[i];
  /* unlink this channel's events first: send may fan out again into another held channel */
  held_t *mine = NULL, **tail = &mine, **pp = &h->head;
  h->tail = NULL;
  while (*pp) {
    held_t *m = *pp;
    if (m->slot == (unsigned)i) {
      *pp = m->next;
      m->next = NULL;
      *tail = m;
      tail = &m->next;
      h->events--;
      h->bytes -= m->size;
    } else {
      h->tail = m;
      pp = &m->next;
    }
  }
  free(h->channels[i]);
  h->channels[i] = NULL;
  while (mine) {
    held_t *m = mine;
    mine = m->next;
    int later = strcmp(m->pos.epoch, after->epoch) != 0 || m->pos.offset > after->offset;
    if (later && send) {
      gw_event_t e = {m->ev, m->evlen, m->has_json ? m->json : NULL, m->jlen, channel, &m->pos, m->ack};
      send(c, &e);
    }
    free(m);
  }
  h = c->hold;
  int used = 0;
  for (int k = 0; h && k < GW_HOLD_CHANNELS; k++) used |= h->channels[k] != NULL;
  if (h && !used && !h->head) gw_hold_free(c);
  return overflow ? GW_ELIMIT : 0;
}

void gw_hold_free(gw_conn_t *c) {
  struct gw_hold *h = c->hold;
  if (!h) return;
  while (h->head) {
    held_t *m = h->head;
    h->head = m->next;
    free(m);
  }
  for (int i = 0; i < GW_HOLD_CHANNELS; i++) free(h->channels[i]);
  free(h);
  c->hold = NULL;
  g_holding--;
}
