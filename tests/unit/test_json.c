/* gw_json_escape: the escaping rules, and truncation that never overflows the buffer;
 * gw_json_int: integers as decimal digits; gw_json_lua_decode: numbers out of range. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "json.h"
#include "json_lua.h"

#include <luajit-2.1/lauxlib.h>

/* Escapes s (length from strlen unless len given) into a large buffer. */
static const char *esc(const char *s, size_t len, size_t *outlen) {
  static char buf[4096];
  size_t n = gw_json_escape(s, len, buf, sizeof buf);
  if (outlen) *outlen = n;
  return buf;
}

#define CHECK_ESC(in, want)                              \
  do {                                                   \
    size_t n_;                                           \
    const char *got_ = esc((in), sizeof(in) - 1, &n_);   \
    CHECK_STR(got_, (want));                             \
    CHECK_EQ_INT(n_, strlen(want));                      \
  } while (0)

static void test_rules(void) {
  CHECK_ESC("", "\"\"");
  CHECK_ESC("hello", "\"hello\"");
  CHECK_ESC("a\"b", "\"a\\\"b\"");
  CHECK_ESC("a\\b", "\"a\\\\b\"");
  CHECK_ESC("\"\\\"", "\"\\\"\\\\\\\"\"");
  CHECK_ESC("l1\nl2", "\"l1\\nl2\"");
  CHECK_ESC("a\tb\rc", "\"a\\tb\\rc\"");
  /* other control characters: \u00XX, lower-case hex */
  CHECK_ESC("\x01", "\"\\u0001\"");
  CHECK_ESC("\x08\x0c", "\"\\u0008\\u000c\"");
  CHECK_ESC("\x1b[0m", "\"\\u001b[0m\"");
  CHECK_ESC("\x1f", "\"\\u001f\"");
  /* a NUL inside the given length is data, not the end */
  CHECK_ESC("a\0b", "\"a\\u0000b\"");
  /* space, '/', DEL and printable ASCII need no escape */
  CHECK_ESC(" /~\x7f", "\" /~\x7f\"");
  /* UTF-8 bytes are copied as they are */
  CHECK_ESC("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
  /* only len bytes are read */
  size_t n;
  CHECK_STR(esc("abcdef", 3, &n), "\"abc\"");
  CHECK_EQ_INT(n, 5);
}

/* Every byte value 0..255 through the escaper, decoded back by a tiny JSON-string reader. */
static int unescape(const char *in, size_t inlen, unsigned char *out, size_t *outlen) {
  size_t o = 0;
  if (inlen < 2 || in[0] != '"' || in[inlen - 1] != '"') return -1;
  for (size_t i = 1; i < inlen - 1; i++) {
    unsigned char c = (unsigned char)in[i];
    if (c < 0x20 || c == '"') return -1; /* must have been escaped */
    if (c != '\\') {
      out[o++] = c;
      continue;
    }
    if (++i >= inlen - 1) return -1;
    switch (in[i]) {
      case '"': out[o++] = '"'; break;
      case '\\': out[o++] = '\\'; break;
      case '/': out[o++] = '/'; break;
      case 'n': out[o++] = '\n'; break;
      case 't': out[o++] = '\t'; break;
      case 'r': out[o++] = '\r'; break;
      case 'b': out[o++] = '\b'; break;
      case 'f': out[o++] = '\f'; break;
      case 'u': {
        if (i + 4 >= inlen - 1) return -1;
        char hex[5] = {in[i + 1], in[i + 2], in[i + 3], in[i + 4], 0};
        char *end;
        long v = strtol(hex, &end, 16);
        if (*end || v > 0xff) return -1;
        out[o++] = (unsigned char)v;
        i += 4;
        break;
      }
      default: return -1;
    }
  }
  *outlen = o;
  return 0;
}

static void test_roundtrip(void) {
  unsigned char all[256];
  for (int i = 0; i < 256; i++) all[i] = (unsigned char)i;
  char out[GW_JSON_ESCAPED_MAX(256)];
  size_t n = gw_json_escape((const char *)all, sizeof all, out, sizeof out);
  CHECK(n < sizeof out);
  CHECK_EQ_INT(strlen(out), n);
  unsigned char back[256];
  size_t blen = 0;
  CHECK(unescape(out, n, back, &blen) == 0);
  CHECK_EQ_INT(blen, 256);
  CHECK(memcmp(back, all, 256) == 0);

  /* the worst case (all control bytes) fits GW_JSON_ESCAPED_MAX exactly with room to spare */
  char ctl[64];
  memset(ctl, 1, sizeof ctl);
  char big[GW_JSON_ESCAPED_MAX(64)];
  n = gw_json_escape(ctl, sizeof ctl, big, sizeof big);
  CHECK_EQ_INT(n, 64 * 6 + 2);
  CHECK(n < sizeof big);
}

/* For each cap: nothing written past cap, NUL-terminated, quoted, and the content a prefix of
 * the full escape that ends between two escape sequences (never half of "\u001f"). */
static void check_truncation(const char *s, size_t len) {
  char full[1024];
  size_t flen = gw_json_escape(s, len, full, sizeof full);
  /* boundaries: content offsets (inside the quotes) where one input byte's escape ends */
  size_t bounds[256], nb = 0, off = 0;
  bounds[nb++] = 0;
  for (size_t i = 0; i < len; i++) {
    char one[16];
    off += gw_json_escape(s + i, 1, one, sizeof one) - 2;
    bounds[nb++] = off;
  }
  CHECK_EQ_INT(off + 2, flen);

  int bad_overflow = 0, bad_nul = 0, bad_quote = 0, bad_prefix = 0, bad_boundary = 0;
  int bad_ret = 0;
  for (size_t cap = 0; cap <= flen + 3; cap++) {
    char buf[1100];
    memset(buf, 'Z', sizeof buf);
    size_t n = gw_json_escape(s, len, buf, cap);
    for (size_t k = cap; k < sizeof buf; k++)
      if (buf[k] != 'Z') bad_overflow++;
    if (cap == 0) {
      if (n != 0) bad_ret++;
      continue;
    }
    if (n >= cap || buf[n] != 0 || strlen(buf) != n) bad_nul++;
    if (cap < 3) {
      if (n != 0) bad_ret++;
      continue;
    }
    if (n < 2 || buf[0] != '"' || buf[n - 1] != '"') {
      bad_quote++;
      continue;
    }
    if (cap > flen && n != flen) bad_ret++; /* room enough: nothing cut */
    size_t content = n - 2;
    if (memcmp(buf + 1, full + 1, content) != 0) bad_prefix++;
    int at_bound = 0;
    for (size_t b = 0; b < nb; b++)
      if (bounds[b] == content) at_bound = 1;
    if (!at_bound) bad_boundary++;
  }
  CHECK_EQ_INT(bad_overflow, 0);
  CHECK_EQ_INT(bad_nul, 0);
  CHECK_EQ_INT(bad_quote, 0);
  CHECK_EQ_INT(bad_prefix, 0);
  CHECK_EQ_INT(bad_boundary, 0);
  CHECK_EQ_INT(bad_ret, 0);
}

static void test_truncation(void) {
  static const char mixed[] = "ab\"c\\d\ne\x01\x1f\tcaf\xc3\xa9 end";
  check_truncation(mixed, sizeof mixed - 1);
  check_truncation("", 0);
  static const char ctl[] = "\x01\x02\x03\x04\x05";
  check_truncation(ctl, sizeof ctl - 1);

  /* the smallest buffers: nothing but an empty string fits */
  char b[4] = "XXX";
  CHECK_EQ_INT(gw_json_escape("abc", 3, b, 0), 0);
  CHECK(b[0] == 'X');
  CHECK_EQ_INT(gw_json_escape("abc", 3, b, 1), 0);
  CHECK(b[0] == 0);
  CHECK_EQ_INT(gw_json_escape("abc", 3, b, 3), 2);
  CHECK_STR(b, "\"\"");
  /* an escape that does not fit whole is left out whole */
  char c[8];
  size_t n = gw_json_escape("a\x01", 2, c, sizeof c);
  CHECK_STR(c, "\"a\"");
  CHECK_EQ_INT(n, 3);

  /* random inputs, every cap */
  srand(4003);
  for (int round = 0; round < 50; round++) {
    char s[60];
    size_t len = (size_t)(rand() % (int)sizeof s);
    for (size_t i = 0; i < len; i++) s[i] = (char)(rand() & 0xff);
    check_truncation(s, len);
  }
}

/* Truncated output goes into text frames: it must never end inside a UTF-8 sequence. */
static void test_truncation_keeps_utf8_whole(void) {
  const char *s = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80" "b"; /* a é € 😀 b */
  size_t len = strlen(s);
  int bad = 0;
  for (size_t cap = 3; cap < len + 4; cap++) {
    char buf[64];
    size_t n = gw_json_escape(s, len, buf, cap);
    /* content between the quotes must be a prefix of s that ends on a character boundary */
    size_t content = n - 2;
    if (memcmp(buf + 1, s, content) != 0) bad++;
    if (content < len && ((unsigned char)s[content] & 0xC0) == 0x80) bad++;
  }
  CHECK_EQ_INT(bad, 0);
}

/* gw_json_plain_run against a byte-at-a-time reference, with the stopping byte at every
 * offset of a long string (the word-at-a-time scan must stop at the same place), and the
 * escaper on long runs against the same reader as above. */
static size_t plain_ref(const char *s, size_t len) {
  size_t i = 0;
  while (i < len && (unsigned char)s[i] >= 0x20 && s[i] != '"' && s[i] != '\\') i++;
  return i;
}

static void test_plain_runs(void) {
  static const char stops[] = {'"', '\\', '\n', '\0', 0x1f};
  char buf[80];
  for (size_t k = 0; k < sizeof stops; k++) {
    for (size_t at = 0; at < sizeof buf; at++) {
      for (size_t i = 0; i < sizeof buf; i++) buf[i] = (char)(i % 2 ? 'a' + i % 26 : 0xC3 + (i % 3 == 0)); /* ASCII and high bytes */
      buf[at] = stops[k];
      size_t got = gw_json_plain_run(buf, sizeof buf);
      if (!CHECK_EQ_INT(got, plain_ref(buf, sizeof buf))) fprintf(stderr, "  stop %#x at %zu\n", stops[k], at);
      CHECK_EQ_INT(got, at);
      /* only len bytes are looked at */
      CHECK_EQ_INT(gw_json_plain_run(buf, at), at);
    }
  }
  /* bytes that look like a stop in one lane of a word must not hide one in another:
   * 0x21 ('!' just above '"'), 0x5d, 0x20, 0x7f, 0x80, 0xff */
  static const unsigned char near[] = {0x21, 0x5d, 0x5b, 0x20, 0x7f, 0x80, 0xff, 0x23};
  for (size_t at = 0; at < 24; at++) {
    char w[24];
    for (size_t i = 0; i < sizeof w; i++) w[i] = (char)near[i % sizeof near];
    w[at] = '"';
    CHECK_EQ_INT(gw_json_plain_run(w, sizeof w), at);
  }

  /* a long string with a few escapes, and one that is all plain: escape, read back */
  char in[1000], out[GW_JSON_ESCAPED_MAX(1000)];
  unsigned char back[1000];
  size_t blen;
  for (size_t i = 0; i < sizeof in; i++) in[i] = (char)(i % 97 == 0 ? '"' : i % 89 == 0 ? '\n' : 'a' + i % 26);
  size_t n = gw_json_escape(in, sizeof in, out, sizeof out);
  CHECK(unescape(out, n, back, &blen) == 0);
  CHECK_EQ_INT(blen, sizeof in);
  CHECK(memcmp(back, in, sizeof in) == 0);
  memset(in, 'x', sizeof in);
  n = gw_json_escape(in, sizeof in, out, sizeof out);
  CHECK_EQ_INT(n, sizeof in + 2);
  /* a long run that does not fit is still cut whole and quoted */
  n = gw_json_escape(in, sizeof in, out, 100);
  CHECK_EQ_INT(n, 99); /* the quotes, 97 bytes and the NUL fill the 100 */
  CHECK(out[0] == '"' && out[n - 1] == '"' && out[n] == 0);
  /* a long run, then a two-byte character with room for only its first byte: the cut
   * drops the character whole */
  char mixed[203];
  memset(mixed, 'a', 200);
  memcpy(mixed + 200, "\xc3\xa9z", 3);
  n = gw_json_escape(mixed, sizeof mixed, out, 204);
  CHECK_EQ_INT(n, 202); /* the quotes and the 200 'a' */
  CHECK(out[200] == 'a' && out[201] == '"' && out[202] == 0);
}

static void test_int(void) {
  static const long long vals[] = {0, 1, -1, 9, 10, -10, 42, 1000000, 9007199254740991LL,
                                   -9007199254740991LL, 9223372036854775807LL, -9223372036854775807LL - 1};
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    char got[GW_JSON_INT_MAX + 1], want[32];
    size_t n = gw_json_int(got, vals[i]);
    got[n] = 0;
    snprintf(want, sizeof want, "%lld", vals[i]);
    CHECK_STR(got, want);
    CHECK_EQ_INT(n, strlen(want));
  }
}

