/* Socket.IO v5 codec: packet headers (type, attachments, namespace, ack id, payload), the
 * malformed ones that close a connection, encoded packets, events and acks with argument
 * lists and binary attachments; and the JSON side of binary values and argument lists. */
#include <stdlib.h>
#include <string.h>

#include <luajit-2.1/lauxlib.h>
#include <luajit-2.1/lualib.h>

#include "check.h"
#include "json_lua.h"
#include "socketio.h"

static gw_sio_packet_t parse_ok(const char *s) {
  gw_sio_packet_t p;
  if (!CHECK(gw_sio_parse(s, strlen(s), &p) == 0)) fprintf(stderr, "  (parsing %s)\n", s);
  return p;
}

static int parse_fails(const char *s) {
  gw_sio_packet_t p;
  return gw_sio_parse(s, strlen(s), &p) == -1;
}

static void str_eq(const char *a, size_t alen, const char *b, int line) {
  char tmp[256];
  snprintf(tmp, sizeof tmp, "%.*s", (int)alen, a);
  check_str(tmp, b, __FILE__, line, "text", b);
}
#define CHECK_SPAN(p, n, s) str_eq((p), (n), (s), __LINE__)

static void test_parse(void) {
  gw_sio_packet_t p = parse_ok("0");
  CHECK_EQ_INT(p.type, GW_SIO_CONNECT);
  CHECK_SPAN(p.nsp, p.nsp_len, "/");
  CHECK_EQ_INT(p.data_len, 0);
  p = parse_ok("0{\"token\":\"123\"}");
  CHECK_SPAN(p.data, p.data_len, "{\"token\":\"123\"}");
  p = parse_ok("0/custom,{\"token\":\"abc\"}");
  CHECK_SPAN(p.nsp, p.nsp_len, "/custom");
  CHECK_SPAN(p.data, p.data_len, "{\"token\":\"abc\"}");
  p = parse_ok("0/custom"); /* a namespace without the comma: to the end */
  CHECK_SPAN(p.nsp, p.nsp_len, "/custom");
  p = parse_ok("1/custom,");
  CHECK_EQ_INT(p.type, GW_SIO_DISCONNECT);
  CHECK_SPAN(p.nsp, p.nsp_len, "/custom");
  p = parse_ok("2[\"message\",1,\"2\",{\"3\":[true]}]");
  CHECK_EQ_INT(p.type, GW_SIO_EVENT);
  CHECK_EQ_INT(p.has_id, 0);
  CHECK_SPAN(p.data, p.data_len, "[\"message\",1,\"2\",{\"3\":[true]}]");
  p = parse_ok("2456[\"message-with-ack\",1]");
  CHECK_EQ_INT(p.has_id, 1);
  CHECK_EQ_INT(p.id, 456);
  p = parse_ok("2/admin,0[\"x\"]");
  CHECK_SPAN(p.nsp, p.nsp_len, "/admin");
  CHECK_EQ_INT(p.has_id, 1);
  CHECK_EQ_INT(p.id, 0);
  p = parse_ok("52-[\"message\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]");
  CHECK_EQ_INT(p.type, GW_SIO_BINARY_EVENT);
  CHECK_EQ_INT(p.attachments, 2);
  p = parse_ok("52-/admin,789[\"m\"]");
  CHECK_EQ_INT(p.attachments, 2);
  CHECK_SPAN(p.nsp, p.nsp_len, "/admin");
  CHECK_EQ_INT(p.id, 789);
  p = parse_ok("3/admin,12[1,2]");
  CHECK_EQ_INT(p.type, GW_SIO_ACK);
  CHECK_EQ_INT(p.id, 12);
  p = parse_ok("29007199254740991[\"max id\"]");
  CHECK_EQ_INT(p.id, 9007199254740991LL);

  /* what closes a connection (the official suite's cases among them) */
  CHECK(parse_fails(""));
  CHECK(parse_fails("abc"));             /* unknown packet type */
  CHECK(parse_fails("7[\"x\"]"));
  CHECK(parse_fails("2{}"));             /* an event payload must be an array */
  CHECK(parse_fails("2abc[\"x\"]"));     /* invalid ack id */
  CHECK(parse_fails("2"));               /* an event without payload */
  CHECK(parse_fails("0[1]"));            /* CONNECT: an object or nothing */
  CHECK(parse_fails("0\"s\""));
  CHECK(parse_fails("1[\"x\"]"));        /* DISCONNECT: no payload */
  CHECK(parse_fails("4{\"message\":\"x\"}")); /* CONNECT_ERROR only goes to clients */
  CHECK(parse_fails("5[\"x\"]"));        /* attachments without their count */
  CHECK(parse_fails("5x-[\"x\"]"));
  CHECK(parse_fails("51[\"x\"]"));       /* ... or without the '-' */
  CHECK(parse_fails("51001-[\"x\"]"));   /* too many attachments */
  CHECK(parse_fails("29007199254740992[\"x\"]")); /* id over 2^53 - 1 */
  CHECK(parse_fails("212345678901234567[\"x\"]"));
}

