/* The plugin store (plugin_store.c): scopes, isolation between plugins, every bound, ttl,
 * incr, keys and clear. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "errors.h"
#include "plugin_store.h"

static const gw_plugin_store_limits_t BIG = {1 << 20, 1024, 100};

static int set(gw_plugin_store_t *s, const gw_plugin_store_limits_t *lim, const char *plugin,
               gw_store_scope_t scope, const char *id, const char *key, const char *v, gw_store_refusal_t *why) {
  return gw_plugin_store_set(s, lim, plugin, scope, id, key, v, strlen(v), 0, 1000, why);
}

static const char *get(gw_plugin_store_t *s, const char *plugin, gw_store_scope_t scope, const char *id,
                       const char *key, double now) {
  static char buf[2048];
  size_t len;
  const char *v = gw_plugin_store_get(s, plugin, scope, id, key, &len, now);
  if (!v) return NULL;
  memcpy(buf, v, len);
  buf[len] = 0;
  return buf;
}

static void count_key(const char *key, void *ud) {
  (void)key;
  (*(int *)ud)++;
}

static void test_scopes_and_isolation(void) {
  gw_plugin_store_t *s = gw_plugin_store_new();
  gw_store_refusal_t why;
  CHECK_EQ_INT(set(s, &BIG, "a", GW_STORE_PLUGIN, NULL, "k", "1", &why), 0);
  CHECK_EQ_INT(set(s, &BIG, "a", GW_STORE_ROOM, "lobby", "k", "2", &why), 0);
  CHECK_EQ_INT(set(s, &BIG, "a", GW_STORE_USER, "lobby", "k", "3", &why), 0);
  CHECK_EQ_INT(set(s, &BIG, "b", GW_STORE_PLUGIN, NULL, "k", "4", &why), 0);
  /* one name in four places: four entries */
  CHECK_STR(get(s, "a", GW_STORE_PLUGIN, NULL, "k", 1000), "1");
  CHECK_STR(get(s, "a", GW_STORE_ROOM, "lobby", "k", 1000), "2");
  CHECK_STR(get(s, "a", GW_STORE_USER, "lobby", "k", 1000), "3");
  CHECK_STR(get(s, "b", GW_STORE_PLUGIN, NULL, "k", 1000), "4");
  CHECK(get(s, "b", GW_STORE_ROOM, "lobby", "k", 1000) == NULL);
  /* names that only concatenate alike stay apart */
  CHECK_EQ_INT(set(s, &BIG, "ab", GW_STORE_ROOM, "c", "d", "x", &why), 0);
  CHECK(get(s, "a", GW_STORE_ROOM, "bc", "d", 1000) == NULL);
  /* clear empties one scope only */
  CHECK_EQ_INT(set(s, &BIG, "a", GW_STORE_ROOM, "lobby", "k2", "5", &why), 0);
  int n = 0;
  CHECK_EQ_INT(gw_plugin_store_keys(s, "a", GW_STORE_ROOM, "lobby", 1000, count_key, &n), 2);
  CHECK_EQ_INT(n, 2);
  CHECK_EQ_INT(gw_plugin_store_clear(s, "a", GW_STORE_ROOM, "lobby"), 2);
  CHECK(get(s, "a", GW_STORE_ROOM, "lobby", "k", 1000) == NULL);
  CHECK_STR(get(s, "a", GW_STORE_USER, "lobby", "k", 1000), "3");
  CHECK_EQ_INT(gw_plugin_store_delete(s, "a", GW_STORE_USER, "lobby", "k"), 0);
  CHECK_EQ_INT(gw_plugin_store_delete(s, "a", GW_STORE_USER, "lobby", "k"), GW_ENOENT);
  /* bad names are refused, not stored */
  CHECK_EQ_INT(set(s, &BIG, "", GW_STORE_PLUGIN, NULL, "k", "1", &why), GW_EINVAL);
  CHECK_EQ_INT(set(s, &BIG, "a", GW_STORE_ROOM, "", "k", "1", &why), GW_EINVAL);
  CHECK_EQ_INT(set(s, &BIG, "a", GW_STORE_ROOM, NULL, "k", "1", &why), GW_EINVAL);
  char long_key[GW_STORE_MAX_NAME + 2];
  memset(long_key, 'k', sizeof long_key - 1);
  long_key[sizeof long_key - 1] = 0;
  CHECK_EQ_INT(set(s, &BIG, "a", GW_STORE_PLUGIN, NULL, long_key, "1", &why), GW_EINVAL);
  gw_plugin_store_free(s);
}

