/* gw.presence(room, fn[, limit]) (lua_presence.h): who is in a room on every gateway. The
 * answer may need a Redis round trip, so fn runs later, from the loop, never inside the
 * call; a generation freed meanwhile (a reload) drops the answer. */
#include "lua_presence.h"

#include <stdlib.h>
#include <string.h>

#include <luajit-2.1/lauxlib.h>

#include "errors.h"
#include "log.h"
#include "loop.h"
#include "lua_vm.h"
#include "node.h"
#include "settings.h"

#define LIMIT_DEFAULT 100
#define LIMIT_MAX 1000
#define PENDING_MAX 10000 /* calls waiting at once, all generations: a loop cannot pile up */

typedef struct entry {
  uint64_t node, conn;
  char *user;
} entry_t;

typedef struct call {
  struct call *next;
  lua_State *L; /* NULL: its generation was freed */
  int fn_ref;
  int answered, status, more;
  size_t n, users;
  entry_t *e;
} call_t;

static call_t *g_calls;
static size_t g_pending;
static ev_timer g_deliver;
static int g_timer_init;

static void call_free(call_t *c) {
  for (size_t i = 0; i < c->n; i++) free(c->e[i].user);
  free(c->e);
  free(c);
  g_pending--;
}

static void unlink_call(call_t *c) {
  for (call_t **pp = &g_calls; *pp; pp = &(*pp)->next)
    if (*pp == c) {
      *pp = c->next;
      return;
    }
}

/* {connections, users, members = {{node, conn, user}}, more} */
static void push_result(lua_State *L, const call_t *c) {
  lua_createtable(L, 0, 4);
  lua_createtable(L, (int)c->n, 0);
  for (size_t i = 0; i < c->n; i++) {
    lua_createtable(L, 0, 3);
    char hex[17];
    static const char d[] = "0123456789abcdef";
    for (int k = 0; k < 16; k++) hex[k] = d[(c->e[i].node >> (60 - 4 * k)) & 15];
    hex[16] = 0;
    lua_pushstring(L, hex);
    lua_setfield(L, -2, "node");
    lua_pushnumber(L, (lua_Number)c->e[i].conn);
    lua_setfield(L, -2, "conn");
    if (c->e[i].user) {
      lua_pushstring(L, c->e[i].user);
      lua_setfield(L, -2, "user");
    }
    lua_rawseti(L, -2, (int)i + 1);
  }
  lua_setfield(L, -2, "members");
  lua_pushnumber(L, (lua_Number)c->n);
  lua_setfield(L, -2, "connections");
  lua_pushnumber(L, (lua_Number)c->users);
  lua_setfield(L, -2, "users");
  lua_pushboolean(L, c->more);
  lua_setfield(L, -2, "more");
}

static void run_callback(call_t *c) {
  lua_State *L = c->L;
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->fn_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, c->fn_ref);
  if (c->status) {
    lua_pushnil(L);
    lua_pushstring(L, c->status == GW_EUNAVAIL ? "unavailable" : gw_strerror(c->status));
  } else {
    push_result(L, c);
    lua_pushnil(L);
  }
  const gw_settings_t *s = gw_settings();
  gw_lua_err_t e = gw_lua_vm_call(gw_lua_vm_of(L), 2, 0, s ? s->instruction_budget : 10000000);
  if (e != GW_LUA_ERR_NONE)
    gw_log(GW_LOG_ERROR, 0, "gw.presence callback failed: %s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
  lua_settop(L, top);
}

/* Once per loop pass with answers: every answered call, in the order they were made. */
static void on_deliver(struct ev_loop *loop, ev_timer *w, int revents) {
  (void)loop, (void)w, (void)revents;
  call_t *c = g_calls;
  while (c) {
    call_t *next = c->next;
    if (c->answered) {
      unlink_call(c);
      if (c->L) run_callback(c);
      call_free(c);
    }
    c = next;
  }
}

static void wake(void) {
  gw_loop_t *loop = gw_loop_main();
  if (!loop) return;
  if (!g_timer_init) {
    ev_timer_init(&g_deliver, on_deliver, 0, 0);
    g_timer_init = 1;
  }
  if (!ev_is_active(&g_deliver)) {
    ev_timer_set(&g_deliver, 0, 0);
    ev_timer_start(loop, &g_deliver);
  }
}

static void on_answer(void *ud, int status, const gw_presence_entry_t *e, size_t n, int more) {
  call_t *c = ud;
  c->answered = 1;
  c->status = status;
  c->more = more;
  const char **u = !status && n ? malloc(n * sizeof *u) : NULL;
  if (u && (c->e = calloc(n, sizeof *c->e))) {
    for (size_t i = 0; i < n; i++) {
      c->e[i] = (entry_t){e[i].node, e[i].client, e[i].user ? strdup(e[i].user) : NULL};
      c->n = i + 1;
      u[i] = e[i].user;
    }
    c->users = gw_node_count_distinct(u, n);
  } else if (!status && n) {
    c->status = GW_ENOMEM;
  }
  free(u);
  if (!c->L) { /* its generation is gone: nobody to tell */
    unlink_call(c);
    call_free(c);
    return;
  }
  wake();
}

/* core.presence(room, fn, limit): true, or nil and an error (no callback then). */
static int l_presence(lua_State *L) {
  const char *room = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_Integer limit = luaL_optinteger(L, 3, LIMIT_DEFAULT);
  if (limit < 1 || limit > LIMIT_MAX) return luaL_argerror(L, 3, "limit must be 1..1000");
  if (g_pending >= PENDING_MAX) {
    lua_pushnil(L);
    lua_pushstring(L, "busy");
    return 2;
  }
  call_t *c = calloc(1, sizeof *c);
  if (!c) return luaL_error(L, "out of memory");
  lua_pushvalue(L, 2);
  c->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  c->L = L;
  g_pending++;
  call_t **tail = &g_calls; /* appended: callbacks run in the order the calls were made */
  while (*tail) tail = &(*tail)->next;
  *tail = c;
  int rc = gw_node_presence_list(room, (size_t)limit, on_answer, c);
  if (rc < 0) {
    unlink_call(c);
    luaL_unref(L, LUA_REGISTRYINDEX, c->fn_ref);
    call_free(c);
    lua_pushnil(L);
    lua_pushstring(L, rc == GW_EUNAVAIL ? "unavailable" : rc == GW_EINVAL ? "bad_room" : gw_strerror(rc));
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

void gw_lua_presence_register(lua_State *L) {
  lua_pushcfunction(L, l_presence);
  lua_setfield(L, -2, "presence");
}

void gw_lua_presence_forget(lua_State *L) {
  call_t *c = g_calls;
  while (c) {
    call_t *next = c->next;
    if (c->L == L) {
      c->L = NULL; /* the VM goes with its references */
      if (c->answered) {
        unlink_call(c);
        call_free(c);
      }
    }
    c = next;
  }
}
