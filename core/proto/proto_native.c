#include "proto_native.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <luajit-2.1/lauxlib.h>

#include "ack_track.h"
#include "auth_session.h"
#include "json.h"
#include "log.h"
#include "pipeline.h"
#include "policy.h"
#include "resume.h"
#include "room.h"
#include "stats.h"

#define MAX_ACK_ID 9007199254740991.0 /* 2^53 - 1: every id a JS client can send */

/* ---- encoding ------------------------------------------------------------------------ */

static gw_msgbuf_t *build(const char *const *parts, const size_t *lens, size_t n) {
  size_t total = 0;
  for (size_t i = 0; i < n; i++) total += lens[i];
  gw_msgbuf_t *b = gw_msgbuf_new(total, 0);
  if (!b) return NULL;
  unsigned char *p = gw_msgbuf_payload(b);
  for (size_t i = 0; i < n; i++) {
    memcpy(p, parts[i], lens[i]);
    p += lens[i];
  }
  return b;
}

gw_msgbuf_t *gw_native_event(const char *ev, size_t evlen, const char *json, size_t jlen) {
  char esc[GW_JSON_ESCAPED_MAX(200)];
  size_t elen = gw_json_escape(ev, evlen, esc, sizeof esc);
  if (json) {
    const char *parts[] = {"{\"event\":", esc, ",\"data\":", json, "}"};
    size_t lens[] = {9, elen, 8, jlen, 1};
    return build(parts, lens, 5);
  }
  const char *parts[] = {"{\"event\":", esc, "}"};
  size_t lens[] = {9, elen, 1};
  return build(parts, lens, 3);
}

gw_msgbuf_t *gw_native_event_at(const gw_event_t *e) {
  if (!e->pos || !e->channel) return gw_native_event(e->ev, e->evlen, e->json, e->jlen);
  char esc[GW_JSON_ESCAPED_MAX(200)], chan[GW_JSON_ESCAPED_MAX(GW_HISTORY_CHANNEL_MAX)];
  char tail[64 + GW_HISTORY_EPOCH_MAX];
  size_t elen = gw_json_escape(e->ev, e->evlen, esc, sizeof esc);
  size_t clen = gw_json_escape(e->channel, strnlen(e->channel, GW_HISTORY_CHANNEL_MAX), chan, sizeof chan);
  /* epochs are hex digits (both stores): no escaping needed */
  int tl = snprintf(tail, sizeof tail, ",\"offset\":%llu,\"epoch\":\"%s\"%s}", (unsigned long long)e->pos->offset,
                    e->pos->epoch, e->ack ? ",\"ackRequired\":true" : "");
  const char *parts[] = {"{\"event\":", esc, ",\"data\":", e->json ? e->json : "null", ",\"channel\":", chan, tail};
  size_t lens[] = {9, elen, 8, e->json ? e->jlen : 4, 11, clen, (size_t)tl};
  return build(parts, lens, 7);
}

/* `{"ack":ID` into head (ACK_HEAD_MAX bytes); ids are at most MAX_ACK_ID (check_envelope) */
#define ACK_HEAD_MAX (7 + GW_JSON_INT_MAX)
static size_t ack_head(char *head, uint64_t id) {
  memcpy(head, "{\"ack\":", 7);
  return 7 + gw_json_int(head + 7, (long long)id);
}

gw_msgbuf_t *gw_native_ack(uint64_t id, const char *json, size_t jlen) {
  char head[ACK_HEAD_MAX];
  size_t hlen = ack_head(head, id);
  if (json) {
    const char *parts[] = {head, ",\"data\":", json, "}"};
    size_t lens[] = {hlen, 8, jlen, 1};
    return build(parts, lens, 4);
  }
  const char *parts[] = {head, "}"};
  size_t lens[] = {hlen, 1};
  return build(parts, lens, 2);
}

/* strnlen that does not cut a UTF-8 sequence in two. */
static size_t utf8_prefix(const char *s, size_t max) {
  size_t n = strnlen(s, max);
  while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
  return n;
}