static void check_buf(gw_msgbuf_t *b, const char *want, int binary, int line) {
  if (!check_report(b != NULL, __FILE__, line, "buffer")) return;
  check_int(b->binary, binary, __FILE__, line, "binary", "expected");
  str_eq((const char *)gw_msgbuf_payload(b), b->len, want, line);
}
#define CHECK_BUF(b, want, bin) check_buf((b), (want), (bin), __LINE__)

static void test_packet_new(void) {
  gw_msgbuf_t *b = gw_sio_packet_new(GW_SIO_CONNECT, 0, "/", 1, 0, 0, "{\"sid\":\"x\"}", 11);
  CHECK_BUF(b, "40{\"sid\":\"x\"}", 0);
  gw_msgbuf_unref(b);
  b = gw_sio_packet_new(GW_SIO_CONNECT_ERROR, 0, "/random", 7, 0, 0, "{\"message\":\"Invalid namespace\"}", 31);
  CHECK_BUF(b, "44/random,{\"message\":\"Invalid namespace\"}", 0);
  gw_msgbuf_unref(b);
  b = gw_sio_packet_new(GW_SIO_DISCONNECT, 0, "/admin", 6, 0, 0, NULL, 0);
  CHECK_BUF(b, "41/admin,", 0);
  gw_msgbuf_unref(b);
  b = gw_sio_packet_new(GW_SIO_BINARY_ACK, 2, NULL, 0, 1, 789, "[1]", 3);
  CHECK_BUF(b, "462-789[1]", 0);
  gw_msgbuf_unref(b);
}

static void test_build(void) {
  gw_sio_pkts_t pk = {0};
  const char *j;
  CHECK_EQ_INT(gw_sio_build_event(&pk, "/", 1, "room:message", 12, "{\"a\":1}", 7), 0);
  CHECK_EQ_INT(pk.n, 1);
  CHECK_BUF(pk.v[0], "42[\"room:message\",{\"a\":1}]", 0);
  gw_sio_pkts_clear(&pk);
  /* no data: no argument */
  gw_sio_build_event(&pk, "/admin", 6, "ping", 4, NULL, 0);
  CHECK_BUF(pk.v[0], "42/admin,[\"ping\"]", 0);
  gw_sio_pkts_clear(&pk);
  /* an argument list (" [...]") is spread */
  j = " [1,\"2\",{\"3\":[true]}]";
  gw_sio_build_event(&pk, "/", 1, "message-back", 12, j, strlen(j));
  CHECK_BUF(pk.v[0], "42[\"message-back\",1,\"2\",{\"3\":[true]}]", 0);
  gw_sio_pkts_clear(&pk);
  gw_sio_build_event(&pk, "/", 1, "e", 1, " []", 3);
  CHECK_BUF(pk.v[0], "42[\"e\"]", 0);
  gw_sio_pkts_clear(&pk);
  /* a plain array is one argument */
  gw_sio_build_event(&pk, "/", 1, "e", 1, "[1,2]", 5);
  CHECK_BUF(pk.v[0], "42[\"e\",[1,2]]", 0);
  gw_sio_pkts_clear(&pk);
  /* an event name is escaped */
  gw_sio_build_event(&pk, "/", 1, "a\"b", 3, NULL, 0);
  CHECK_BUF(pk.v[0], "42[\"a\\\"b\"]", 0);
  gw_sio_pkts_clear(&pk);

  /* binary values become placeholders and attachments, in order */
  j = " [{\"_binary\":\"AQID\"},{\"x\":{\"_binary\":\"BAUG\"}},\"t\"]";
  CHECK_EQ_INT(gw_sio_build_event(&pk, "/", 1, "message-back", 12, j, strlen(j)), 0);
  if (CHECK_EQ_INT(pk.n, 3)) {
    CHECK_BUF(pk.v[0],
              "452-[\"message-back\",{\"_placeholder\":true,\"num\":0},{\"x\":{\"_placeholder\":true,\"num\":1}},\"t\"]",
              0);
    CHECK_BUF(pk.v[1], "\x01\x02\x03", 1);
    CHECK_BUF(pk.v[2], "\x04\x05\x06", 1);
  }
  gw_sio_pkts_clear(&pk);
  /* look-alikes stay text: more keys, not base64, inside a string */
  j = "[{\"_binary\":\"AQID\",\"more\":1},{\"_binary\":\"!!\"},\"{\\\"_binary\\\":\\\"AQID\\\"}\"]";
  gw_sio_build_event(&pk, "/", 1, "e", 1, j, strlen(j));
  CHECK_EQ_INT(pk.n, 1);
  if (pk.n) CHECK_EQ_INT(gw_msgbuf_payload(pk.v[0])[1], '2');
  gw_sio_pkts_clear(&pk);

  /* acks */
  j = " [1,\"2\",{\"3\":[false]}]";
  gw_sio_build_ack(&pk, "/", 1, 456, j, strlen(j));
  CHECK_BUF(pk.v[0], "43456[1,\"2\",{\"3\":[false]}]", 0);
  gw_sio_pkts_clear(&pk);
  gw_sio_build_ack(&pk, "/custom", 7, 1, "{\"ok\":true}", 11);
  CHECK_BUF(pk.v[0], "43/custom,1[{\"ok\":true}]", 0);
  gw_sio_pkts_clear(&pk);
  gw_sio_build_ack(&pk, "/", 1, 0, NULL, 0);
  CHECK_BUF(pk.v[0], "430[]", 0);
  gw_sio_pkts_clear(&pk);
  j = " [{\"_binary\":\"AQID\"},{\"_binary\":\"\"}]";
  gw_sio_build_ack(&pk, "/", 1, 789, j, strlen(j));
  if (CHECK_EQ_INT(pk.n, 3)) {
    CHECK_BUF(pk.v[0], "462-789[{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]", 0);
    CHECK_EQ_INT(pk.v[2]->len, 0);
  }
  gw_sio_pkts_clear(&pk);
}

