/* The metrics registry, kept in C so every series survives policy reloads, rendered in the
 * Prometheus text format at /metrics/prometheus and /metrics. A family has up to
 * GW_METRIC_MAX_LABELS label names; a series is one set of label values. Hot paths keep the
 * series pointer and add to it directly. */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include <stddef.h>

#include "strbuf.h"

#define GW_METRIC_MAX_LABELS 3

typedef enum { GW_METRIC_COUNTER, GW_METRIC_GAUGE, GW_METRIC_HISTOGRAM } gw_metric_type_t;

typedef struct gw_metric gw_metric_t;
typedef struct gw_series {
  double value;    /* counter or gauge */
  double *buckets; /* histogram: cumulative counts are computed when rendering */
  double sum;
  double count;
  char *labels[GW_METRIC_MAX_LABELS];
  struct gw_series *next;
  gw_metric_t *family;
} gw_series_t;

/* Registers a family, or returns the existing one of that name when the type, labels and
 * buckets agree (NULL otherwise: a name means one thing). labels: "a,b" or NULL.
 * buckets: upper bounds in increasing order (histograms only; +Inf is implied). */
gw_metric_t *gw_metric_register(gw_metric_type_t type, const char *name, const char *help,
                                const char *labels, const double *buckets, size_t nbuckets);
gw_metric_type_t gw_metric_type(const gw_metric_t *m);
size_t gw_metric_label_count(const gw_metric_t *m);

/* The series of these label values (as many as the family has label names), created on
 * first use. NULL only when out of memory. */
gw_series_t *gw_metric_series(gw_metric_t *m, const char *const *values);
/* One-label shorthand; also fine for label-less families (value ignored). */
gw_series_t *gw_metric_series1(gw_metric_t *m, const char *value);

static inline void gw_series_add(gw_series_t *s, double v) {
  if (s) s->value += v;
}
static inline void gw_series_set(gw_series_t *s, double v) {
  if (s) s->value = v;
}
void gw_series_observe(gw_series_t *s, double v);

/* Renders every family (plus process_* metrics) into out. */
int gw_metrics_render(gw_strbuf_t *out);
/* Frees everything (at exit, so leak checkers stay quiet). */
void gw_metrics_free(void);
/* Valid metric or label name ([a-zA-Z_:][a-zA-Z0-9_:]*). */
int gw_metric_name_ok(const char *name, int is_label);

#endif