static void test_bounds(void) {
  gw_plugin_store_t *s = gw_plugin_store_new();
  gw_store_refusal_t why;
  gw_plugin_store_limits_t lim = {1 << 20, 8, 2};
  CHECK_EQ_INT(set(s, &lim, "a", GW_STORE_PLUGIN, NULL, "v", "123456789", &why), GW_ELIMIT);
  CHECK_EQ_INT(why, GW_STORE_TOO_LARGE);
  CHECK_STR(gw_plugin_store_refusal_name(why), "too_large");
  CHECK_EQ_INT(set(s, &lim, "a", GW_STORE_PLUGIN, NULL, "k1", "1", &why), 0);
  CHECK_EQ_INT(set(s, &lim, "a", GW_STORE_ROOM, "r", "k2", "2", &why), 0);
  CHECK_EQ_INT(set(s, &lim, "a", GW_STORE_USER, "u", "k3", "3", &why), GW_ELIMIT);
  CHECK_EQ_INT(why, GW_STORE_TOO_MANY_KEYS);
  CHECK_EQ_INT(set(s, &lim, "a", GW_STORE_PLUGIN, NULL, "k1", "11", &why), 0); /* replacing is fine */
  CHECK_EQ_INT(set(s, &lim, "b", GW_STORE_PLUGIN, NULL, "k1", "1", &why), 0);  /* per plugin */
  size_t total, keys, bytes;
  gw_plugin_store_usage(s, "a", &total, &keys, &bytes);
  CHECK_EQ_INT(keys, 2);
  /* max_bytes: entries cost key + value + overhead; a refused write changes nothing */
  gw_plugin_store_limits_t tight = {total + 70, 1024, 100};
  CHECK_EQ_INT(set(s, &tight, "c", GW_STORE_PLUGIN, NULL, "big", "0123456789", &why), GW_ELIMIT);
  CHECK_EQ_INT(why, GW_STORE_FULL);
  size_t total2;
  gw_plugin_store_usage(s, NULL, &total2, NULL, NULL);
  CHECK_EQ_INT(total2, total);
  CHECK(get(s, "c", GW_STORE_PLUGIN, NULL, "big", 1000) == NULL);
  /* deleting gives the bytes back */
  CHECK_EQ_INT(gw_plugin_store_clear(s, "a", GW_STORE_ROOM, "r"), 1);
  CHECK_EQ_INT(set(s, &tight, "c", GW_STORE_PLUGIN, NULL, "big", "0123456789", &why), 0);
  gw_plugin_store_free(s);
}

static void test_ttl_and_incr(void) {
  gw_plugin_store_t *s = gw_plugin_store_new();
  gw_store_refusal_t why;
  CHECK_EQ_INT(gw_plugin_store_set(s, &BIG, "a", GW_STORE_ROOM, "r", "t", "1", 1, 2000, 1000, &why), 0);
  CHECK_STR(get(s, "a", GW_STORE_ROOM, "r", "t", 1999), "1");
  CHECK(get(s, "a", GW_STORE_ROOM, "r", "t", 2000) == NULL);
  size_t keys;
  gw_plugin_store_usage(s, "a", NULL, &keys, NULL);
  CHECK_EQ_INT(keys, 0); /* an expired entry read is freed */
  /* an expired entry does not hold a key slot */
  gw_plugin_store_limits_t one = {1 << 20, 64, 1};
  CHECK_EQ_INT(gw_plugin_store_set(s, &one, "b", GW_STORE_PLUGIN, NULL, "x", "1", 1, 1500, 1000, &why), 0);
  CHECK_EQ_INT(gw_plugin_store_set(s, &one, "b", GW_STORE_PLUGIN, NULL, "y", "1", 1, 0, 1600, &why), 0);

  double out = 0;
  CHECK_EQ_INT(gw_plugin_store_incr(s, &BIG, "a", GW_STORE_USER, "u", "n", 1, 0, 1000, &out, &why), 0);
  CHECK(out == 1);
  CHECK_EQ_INT(gw_plugin_store_incr(s, &BIG, "a", GW_STORE_USER, "u", "n", 2.5, 0, 1000, &out, &why), 0);
  CHECK(out == 3.5);
  CHECK_STR(get(s, "a", GW_STORE_USER, "u", "n", 1000), "3.5");
  CHECK_EQ_INT(gw_plugin_store_incr(s, &BIG, "a", GW_STORE_USER, "u", "n", -3.5, 0, 1000, &out, &why), 0);
  CHECK_STR(get(s, "a", GW_STORE_USER, "u", "n", 1000), "0");
  CHECK_EQ_INT(set(s, &BIG, "a", GW_STORE_USER, "u", "s", "\"text\"", &why), 0);
  CHECK_EQ_INT(gw_plugin_store_incr(s, &BIG, "a", GW_STORE_USER, "u", "s", 1, 0, 1000, &out, &why), GW_ELIMIT);
  CHECK_EQ_INT(why, GW_STORE_NOT_A_NUMBER);
  gw_plugin_store_free(s);
}

int main(void) {
  test_scopes_and_isolation();
  test_bounds();
  test_ttl_and_incr();
  return check_done();
}
