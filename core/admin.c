#include "admin.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <luajit-2.1/lauxlib.h>

#include "conn.h"
#include "gateway.h"
#include "json.h"
#include "log.h"
#include "lua_vm.h"
#include "room.h"

static char *g_token;

void gw_admin_set_token(const char *token) {
  free(g_token);
  g_token = token && *token ? strdup(token) : NULL;
}

static void out(gw_admin_response_t *res, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void out(gw_admin_response_t *res, int status, const char *fmt, ...) {
  res->status = status;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  char *p = realloc(res->body.p, (size_t)n + 1);
  if (!p) return;
  va_start(ap, fmt);
  vsnprintf(p, (size_t)n + 1, fmt, ap);
  va_end(ap);
  res->body.p = p;
  res->body.len = (size_t)n;
  res->body.cap = (size_t)n + 1;
}

static void error_out(gw_admin_response_t *res, int status, const char *code, const char *msg) {
  char m[GW_JSON_ESCAPED_MAX(300)];
  gw_json_escape(msg, strnlen(msg, 300), m, sizeof m);
  out(res, status, "{\"error\":{\"code\":\"%s\",\"message\":%s}}", code, m);
}

/* Constant time: the comparison must not tell how much of a guess was right. */
static int token_ok(const char *authorization) {
  if (!g_token) return 1;
  if (!authorization || strncmp(authorization, "Bearer ", 7) != 0) return 0;
  const char *given = authorization + 7;
  size_t a = strlen(given), b = strlen(g_token);
  unsigned char diff = (unsigned char)(a != b);
  for (size_t i = 0; i < b; i++) diff |= (unsigned char)(given[i < a ? i : 0] ^ g_token[i]);
  return diff == 0;
}

static void policy_status(gw_admin_response_t *res) {
  gw_strbuf_t b = {0};
  gw_gateway_policy_status(&b);
  res->status = 200;
  res->body = b;
}

static void reload(gw_admin_response_t *res) {
  int ok = gw_gateway_reload("admin API") == 0;
  gw_strbuf_t b = {0};
  gw_gateway_policy_status(&b);
  res->status = ok ? 200 : 422;
  res->body = b;
}

/* Reads the JSON body into the running policy's state (the only JSON decoder with Lua
 * values at hand); leaves the table on the stack. */
static int decode_body(lua_State *L, gw_lua_vm_t *vm, const gw_admin_request_t *req, gw_admin_response_t *res) {
  if (gw_lua_json_decode(vm, req->body ? req->body : "", req->body_len)) {
    char msg[300];
    snprintf(msg, sizeof msg, "the body must be a JSON object: %s", lua_tostring(L, -1));
    lua_pop(L, 1);
    error_out(res, 400, "bad_request", msg);
    return -1;
  }
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    error_out(res, 400, "bad_request", "the body must be a JSON object");
    return -1;
  }
  return 0;
}

static const char *field_string(lua_State *L, const char *name) {
  lua_getfield(L, -1, name);
  const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  lua_pop(L, 1); /* the string stays alive: the table holds it */
  return s;
}

static void publish(const gw_admin_request_t *req, gw_admin_response_t *res) {
  gw_lua_vm_t *vm = gw_gateway_policy()->vm;
  lua_State *L = vm->L;
  int top = lua_gettop(L);
  if (decode_body(L, vm, req, res)) return;
  const char *room = field_string(L, "room"), *user = field_string(L, "user");
  const char *event = field_string(L, "event");
  char target[GW_ROOM_NAME_MAX + 1];
  if (!event || !*event || strlen(event) > 200 || (!room == !user)) {
    error_out(res, 400, "bad_request", "give \"event\" (1..200 bytes) and one of \"room\" or \"user\"");
  } else if (snprintf(target, sizeof target, "%s%s", user ? "user:" : "", user ? user : room) >= (int)sizeof target) {
    error_out(res, 400, "bad_request", "room or user name too long");
  } else {
    lua_getfield(L, -1, "data");
    size_t jlen = 0;
    const char *json = lua_isnil(L, -1) ? NULL : gw_lua_json_encode(vm, -1, &jlen);
    if (!lua_isnil(L, -1) && !json) {
      error_out(res, 400, "bad_request", "\"data\" cannot be sent as JSON");
    } else {
      size_t n = gw_gateway_publish(target, event, strlen(event), json, jlen, 0);
      out(res, 200, "{\"delivered\":%zu}", n);
    }
  }
  lua_settop(L, top);
}

