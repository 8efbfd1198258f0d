#include "resume.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "hold.h"
#include "json.h"
#include "log.h"
#include "replay.h"
#include "room.h"
#include "settings.h"
#include "stats.h"
#include "strbuf.h"

/* a gap between the replay and the held live events is read again, this many times at most */
#define MAX_REREADS 3

typedef struct request {
  uint64_t conn_id;
  int has_id;
  uint64_t id;
  size_t pending; /* streams not answered yet */
  gw_strbuf_t answer;
  int first;
} request_t;

typedef struct stream {
  request_t *req;
  gw_stream_pos_t last; /* the last position the client has (sent, or its own) */
  size_t replayed;
  int rereads, recovered;
  int fresh; /* the client named no position: only where the stream is */
  char channel[];
} stream_t;

void gw_resume_send_one(gw_conn_t *c, const gw_event_t *e) {
  if (!c->ops || !c->ops->fanout) return;
  void *cache = NULL;
  c->ops->fanout(&cache, c, e);
  if (cache && c->ops->fanout_end) c->ops->fanout_end(cache);
}

static void entry_begin(request_t *q, const char *channel) {
  char esc[GW_JSON_ESCAPED_MAX(GW_HISTORY_CHANNEL_MAX)];
  gw_json_escape(channel, strnlen(channel, GW_HISTORY_CHANNEL_MAX), esc, sizeof esc);
  gw_strbuf_appendf(&q->answer, "%s%s:", q->first ? "" : ",", esc);
  q->first = 0;
}

static void request_done(request_t *q) {
  if (--q->pending) return;
  gw_strbuf_appendf(&q->answer, "}}");
  gw_conn_t *c = gw_conn_find(q->conn_id);
  if (c && !c->close_code && q->answer.len) {
    if (q->has_id) c->ops->ack(c, q->id, q->answer.p, q->answer.len);
    else gw_conn_emit(c, "resume", 6, q->answer.p, q->answer.len);
  }
  gw_strbuf_free(&q->answer);
  free(q);
}

static void refuse_stream(request_t *q, const char *channel, const char *reason) {
  entry_begin(q, channel);
  gw_strbuf_appendf(&q->answer, "{\"recovered\":false,\"reason\":\"%s\"}", reason);
  gw_replay_count_recovery("ws", 0);
}

static void stream_finish(stream_t *s, gw_conn_t *c, int status) {
  request_t *q = s->req;
  if (c) {
    int overflow = gw_hold_end(c, s->channel, &s->last, status ? NULL : gw_resume_send_one) != 0;
    if (overflow) s->recovered = 0;
  }
  entry_begin(q, s->channel);
  if (status)
    gw_strbuf_appendf(&q->answer, "{\"recovered\":false,\"reason\":\"unavailable\"}");
  else if (s->fresh)
    gw_strbuf_appendf(&q->answer, "{\"offset\":%" PRIu64 ",\"epoch\":\"%s\",\"replayed\":0}", s->last.offset,
                      s->last.epoch);
  else
    gw_strbuf_appendf(&q->answer, "{\"recovered\":%s,\"offset\":%" PRIu64 ",\"epoch\":\"%s\",\"replayed\":%zu}",
                      s->recovered ? "true" : "false", s->last.offset, s->last.epoch, s->replayed);
  if (status) gw_warn("conn=%" PRIu64 ": resume of %s failed (%s)", q->conn_id, s->channel, gw_strerror(status));
  if (!s->fresh) gw_replay_count_recovery("ws", !status && s->recovered);
  free(s);
  request_done(q);
}

static void on_read(void *ud, int status, const gw_replay_item_t *items, size_t n, const gw_stream_pos_t *top,
                    int recovered, int last);

static void read_from(stream_t *s, gw_conn_t *c, const gw_stream_pos_t *since, size_t max) {
  int rc = gw_node_replay_read(s->channel, since, max, on_read, s);
  if (rc < 0) stream_finish(s, c, rc);
}

static void on_read(void *ud, int status, const gw_replay_item_t *items, size_t n, const gw_stream_pos_t *top,
                    int recovered, int last) {
  stream_t *s = ud;
  gw_conn_t *c = gw_conn_find(s->req->conn_id);
  if (status || !c || c->close_code) {
    if (last) stream_finish(s, c, status ? status : 0);
    return;
  }
  const gw_settings_t *st = gw_settings();
  if (!recovered) {
    /* the position is lost: nothing is replayed (the client reloads its state); it goes on
     * from the stream's top */
    s->recovered = 0;
    s->last = *top;
  } else {
    for (size_t i = 0; i < n; i++) {
      gw_stream_pos_t pos = {items[i].offset, ""};
      memcpy(pos.epoch, top->epoch, sizeof pos.epoch);
      const gw_replay_rule_t *r = gw_replay_match(st->replay, st->n_replay, s->channel, items[i].ev, items[i].evlen);
      gw_event_t e = {items[i].ev, items[i].evlen, items[i].json, items[i].jlen, s->channel, &pos, r && r->ack};
      gw_resume_send_one(c, &e);
      s->last = pos;
      s->replayed++;
    }
    if (!n && last) { /* nothing after `since`: the client is at the top */
      s->last.offset = s->last.offset > top->offset ? top->offset : s->last.offset;
      memcpy(s->last.epoch, top->epoch, sizeof s->last.epoch);
    }
  }
  if (!last) return;
  /* live events held with a gap after the replay (published between the read and the
   * subscription reaching the broker): read the gap again */
  uint64_t first_held = gw_hold_first_offset(c, s->channel, s->last.epoch);
  if (s->recovered && first_held > s->last.offset + 1 && s->rereads < MAX_REREADS) {
    s->rereads++;
    gw_stream_pos_t since = s->last;
    read_from(s, c, &since, first_held - s->last.offset - 1);
    return;
  }
  stream_finish(s, c, 0);
}

void gw_resume_start(gw_conn_t *c, int has_id, uint64_t id, const gw_resume_stream_t *streams, size_t n) {
  request_t *q = calloc(1, sizeof *q);
  if (!q) return;
  q->conn_id = c->id;
  q->has_id = has_id;
  q->id = id;
  q->first = 1;
  q->pending = n + 1; /* + 1: released below, once every stream has started */
  gw_strbuf_appendf(&q->answer, "{\"streams\":{");
  const gw_settings_t *st = gw_settings();
  size_t max = st ? st->history.max_stream_len : 1000;
  for (size_t i = 0; i < n; i++) {
    const char *ch = streams[i].channel;
    if (!gw_room_is_member(c, ch)) {
      refuse_stream(q, ch, "not_member");
      q->pending--;
      continue;
    }
    if (!gw_node_replay_kept(ch)) {
      refuse_stream(q, ch, "not_kept");
      q->pending--;
      continue;
    }
    size_t clen = strlen(ch);
    stream_t *s = calloc(1, sizeof *s + clen + 1);
    int rc = s ? gw_hold_begin(c, ch, 1) : GW_ENOMEM;
    if (rc) {
      free(s);
      refuse_stream(q, ch, rc == GW_EEXIST ? "busy" : rc == GW_ELIMIT ? "too_many" : "unavailable");
      q->pending--;
      continue;
    }
    memcpy(s->channel, ch, clen + 1);
    s->req = q;
    s->recovered = 1;
    if (streams[i].has_pos) {
      s->last = streams[i].pos;
      read_from(s, c, &s->last, max);
    } else { /* where the stream is now: a read of nothing */
      s->fresh = 1;
      read_from(s, c, &s->last, 0);
    }
  }
  request_done(q);
}
