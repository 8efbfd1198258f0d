/* The busted test double tests/lua/helpers/fake_core.lua stands in for aivo.core: it must
 * offer every function the C side registers (gw_lua_api_open), and nothing under the core's
 * name that the core lacks, besides its documented test helpers. A function added to one
 * side and not the other fails here, before a plugin's specs pass against a double that no
 * longer matches the gateway. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <luajit-2.1/lauxlib.h>
#include <luajit-2.1/lualib.h>

#include "check.h"
#include "lua_api.h"

/* fake_core.lua's own helpers (its header comment): not part of aivo.core */
static const char *const HELPERS[] = {"reset",   "reset_store", "store_entries", "reset_buckets",
                                      "conn",    "outbox",      "tree",          "cleanup",
                                      "run_presence", NULL};

static int is_helper(const char *k) {
  for (const char *const *h = HELPERS; *h; h++)
    if (strcmp(*h, k) == 0) return 1;
  return 0;
}

int main(void) {
  const char *src = getenv("AIVO_SOURCE_DIR") ? getenv("AIVO_SOURCE_DIR") : AIVO_SOURCE_DIR;
  char path[4096];
  snprintf(path, sizeof path, "%s/tests/lua/helpers/fake_core.lua", src);
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  /* the real module table, as require("aivo.core") gets it */
  lua_pushcfunction(L, gw_lua_api_open);
  lua_call(L, 0, 1);
  int core = lua_gettop(L);
  if (!CHECK(luaL_dofile(L, path) == 0)) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    lua_close(L);
    return check_done();
  }
  int fake = lua_gettop(L);
  CHECK(lua_istable(L, fake));
  size_t n_core = 0;
  /* every C function has its double */
  lua_pushnil(L);
  while (lua_next(L, core)) {
    const char *k = lua_tostring(L, -2);
    n_core++;
    lua_getfield(L, fake, k);
    if (!lua_isfunction(L, -1)) {
      fprintf(stderr, "fake_core.lua has no %s, which aivo.core (C) offers\n", k);
      CHECK(0);
    }
    lua_pop(L, 2);
  }
  CHECK(n_core >= 20); /* the table was really read */
  /* every function of the double is the core's, or one of its helpers */
  lua_pushnil(L);
  while (lua_next(L, fake)) {
    if (lua_type(L, -2) == LUA_TSTRING && lua_isfunction(L, -1)) {
      const char *k = lua_tostring(L, -2);
      lua_getfield(L, core, k);
      if (lua_isnil(L, -1) && !is_helper(k)) {
        fprintf(stderr, "fake_core.lua offers %s, which aivo.core (C) does not\n", k);
        CHECK(0);
      }
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_close(L);
  return check_done();
}
