#include "metrics.h"

#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

struct gw_metric {
  gw_metric_type_t type;
  char *name, *help;
  char *label_names[GW_METRIC_MAX_LABELS];
  size_t nlabels;
  double *bounds;
  size_t nbounds;
  gw_series_t *series;
  struct gw_metric *next;
};

static gw_metric_t *g_families, *g_last;
static double g_start_time;

int gw_metric_name_ok(const char *name, int is_label) {
  if (!name || !*name) return 0;
  for (const char *p = name; *p; p++) {
    int ok = isalpha((unsigned char)*p) || *p == '_' || (!is_label && *p == ':') ||
             (p > name && isdigit((unsigned char)*p));
    if (!ok) return 0;
  }
  return 1;
}

static gw_metric_t *find(const char *name) {
  for (gw_metric_t *m = g_families; m; m = m->next)
    if (strcmp(m->name, name) == 0) return m;
  return NULL;
}

static size_t split_labels(const char *labels, char **out) {
  size_t n = 0;
  if (!labels || !*labels) return 0;
  const char *p = labels;
  while (*p && n < GW_METRIC_MAX_LABELS) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    out[n++] = strndup(p, len);
    if (!e) break;
    p = e + 1;
  }
  return n;
}

gw_metric_t *gw_metric_register(gw_metric_type_t type, const char *name, const char *help,
                                const char *labels, const double *buckets, size_t nbuckets) {
  if (!g_start_time) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    g_start_time = (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
  }
  if (!gw_metric_name_ok(name, 0)) return NULL;
  char *names[GW_METRIC_MAX_LABELS] = {0};
  size_t n = split_labels(labels, names);
  int bad = 0;
  for (size_t i = 0; i < n; i++)
    if (!names[i] || !gw_metric_name_ok(names[i], 1) || strncmp(names[i], "__", 2) == 0) bad = 1;
  for (size_t i = 1; i < nbuckets; i++)
    if (!(buckets[i] > buckets[i - 1])) bad = 1;
  gw_metric_t *m = bad ? NULL : find(name);
  if (m) { /* re-registration (e.g. by a reloaded policy) must describe the same thing */
    int same = m->type == type && m->nlabels == n && (type != GW_METRIC_HISTOGRAM || m->nbounds == nbuckets);
    for (size_t i = 0; same && i < n; i++) same = strcmp(m->label_names[i], names[i]) == 0;
    for (size_t i = 0; same && type == GW_METRIC_HISTOGRAM && i < nbuckets; i++)
      same = m->bounds[i] == buckets[i];
    for (size_t i = 0; i < n; i++) free(names[i]);
    return same ? m : NULL;
  }
  if (bad || !(m = calloc(1, sizeof *m))) {
    for (size_t i = 0; i < n; i++) free(names[i]);
    return NULL;
  }
  m->type = type;
  m->name = strdup(name);
  m->help = strdup(help ? help : "");
  m->nlabels = n;
  memcpy(m->label_names, names, sizeof names);
  if (type == GW_METRIC_HISTOGRAM && nbuckets) {
    m->bounds = malloc(nbuckets * sizeof *m->bounds);
    if (m->bounds) memcpy(m->bounds, buckets, nbuckets * sizeof *m->bounds);
    m->nbounds = m->bounds ? nbuckets : 0;
  }
  if (g_last) g_last->next = m;
  else g_families = m;
  g_last = m;
  return m;
}

gw_metric_type_t gw_metric_type(const gw_metric_t *m) { return m->type; }
size_t gw_metric_label_count(const gw_metric_t *m) { return m->nlabels; }

gw_series_t *gw_metric_series(gw_metric_t *m, const char *const *values) {
  if (!m) return NULL;
  for (gw_series_t *s = m->series; s; s = s->next) {
    size_t i = 0;
    while (i < m->nlabels && strcmp(s->labels[i], values[i]) == 0) i++;
    if (i == m->nlabels) return s;
  }
  gw_series_t *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->family = m;
  for (size_t i = 0; i < m->nlabels; i++) s->labels[i] = strdup(values[i] ? values[i] : "");
  if (m->type == GW_METRIC_HISTOGRAM) s->buckets = calloc(m->nbounds + 1, sizeof *s->buckets);
  /* append: series render in creation order */
  gw_series_t **tail = &m->series;
  while (*tail) tail = &(*tail)->next;
  *tail = s;
  return s;
}

gw_series_t *gw_metric_series1(gw_metric_t *m, const char *value) {
  const char *v[1] = {value};
  return gw_metric_series(m, v);
}

void gw_series_observe(gw_series_t *s, double v) {
  if (!s || !s->buckets) return;
  gw_metric_t *m = s->family;
  size_t i = 0;
  while (i < m->nbounds && v > m->bounds[i]) i++;
  s->buckets[i] += 1; /* per-bucket count; made cumulative when rendered */
  s->sum += v;
  s->count += 1;
}

