#include "redis_script.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <openssl/sha.h>

#include "errors.h"

void gw_redis_script_init(gw_redis_script_t *s, const char *src) {
  unsigned char md[SHA_DIGEST_LENGTH];
  s->src = src;
  SHA1((const unsigned char *)src, strlen(src), md);
  for (int i = 0; i < SHA_DIGEST_LENGTH; i++) snprintf(s->sha + 2 * i, 3, "%02x", md[i]);
}

/* One call: the argument vector (argv[0] = EVALSHA/EVAL, argv[1] = sha/src, argv[2] =
 * nkeys, then the caller's) with copies of the arguments, kept for a possible EVAL retry. */
typedef struct call {
  gw_redis_conn_t *c;
  const gw_redis_script_t *s;
  gw_redis_reply_cb cb;
  void *ud;
  int argc;
  const char **argv;
  size_t *lens;
  char nkeys[12];
} call_t;

static void on_reply(void *ud, int status, const struct redisReply *r) {
  call_t *k = ud;
  if (status == 0 && r->type == REDIS_REPLY_ERROR && r->str && strncmp(r->str, "NOSCRIPT", 8) == 0 &&
      k->argv[0][4] == 'S' /* EVALSHA: try the body once */) {
    k->argv[0] = "EVAL";
    k->lens[0] = 4;
    k->argv[1] = k->s->src;
    k->lens[1] = strlen(k->s->src);
    int rc = gw_redis_conn_command(k->c, k->argc, k->argv, k->lens, on_reply, k);
    if (rc == 0) return;
    if (k->cb) k->cb(k->ud, rc, NULL);
    free(k);
    return;
  }
  if (k->cb) k->cb(k->ud, status, r);
  free(k);
}

int gw_redis_script_call(gw_redis_conn_t *c, const gw_redis_script_t *s, int nkeys, int argc,
                         const char *const *argv, const size_t *lens, gw_redis_reply_cb cb,
                         void *ud) {
  if (!c || !s || nkeys < 0 || argc < nkeys || (argc && (!argv || !lens))) return GW_EINVAL;
  size_t bytes = 0;
  for (int i = 0; i < argc; i++) bytes += lens[i];
  int n = argc + 3;
  call_t *k = malloc(sizeof *k + (size_t)n * (sizeof(char *) + sizeof(size_t)) + bytes);
  if (!k) return GW_ENOMEM;
  k->c = c;
  k->s = s;
  k->cb = cb;
  k->ud = ud;
  k->argc = n;
  k->argv = (const char **)(k + 1);
  k->lens = (size_t *)(k->argv + n);
  char *data = (char *)(k->lens + n);
  k->argv[0] = "EVALSHA";
  k->lens[0] = 7;
  k->argv[1] = s->sha;
  k->lens[1] = 40;
  k->lens[2] = (size_t)snprintf(k->nkeys, sizeof k->nkeys, "%d", nkeys);
  k->argv[2] = k->nkeys;
  for (int i = 0; i < argc; i++) {
    memcpy(data, argv[i], lens[i]);
    k->argv[3 + i] = data;
    k->lens[3 + i] = lens[i];
    data += lens[i];
  }
  int rc = gw_redis_conn_command(c, n, k->argv, k->lens, on_reply, k);
  if (rc) free(k);
  return rc;
}
