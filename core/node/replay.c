#include "replay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "log.h"
#include "metrics.h"
#include "node.h"
#include "settings.h"

#define PAGE 256 /* items per store read */

static gw_replay_stats_t S;

int gw_node_replay_kept(const char *channel) {
  const gw_settings_t *s = gw_settings();
  return s && channel && gw_node_history() && gw_replay_channel_kept(s->replay, s->n_replay, channel);
}

/* ---- paged reads ------------------------------------------------------------------------ */

typedef struct read_req {
  gw_replay_read_cb cb;
  void *ud;
  size_t left; /* items still wanted */
  gw_stream_pos_t since;
  char channel[];
} read_req_t;

static int read_page(read_req_t *q);

static void on_page(void *ud, int status, const gw_history_item_t *items, size_t n, const gw_stream_pos_t *top,
                    int recovered) {
  read_req_t *q = ud;
  if (status) {
    q->cb(q->ud, status, NULL, 0, NULL, 0, 1);
    free(q);
    return;
  }
  gw_replay_item_t *out = n ? malloc(n * sizeof *out) : NULL;
  size_t k = 0;
  if (n && !out) {
    q->cb(q->ud, GW_ENOMEM, NULL, 0, NULL, 0, 1);
    free(q);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    if (gw_replay_decode(items[i].data, items[i].len, items[i].offset, &out[k]) == 0) k++;
    else S.malformed++;
  }
  S.replayed += k;
  q->left = n < q->left ? q->left - n : 0;
  /* another page: the position still holds, the page was full and the top is not reached */
  int more = recovered && n == PAGE && q->left && items[n - 1].offset < top->offset;
  gw_stream_pos_t top_copy = *top;
  if (more) {
    q->since.offset = items[n - 1].offset;
    snprintf(q->since.epoch, sizeof q->since.epoch, "%s", top->epoch);
  }
  q->cb(q->ud, 0, out, k, &top_copy, recovered, !more);
  free(out);
  if (more && read_page(q) < 0) {
    q->cb(q->ud, GW_EIO, NULL, 0, NULL, 0, 1);
    free(q);
  } else if (!more) {
    free(q);
  }
}

static int read_page(read_req_t *q) {
  const gw_history_t *h = gw_node_history();
  if (!h) return GW_EINVAL;
  S.reads++;
  return gw_history_read_since(h, q->channel, &q->since, q->left < PAGE ? q->left : PAGE, on_page, q);
}

int gw_node_replay_read(const char *channel, const gw_stream_pos_t *since, size_t max, gw_replay_read_cb cb,
                        void *ud) {
  if (!channel || !since || !cb || !gw_node_history()) return GW_EINVAL;
  size_t clen = strnlen(channel, GW_HISTORY_CHANNEL_MAX + 1);
  if (clen == 0 || clen > GW_HISTORY_CHANNEL_MAX) return GW_EINVAL;
  read_req_t *q = malloc(sizeof *q + clen + 1);
  if (!q) return GW_ENOMEM;
  q->cb = cb;
  q->ud = ud;
  q->left = max;
  q->since = *since;
  memcpy(q->channel, channel, clen + 1);
  int rc = read_page(q);
  if (rc < 0) free(q);
  return rc;
}

void gw_replay_stats(gw_replay_stats_t *out) { *out = S; }
gw_replay_stats_t *gw_replay_stats_mut(void) { return &S; }

void gw_replay_count_recovery(const char *protocol, int recovered) {
  static gw_metric_t *m;
  if (!m)
    m = gw_metric_register(GW_METRIC_COUNTER, "aivo_replay_recoveries_total",
                           "Resumes by protocol (ws: a stream of a resume event; socketio: a CONNECT with a "
                           "session id) and outcome (recovered: no message missed).",
                           "protocol,recovered", NULL, 0);
  const char *v[2] = {protocol, recovered ? "true" : "false"};
  gw_series_add(gw_metric_series(m, v), 1);
}