/* ---- rendering ----------------------------------------------------------------------- */

#define add gw_strbuf_appendf /* the renderer only appends */

static void add_escaped(gw_strbuf_t *b, const char *s, int help) {
  for (; *s; s++) {
    if (*s == '\\') add(b, "\\\\");
    else if (*s == '\n') add(b, "\\n");
    else if (*s == '"' && !help) add(b, "\\\"");
    else add(b, "%c", *s);
  }
}

static void add_number(gw_strbuf_t *b, double v) {
  if (isnan(v)) add(b, "NaN");
  else if (isinf(v)) add(b, v > 0 ? "+Inf" : "-Inf");
  else if (v == floor(v) && fabs(v) < 1e15) add(b, "%.0f", v);
  else add(b, "%.17g", v);
}

/* {a="x",b="y"[,le="..."]} */
static void add_labels(gw_strbuf_t *b, const gw_metric_t *m, const gw_series_t *s, const char *le) {
  if (!m->nlabels && !le) return;
  add(b, "{");
  for (size_t i = 0; i < m->nlabels; i++) {
    add(b, "%s%s=\"", i ? "," : "", m->label_names[i]);
    add_escaped(b, s->labels[i], 0);
    add(b, "\"");
  }
  if (le) add(b, "%sle=\"%s\"", m->nlabels ? "," : "", le);
  add(b, "}");
}

static void render_family(gw_strbuf_t *b, const gw_metric_t *m) {
  static const char *const types[] = {"counter", "gauge", "histogram"};
  add(b, "# HELP %s ", m->name);
  add_escaped(b, m->help, 1);
  add(b, "\n# TYPE %s %s\n", m->name, types[m->type]);
  for (const gw_series_t *s = m->series; s; s = s->next) {
    if (m->type != GW_METRIC_HISTOGRAM) {
      add(b, "%s", m->name);
      add_labels(b, m, s, NULL);
      add(b, " ");
      add_number(b, s->value);
      add(b, "\n");
      continue;
    }
    double cum = 0;
    for (size_t i = 0; i <= m->nbounds; i++) {
      cum += s->buckets ? s->buckets[i] : 0;
      char le[40];
      if (i < m->nbounds) snprintf(le, sizeof le, "%g", m->bounds[i]);
      else snprintf(le, sizeof le, "+Inf");
      add(b, "%s_bucket", m->name);
      add_labels(b, m, s, le);
      add(b, " ");
      add_number(b, cum);
      add(b, "\n");
    }
    add(b, "%s_sum", m->name);
    add_labels(b, m, s, NULL);
    add(b, " ");
    add_number(b, s->sum);
    add(b, "\n%s_count", m->name);
    add_labels(b, m, s, NULL);
    add(b, " ");
    add_number(b, s->count);
    add(b, "\n");
  }
}

static void render_process(gw_strbuf_t *b) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
               (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
  long rss_pages = 0, vm_pages = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f) {
    if (fscanf(f, "%ld %ld", &vm_pages, &rss_pages) != 2) vm_pages = rss_pages = 0;
    fclose(f);
  }
  long page = sysconf(_SC_PAGESIZE);
  int fds = 0;
  DIR *d = opendir("/proc/self/fd");
  for (struct dirent *de; d && (de = readdir(d));)
    if (de->d_name[0] != '.') fds++;
  if (d) {
    closedir(d);
    fds--; /* the directory stream's own descriptor */
  }
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  add(b, "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
         "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total ");
  add_number(b, cpu);
  add(b, "\n# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
         "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %ld\n",
      rss_pages * page);
  add(b, "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
         "# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes %ld\n",
      vm_pages * page);
  add(b, "# HELP process_open_fds Number of open file descriptors.\n"
         "# TYPE process_open_fds gauge\nprocess_open_fds %d\n", fds);
  add(b, "# HELP process_max_fds Maximum number of open file descriptors.\n"
         "# TYPE process_max_fds gauge\nprocess_max_fds ");
  add_number(b, rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur);
  add(b, "\n# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n"
         "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds ");
  add_number(b, g_start_time);
  add(b, "\n");
}

int gw_metrics_render(gw_strbuf_t *out) {
  out->len = 0;
  for (const gw_metric_t *m = g_families; m; m = m->next) render_family(out, m);
  render_process(out);
  return out->p ? 0 : -1;
}

void gw_metrics_free(void) {
  gw_metric_t *m = g_families;
  while (m) {
    gw_metric_t *next = m->next;
    gw_series_t *s = m->series;
    while (s) {
      gw_series_t *sn = s->next;
      for (size_t i = 0; i < m->nlabels; i++) free(s->labels[i]);
      free(s->buckets);
      free(s);
      s = sn;
    }
    for (size_t i = 0; i < m->nlabels; i++) free(m->label_names[i]);
    free(m->bounds);
    free(m->name);
    free(m->help);
    free(m);
    m = next;
  }
  g_families = g_last = NULL;
}