/* The JSON side: gw.args lists encode with a leading space, gw.binary values and strings in
 * the binary set as {"_binary": base64}. */
static void test_json_values(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  gw_json_lua_setup(L);
  lua_pushcfunction(L, gw_json_lua_open);
  lua_call(L, 0, 1);
  lua_setglobal(L, "json");
  gw_strbuf_t out = {0};

  luaL_dostring(L, "return json.args(1, 'two', {})");
  CHECK_EQ_INT(gw_json_lua_encode(L, -1, &out), 0);
  CHECK_SPAN(out.p, out.len, " [1,\"two\",{}]");
  CHECK(gw_json_is_args(out.p, out.len));
  lua_pop(L, 1);
  luaL_dostring(L, "return json.args()");
  gw_json_lua_encode(L, -1, &out);
  CHECK_SPAN(out.p, out.len, " []");
  lua_pop(L, 1);
  /* nested lists are plain arrays */
  luaL_dostring(L, "return { list = json.args(1) }");
  gw_json_lua_encode(L, -1, &out);
  CHECK_SPAN(out.p, out.len, "{\"list\":[1]}");
  CHECK(!gw_json_is_args(out.p, out.len));
  lua_pop(L, 1);

  luaL_dostring(L, "return { b = json.binary('\\1\\2\\3') }");
  CHECK_EQ_INT(gw_json_lua_encode(L, -1, &out), 0);
  CHECK_SPAN(out.p, out.len, "{\"b\":{\"_binary\":\"AQID\"}}");
  lua_pop(L, 1);

  /* a string is binary only while it is in the binary set */
  lua_pushlstring(L, "\xff\x00\x01", 3);
  CHECK_EQ_INT(gw_json_lua_encode(L, -1, &out), -1); /* not UTF-8: not a JSON string */
  lua_pop(L, 2); /* the message and the string */
  lua_pushlstring(L, "\xff\x00\x01", 3);
  gw_json_lua_binset_add(L, -1);
  lua_newtable(L);
  lua_pushvalue(L, -2);
  lua_rawseti(L, -2, 1);
  CHECK_EQ_INT(gw_json_lua_encode(L, -1, &out), 0);
  CHECK_SPAN(out.p, out.len, "[{\"_binary\":\"/wAB\"}]");
  gw_json_lua_binset_clear(L);
  CHECK_EQ_INT(gw_json_lua_encode(L, -1, &out), -1);
  lua_pop(L, 3);
  CHECK_EQ_INT(lua_gettop(L), 0);

  gw_strbuf_free(&out);
  lua_close(L);
}

int main(void) {
  test_parse();
  test_packet_new();
  test_build();
  test_json_values();
  return check_done();
}