/* {"code":"...","message":"..."} into out; returns its length. */
static size_t error_object(const char *code, const char *message, char *out, size_t cap) {
  char c[GW_JSON_ESCAPED_MAX(64)], m[GW_JSON_ESCAPED_MAX(300)];
  gw_json_escape(code, utf8_prefix(code, 64), c, sizeof c);
  gw_json_escape(message, utf8_prefix(message, 300), m, sizeof m);
  int n = snprintf(out, cap, "{\"code\":%s,\"message\":%s}", c, m);
  return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

gw_msgbuf_t *gw_native_ack_error(uint64_t id, const char *code, const char *message) {
  char err[2400];
  size_t elen = error_object(code, message, err, sizeof err);
  return gw_native_ack_error_json(id, err, elen);
}

gw_msgbuf_t *gw_native_ack_error_json(uint64_t id, const char *err, size_t elen) {
  char head[ACK_HEAD_MAX];
  size_t hlen = ack_head(head, id);
  const char *parts[] = {head, ",\"error\":", err, "}"};
  size_t lens[] = {hlen, 9, elen, 1};
  return build(parts, lens, 4);
}

gw_msgbuf_t *gw_native_error_event(const char *code, const char *message) {
  char err[2400];
  size_t elen = error_object(code, message, err, sizeof err);
  return gw_native_event("error", 5, err, elen);
}

/* ---- the inbound path ---------------------------------------------------------------- */

static void send_buf(gw_conn_t *c, gw_msgbuf_t *b) {
  if (!b) return;
  gw_conn_send(c, b);
  gw_msgbuf_unref(b);
}

void gw_native_send_ack(gw_conn_t *c, uint64_t id, const char *json, size_t jlen) {
  send_buf(c, gw_native_ack(id, json, jlen));
}

void gw_native_refuse(gw_conn_t *c, int has_id, uint64_t id, const char *code, const char *msg) {
  if (strcmp(code, "bad_request") == 0) {
    /* the client's mistake, told to the client: at debug, so a client cannot fill the log */
    gw_stats_error("bad_request");
    gw_log(GW_LOG_DEBUG, c->id, "bad_request: %s", msg);
  }
  send_buf(c, has_id ? gw_native_ack_error(id, code, msg) : gw_native_error_event(code, msg));
}

/* Reads the envelope of the decoded value at idx. Returns NULL when it is good, else the
 * reason; *has_id tells whether an ack id could be read (so the error can be an ack). */
static const char *check_envelope(lua_State *L, int idx, int *has_id, uint64_t *id) {
  *has_id = 0;
  if (!lua_istable(L, idx)) return "a message must be a JSON object";
  lua_getfield(L, idx, "id");
  int t = lua_type(L, -1);
  const char *bad_id = NULL;
  if (t == LUA_TNUMBER) {
    double d = lua_tonumber(L, -1);
    if (d >= 0 && d <= MAX_ACK_ID && floor(d) == d) {
      *has_id = 1;
      *id = (uint64_t)d;
    } else {
      bad_id = "\"id\" must be a non-negative integer";
    }
  } else if (t == LUA_TLIGHTUSERDATA) {
    /* JSON null: the sender meant to ask for an ack (or sent an unset variable) and would
     * wait for one forever; answered, not silently run without an ack (docs/protocol.md) */
    bad_id = "\"id\" must be a non-negative integer; leave it out for no ack (null is not allowed)";
  } else if (t != LUA_TNIL) { /* absent: no ack */
    bad_id = "\"id\" must be a non-negative integer";
  }
  lua_pop(L, 1);
  if (bad_id) return bad_id;
  lua_getfield(L, idx, "event");
  size_t evlen = 0;
  int ok = lua_type(L, -1) == LUA_TSTRING && (lua_tolstring(L, -1, &evlen), evlen > 0 && evlen <= 200);
  lua_pop(L, 1);
  if (!ok) return "\"event\" must be a string of 1..200 bytes";
  return NULL;
}

/* The msg on top of the stack is the event `name` (one the gateway handles itself). */
static int is_event(lua_State *L, const char *name) {
  lua_getfield(L, -1, "event");
  int is = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), name) == 0;
  lua_pop(L, 1);
  return is;
}

