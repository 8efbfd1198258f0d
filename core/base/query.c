#include "query.h"

#include <string.h>

int gw_query_arg(const char *query, const char *key, char *out, size_t cap) {
  size_t kl = strlen(key);
  for (const char *p = query; p && *p;) {
    const char *amp = strchr(p, '&');
    size_t n = amp ? (size_t)(amp - p) : strlen(p);
    if (n > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
      size_t vl = n - kl - 1;
      if (vl >= cap) vl = cap - 1;
      memcpy(out, p + kl + 1, vl);
      out[vl] = 0;
      return 0;
    }
    p = amp ? amp + 1 : NULL;
  }
  return -1;
}