static void disconnect(const gw_admin_request_t *req, gw_admin_response_t *res) {
  gw_lua_vm_t *vm = gw_gateway_policy()->vm;
  lua_State *L = vm->L;
  int top = lua_gettop(L);
  if (decode_body(L, vm, req, res)) return;
  const char *user = field_string(L, "user");
  const char *reason = field_string(L, "reason");
  lua_getfield(L, -1, "conn");
  double conn_id = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : 0;
  lua_getfield(L, -2, "code");
  int code = lua_type(L, -1) == LUA_TNUMBER ? (int)lua_tonumber(L, -1) : 4000;
  if ((!user == !(conn_id > 0)) || (code != 1000 && (code < 3000 || code > 4999))) {
    error_out(res, 400, "bad_request", "give one of \"conn\" (an id) or \"user\"; \"code\" 1000 or 3000..4999");
  } else {
    size_t closed = 0;
    if (user) {
      char room[GW_ROOM_NAME_MAX + 1];
      snprintf(room, sizeof room, "user:%s", user);
      gw_room_t *r = gw_room_find(room);
      for (size_t i = 0; r && i < r->n; i++) {
        gw_conn_t *c = r->members[i].conn;
        if (!c->close_code) {
          gw_gateway_close(c, code, reason ? reason : "disconnected by an operator");
          closed++;
        }
      }
    } else {
      gw_conn_t *c = gw_conn_find((uint64_t)conn_id);
      if (c && !c->close_code) {
        gw_gateway_close(c, code, reason ? reason : "disconnected by an operator");
        closed = 1;
      }
    }
    out(res, 200, "{\"closed\":%zu}", closed);
  }
  lua_settop(L, top);
}

static void connections(gw_admin_response_t *res) {
  size_t ws = 0, sio = 0;
  for (gw_conn_t *c = gw_conn_first(); c; c = c->hh.next) {
    if (c->proto == GW_PROTO_SOCKETIO) sio++;
    else ws++;
  }
  out(res, 200, "{\"connections\":%zu,\"by_protocol\":{\"ws\":%zu,\"socketio\":%zu},\"rooms\":%zu}",
      ws + sio, ws, sio, gw_room_count());
}

void gw_admin_handle(const gw_admin_request_t *req, gw_admin_response_t *res) {
  memset(&res->body, 0, sizeof res->body);
  if (!token_ok(req->authorization)) {
    error_out(res, 401, "unauthorized", "this admin API needs \"Authorization: Bearer <token>\"");
    return;
  }
  const char *p = req->path, *m = req->method;
  int get = strcmp(m, "GET") == 0, post = strcmp(m, "POST") == 0;
  if (strcmp(p, "/admin/policy") == 0 && get) policy_status(res);
  else if (strcmp(p, "/admin/reload") == 0 && post) reload(res);
  else if (strcmp(p, "/admin/publish") == 0 && post) publish(req, res);
  else if (strcmp(p, "/admin/disconnect") == 0 && post) disconnect(req, res);
  else if (strcmp(p, "/admin/connections") == 0 && get) connections(res);
  else if (!strcmp(p, "/admin/policy") || !strcmp(p, "/admin/reload") || !strcmp(p, "/admin/publish") ||
           !strcmp(p, "/admin/disconnect") || !strcmp(p, "/admin/connections"))
    error_out(res, 405, "method_not_allowed", "wrong method for this endpoint");
  else
    error_out(res, 404, "not_found", "no such admin endpoint");
  gw_log(GW_LOG_INFO, 0, "admin: %s %s -> %d", m, p, res->status);
}
