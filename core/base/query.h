/* The arguments of a URL query ("a=1&b=2"), as the admin API and the /ws upgrade read them. */
#ifndef GW_QUERY_H
#define GW_QUERY_H

#include <stddef.h>

/* The value of key in query into out (cut to cap - 1 bytes); 0 when present, -1 when not. */
int gw_query_arg(const char *query, const char *key, char *out, size_t cap);

#endif
