/* A Lua script run on Redis by EVALSHA, falling back to EVAL when Redis answers NOSCRIPT
 * (after a restart or SCRIPT FLUSH), so a script's body crosses the network only when Redis
 * does not have it. */
#ifndef GW_REDIS_SCRIPT_H
#define GW_REDIS_SCRIPT_H

#include <stddef.h>

#include "redis_conn.h"

typedef struct gw_redis_script {
  const char *src;
  char sha[41]; /* SHA-1 of src, hex */
} gw_redis_script_t;

void gw_redis_script_init(gw_redis_script_t *s, const char *src);

/* Runs s with nkeys keys among the argc arguments (keys first). Same contract as
 * gw_redis_conn_command; cb sees the EVAL answer when EVALSHA got NOSCRIPT. */
int gw_redis_script_call(gw_redis_conn_t *c, const gw_redis_script_t *s, int nkeys, int argc,
                         const char *const *argv, const size_t *lens, gw_redis_reply_cb cb,
                         void *ud);

#endif