/* auth:refresh {token}, the answer to the gateway's auth:refresh (auth_session.c): handled
 * here, never by plugins. Returns 1 when the msg on top of the stack was one. */
static int native_auth_refresh(gw_conn_t *c, lua_State *L, int has_id, uint64_t id) {
  if (!is_event(L, "auth:refresh")) return 0;
  lua_getfield(L, -1, "data");
  if (lua_istable(L, -1)) lua_getfield(L, -1, "token");
  const char *token = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  char reason[64], ack[64];
  double exp = 0;
  if (!token) {
    gw_native_refuse(c, has_id, id, "bad_request", "auth:refresh needs data {\"token\": \"...\"}");
  } else if (gw_auth_session_refresh(c, token, &exp, reason, sizeof reason)) {
    gw_native_refuse(c, has_id, id, "unauthorized", reason);
  } else if (has_id) {
    int n = snprintf(ack, sizeof ack, "{\"ok\":true,\"exp\":%.15g}", exp);
    send_buf(c, gw_native_ack(id, ack, (size_t)n));
  }
  return 1;
}

/* One stream's position of a resume (value on top of the stack): {offset, epoch}, or
 * anything else for "none yet". NULL, or what is wrong. */
static const char *resume_position(lua_State *L, gw_resume_stream_t *st) {
  st->has_pos = 0;
  if (!lua_istable(L, -1)) return NULL;
  lua_getfield(L, -1, "offset");
  lua_getfield(L, -2, "epoch");
  const char *why = NULL;
  if (!lua_isnil(L, -2) || !lua_isnil(L, -1)) {
    size_t elen = 0;
    double off = lua_type(L, -2) == LUA_TNUMBER ? lua_tonumber(L, -2) : -1;
    const char *ep = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &elen) : NULL;
    if (off < 0 || off > MAX_ACK_ID || floor(off) != off)
      why = "resume: \"offset\" must be a non-negative integer";
    else if (!ep || elen > GW_HISTORY_EPOCH_MAX)
      why = "resume: \"epoch\" must be the string the gateway sent (at most 32 bytes)";
    else {
      st->has_pos = 1;
      st->pos.offset = (uint64_t)off;
      memcpy(st->pos.epoch, ep, elen + 1);
    }
  }
  lua_pop(L, 2);
  return why;
}

/* resume {streams: {<channel>: {offset, epoch} | null}} (resume.h): handled here, never by
 * plugins. Returns 1 when the msg on top of the stack was one. */
static int native_resume(gw_conn_t *c, lua_State *L, int has_id, uint64_t id) {
  if (!is_event(L, "resume")) return 0;
  int top = lua_gettop(L);
  lua_getfield(L, -1, "data");
  if (lua_istable(L, -1)) lua_getfield(L, -1, "streams");
  gw_resume_stream_t st[GW_RESUME_MAX_STREAMS];
  char own[GW_ROOM_NAME_MAX + 1];
  size_t n = 0;
  const char *why = lua_istable(L, -1) ? NULL : "resume needs data {\"streams\": {\"<channel>\": {\"offset\": N, \"epoch\": \"E\"}}}";
  if (!why) {
    lua_pushnil(L);
    while (!why && lua_next(L, -2)) {
      size_t klen = 0;
      const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &klen) : NULL;
      if (!k || klen == 0 || klen > GW_ROOM_NAME_MAX) why = "resume: each stream is named by a room of 1..200 bytes";
      else if (n == GW_RESUME_MAX_STREAMS) why = "resume: at most 16 streams at once";
      else if (!(why = resume_position(L, &st[n]))) {
        /* "$user": this connection's own user channel, for a client that does not know its
         * identity's name yet; answered under the real name */
        if (strcmp(k, "$user") == 0 && c->user && snprintf(own, sizeof own, "user:%s", c->user) < (int)sizeof own)
          k = own;
        st[n++].channel = k;
      }
      lua_pop(L, 1);
    }
    if (why) lua_pop(L, 1); /* the key lua_next left */
  }
  if (!why && n == 0) why = "resume: no stream named";
  if (why) gw_native_refuse(c, has_id, id, "bad_request", why);
  else gw_resume_start(c, has_id, id, st, n); /* the names stay on the stack meanwhile */
  lua_settop(L, top);
  return 1;
}