/* A number too large for a double is the sender's error at decode time: it would become
 * infinity, which no JSON can carry back (the ack then failed as an internal error). */
static void test_decode_number_range(void) {
  lua_State *L = luaL_newstate();
  gw_strbuf_t scratch = {0};
  const char *bad[] = {"1e400", "-1e400", "[1,2e999]", "{\"a\":1E309}",
                       "[1e400]"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CHECK_EQ_INT(gw_json_lua_decode(L, bad[i], strlen(bad[i]), &scratch), -1);
    CHECK_CONTAINS(lua_tostring(L, -1), "number out of range");
    lua_settop(L, 0);
  }
  /* a long integer (the strtod path for numbers of 64 bytes or more): 1 and 320 zeros */
  char big[330] = "1";
  memset(big + 1, '0', 320);
  big[321] = 0;
  CHECK_EQ_INT(gw_json_lua_decode(L, big, strlen(big), &scratch), -1);
  CHECK_CONTAINS(lua_tostring(L, -1), "number out of range");
  lua_settop(L, 0);
  /* the largest double, and an underflow to zero, are numbers */
  const char *max = "1.7976931348623157e308";
  CHECK_EQ_INT(gw_json_lua_decode(L, max, strlen(max), &scratch), 0);
  CHECK(lua_tonumber(L, -1) > 1.79e308);
  CHECK_EQ_INT(gw_json_lua_decode(L, "1e-400", 6, &scratch), 0);
  CHECK(lua_tonumber(L, -1) == 0);
  gw_strbuf_free(&scratch);
  lua_close(L);
}

int main(void) {
  test_decode_number_range();
  test_rules();
  test_roundtrip();
  test_truncation();
  test_truncation_keeps_utf8_whole();
  test_plain_runs();
  test_int();
  return check_done();
}