/* replay:ack {channel, offset, epoch} (ack_track.h): cumulative, handled here. Returns 1 when
 * the msg on top of the stack was one; the ack answers {"settled": N}. */
static int native_replay_ack(gw_conn_t *c, lua_State *L, int has_id, uint64_t id) {
  if (!is_event(L, "replay:ack")) return 0;
  int top = lua_gettop(L);
  lua_getfield(L, -1, "data");
  gw_resume_stream_t st;
  const char *channel = NULL, *why = NULL;
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "channel");
    size_t clen = 0;
    channel = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &clen) : NULL;
    lua_pop(L, 1); /* the data table keeps the string alive */
    if (!channel || clen == 0 || clen > GW_ROOM_NAME_MAX) channel = NULL;
    why = resume_position(L, &st);
  }
  if (!why && (!channel || !st.has_pos))
    why = "replay:ack needs data {\"channel\": \"...\", \"offset\": N, \"epoch\": \"E\"} (from the message)";
  if (why) {
    gw_native_refuse(c, has_id, id, "bad_request", why);
  } else if (!gw_room_is_member(c, channel)) {
    gw_native_refuse(c, has_id, id, "not_member", "acknowledge only messages of a room this connection is in");
  } else {
    size_t n = gw_ack_track_ack(c, channel, &st.pos);
    if (has_id) {
      char ack[48];
      int len = snprintf(ack, sizeof ack, "{\"settled\":%zu}", n);
      send_buf(c, gw_native_ack(id, ack, (size_t)len));
    }
  }
  lua_settop(L, top);
  return 1;
}

void gw_native_on_message(gw_conn_t *c, const unsigned char *data, size_t len, int binary, const void *decoded) {
  (void)decoded; /* /ws decodes here, in the policy's state */
  gw_policy_t *p = gw_policy_current();
  lua_State *L = p->vm->L;
  int top = lua_gettop(L);
  int has_id = 0;
  uint64_t id = 0;

  if (binary) {
    lua_createtable(L, 0, 4);
    lua_pushliteral(L, "binary");
    lua_setfield(L, -2, "event");
    lua_pushlstring(L, (const char *)data, len);
    lua_setfield(L, -2, "data");
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "binary");
  } else {
    if (gw_lua_json_decode(p->vm, (const char *)data, len)) {
      char msg[300];
      snprintf(msg, sizeof msg, "invalid JSON: %s", lua_tostring(L, -1));
      lua_settop(L, top);
      gw_native_refuse(c, 0, 0, "bad_request", msg);
      return;
    }
    const char *why = check_envelope(L, -1, &has_id, &id);
    if (why) {
      lua_settop(L, top);
      gw_native_refuse(c, has_id, id, "bad_request", why);
      return;
    }
    /* the decoded envelope becomes the msg table itself: no copy */
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "binary");
    if (native_auth_refresh(c, L, has_id, id) || native_resume(c, L, has_id, id) ||
        native_replay_ack(c, L, has_id, id)) {
      lua_settop(L, top);
      return;
    }
  }
  lua_pushliteral(L, "ws");
  lua_setfield(L, -2, "protocol");

  gw_verdict_t v;
  gw_policy_on_message(p, c, lua_gettop(L), &v);
  gw_pipeline_reply(c, p, &v, has_id, id);
  lua_settop(L, top);
}

const char *gw_native_check_envelope(lua_State *L, int idx, int *has_id, uint64_t *id) {
  return check_envelope(L, idx, has_id, id);
}
