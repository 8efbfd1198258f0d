#include "json_lua.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <luajit-2.1/lauxlib.h>

#include "base64.h"
#include "json.h"

#define ARRAY_MT_KEY "aivo.json.array"
#define ARGS_MT_KEY "aivo.json.args"
#define BINARY_MT_KEY "aivo.json.binary"
#define BINSET_KEY "aivo.json.binset"

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  if (c < 0x80) return 1;
  size_t len;
  uint32_t cp;
  if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
  else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
  else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
  else return 0;
  if (n < len) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
    return 0;
  return len;
}

/* Valid UTF-8 throughout: ASCII 8 bytes at a time, a sequence at a time otherwise. */
static int utf8_valid(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    if (n - i >= 8) {
      uint64_t w;
      memcpy(&w, s + i, 8);
      if (!(w & 0x8080808080808080ULL)) {
        i += 8;
        continue;
      }
    }
    size_t k = utf8_seq(s + i, n - i);
    if (!k) return 0;
    i += k;
  }
  return 1;
}

/* ---- decode -------------------------------------------------------------------------- */

typedef struct {
  lua_State *L;
  const char *p, *end, *start;
  gw_strbuf_t *scratch;
  const char *err;
  int depth;
} dec_t;

static int dec_fail(dec_t *d, const char *why) {
  if (!d->err) d->err = why;
  return -1;
}

static void skip_ws(dec_t *d) {
  while (d->p < d->end && (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r')) d->p++;
}

static int hex4(const char *p, uint32_t *out) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
    else return -1;
  }
  *out = v;
  return 0;
}

static size_t put_utf8(char *o, uint32_t cp) {
  if (cp < 0x80) { o[0] = (char)cp; return 1; }
  if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* d->p is just past the opening quote. */
static int dec_string(dec_t *d) {
  const char *s = d->p;
  /* fast path: no escapes */
  const char *q = s + gw_json_plain_run(s, (size_t)(d->end - s));
  /* a plain run cannot end inside a UTF-8 sequence (it stops only at ASCII): each is
   * checked on its own */
  if (!utf8_valid((const unsigned char *)s, (size_t)(q - s))) return dec_fail(d, "invalid UTF-8 in a string");
  if (q < d->end && *q == '"') {
    lua_pushlstring(d->L, s, (size_t)(q - s));
    d->p = q + 1;
    return 0;
  }
  /* with escapes: the plain runs and the escapes' bytes into the scratch buffer */
  gw_strbuf_t *b = d->scratch;
  b->len = 0;
  if (gw_strbuf_append(b, s, (size_t)(q - s))) return dec_fail(d, "out of memory");
  d->p = q;
  while (d->p < d->end) {
    size_t run = gw_json_plain_run(d->p, (size_t)(d->end - d->p));
    if (run) {
      if (!utf8_valid((const unsigned char *)d->p, run)) return dec_fail(d, "invalid UTF-8 in a string");
      if (gw_strbuf_append(b, d->p, run)) return dec_fail(d, "out of memory");
      d->p += run;
      continue;
    }
    unsigned char c = (unsigned char)*d->p;
    if (c == '"') {
      d->p++;
      lua_pushlstring(d->L, b->p, b->len);
      return 0;
    }
    if (c < 0x20) return dec_fail(d, "control character in a string");
    if (c == '\\') {
      if (d->end - d->p < 2) break;
      char e = d->p[1];
      char out[4];
      size_t n = 1;
      d->p += 2;
      switch (e) {
        case '"': out[0] = '"'; break;
        case '\\': out[0] = '\\'; break;
        case '/': out[0] = '/'; break;
        case 'b': out[0] = '\b'; break;
        case 'f': out[0] = '\f'; break;
        case 'n': out[0] = '\n'; break;
        case 'r': out[0] = '\r'; break;
        case 't': out[0] = '\t'; break;
        case 'u': {
          uint32_t cp;
          if (d->end - d->p < 4 || hex4(d->p, &cp)) return dec_fail(d, "bad \\u escape");
          d->p += 4;
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t lo;
            if (d->end - d->p < 6 || d->p[0] != '\\' || d->p[1] != 'u' || hex4(d->p + 2, &lo) ||
                lo < 0xDC00 || lo > 0xDFFF)
              return dec_fail(d, "lone surrogate in a \\u escape");
            d->p += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return dec_fail(d, "lone surrogate in a \\u escape");
          }
          n = put_utf8(out, cp);
          break;
        }
        default: return dec_fail(d, "bad escape in a string");
      }
      if (gw_strbuf_append(b, out, n)) return dec_fail(d, "out of memory");
      continue;
    }
  }
  return dec_fail(d, "unterminated string");
}

static int dec_number(dec_t *d) {
  const char *p = d->p;
  if (p < d->end && *p == '-') p++;
  if (p >= d->end) return dec_fail(d, "bad number");
  if (*p == '0') p++;
  else if (*p >= '1' && *p <= '9') while (p < d->end && *p >= '0' && *p <= '9') p++;
  else return dec_fail(d, "unexpected character");
  const char *int_end = p; /* no fraction and no exponent when the number ends here */
  if (p < d->end && *p == '.') {
    p++;
    if (p >= d->end || *p < '0' || *p > '9') return dec_fail(d, "bad number");
    while (p < d->end && *p >= '0' && *p <= '9') p++;
  }
  if (p < d->end && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < d->end && (*p == '+' || *p == '-')) p++;
    if (p >= d->end || *p < '0' || *p > '9') return dec_fail(d, "bad number");
    while (p < d->end && *p >= '0' && *p <= '9') p++;
  }
  char tmp[64];
  size_t n = (size_t)(p - d->p);
  double v;
  size_t sign = *d->p == '-';
  if (p == int_end && n - sign <= 15) {
    /* an integer of at most 15 digits is exact as a double: no strtod */
    unsigned long long u = 0;
    for (const char *q = d->p + sign; q < p; q++) u = u * 10 + (unsigned)(*q - '0');
    v = sign ? -(double)u : (double)u;
  } else if (n < sizeof tmp) {
    memcpy(tmp, d->p, n);
    tmp[n] = 0;
    v = strtod(tmp, NULL);
  } else { /* absurdly long number: strtod needs a terminated copy */
    char *big = malloc(n + 1);
    if (!big) return dec_fail(d, "out of memory");
    memcpy(big, d->p, n);
    big[n] = 0;
    v = strtod(big, NULL);
    free(big);
  }
  /* 1e400 overflows to infinity, which no JSON can hold: the sender's error, refused here
   * rather than failing later when the value is encoded again */
  if (!isfinite(v)) return dec_fail(d, "number out of range");
  lua_pushnumber(d->L, v);
  d->p = p;
  return 0;
}

static int dec_literal(dec_t *d, const char *word, size_t n) {
  if ((size_t)(d->end - d->p) < n || memcmp(d->p, word, n) != 0) return dec_fail(d, "unexpected character");
  d->p += n;
  return 0;
}

static int dec_value(dec_t *d);

static int dec_array(dec_t *d) {
  lua_State *L = d->L;
  lua_newtable(L);
  int i = 0;
  skip_ws(d);
  if (d->p < d->end && *d->p == ']') {
    d->p++;
  } else {
    for (;;) {
      if (dec_value(d)) return -1;
      lua_rawseti(L, -2, ++i);
      skip_ws(d);
      if (d->p >= d->end) return dec_fail(d, "unterminated array");
      if (*d->p == ',') { d->p++; continue; }
      if (*d->p == ']') { d->p++; break; }
      return dec_fail(d, "expected ',' or ']' in an array");
    }
  }
  luaL_getmetatable(L, ARRAY_MT_KEY);
  lua_setmetatable(L, -2);
  return 0;
}

static int dec_object(dec_t *d) {
  lua_State *L = d->L;
  skip_ws(d);
  if (d->p < d->end && *d->p == '}') {
    d->p++;
    lua_newtable(L);
    return 0;
  }
  /* a message envelope (depth 1: event, data, id, and "binary" and "protocol" from the
   * core) gets its 8 slots at once instead of growing through 1, 2 and 4 */
  lua_createtable(L, 0, d->depth == 1 ? 8 : 0);
  for (;;) {
    skip_ws(d);
    if (d->p >= d->end || *d->p != '"') return dec_fail(d, "expected a string key in an object");
    d->p++;
    if (dec_string(d)) return -1;
    skip_ws(d);
    if (d->p >= d->end || *d->p != ':') return dec_fail(d, "expected ':' in an object");
    d->p++;
    if (dec_value(d)) return -1;
    lua_rawset(L, -3);
    skip_ws(d);
    if (d->p >= d->end) return dec_fail(d, "unterminated object");
    if (*d->p == ',') { d->p++; continue; }
    if (*d->p == '}') { d->p++; return 0; }
    return dec_fail(d, "expected ',' or '}' in an object");
  }
}

static int dec_value(dec_t *d) {
  skip_ws(d);
  if (d->p >= d->end) return dec_fail(d, "unexpected end of input");
  if (!lua_checkstack(d->L, 4)) return dec_fail(d, "nesting too deep");
  char c = *d->p;
  int rc;
  switch (c) {
    case '{':
    case '[':
      if (++d->depth > GW_JSON_MAX_DEPTH) return dec_fail(d, "nesting too deep");
      d->p++;
      rc = c == '{' ? dec_object(d) : dec_array(d);
      d->depth--;
      return rc;
    case '"': d->p++; return dec_string(d);
    case 't': if (dec_literal(d, "true", 4)) return -1; lua_pushboolean(d->L, 1); return 0;
    case 'f': if (dec_literal(d, "false", 5)) return -1; lua_pushboolean(d->L, 0); return 0;
    case 'n': if (dec_literal(d, "null", 4)) return -1; lua_pushlightuserdata(d->L, NULL); return 0;
    default: return dec_number(d);
  }
}

int gw_json_lua_decode(lua_State *L, const char *s, size_t len, gw_strbuf_t *scratch) {
  int top = lua_gettop(L);
  dec_t d = {L, s, s + len, s, scratch, NULL, 0};
  int rc = dec_value(&d);
  if (rc == 0) {
    skip_ws(&d);
    if (d.p != d.end) rc = dec_fail(&d, "unexpected data after the JSON value");
  }
  if (rc) {
    lua_settop(L, top);
    lua_pushfstring(L, "%s at byte %d", d.err ? d.err : "bad JSON", (int)(d.p - d.start));
    return -1;
  }
  return 0;
}

/* ---- encode -------------------------------------------------------------------------- */

typedef struct {
  lua_State *L;
  gw_strbuf_t *out;
  const char *err;
  int binset; /* stack index of the binary set when it is not empty, else 0 */
  char errbuf[96];
} enc_t;

static int enc_fail(enc_t *e, const char *why) {
  if (!e->err) e->err = why;
  return -1;
}

static int enc_string(enc_t *e, const char *s, size_t len) {
  if (!utf8_valid((const unsigned char *)s, len))
    return enc_fail(e, "string is not valid UTF-8 (send bytes with send_binary)");
  if (gw_strbuf_reserve(e->out, GW_JSON_ESCAPED_MAX(len))) return enc_fail(e, "out of memory");
  e->out->len += gw_json_escape(s, len, e->out->p + e->out->len, e->out->cap - e->out->len);
  return 0;
}

static int enc_number(enc_t *e, double v) {
  if (!isfinite(v)) return enc_fail(e, "cannot encode NaN or infinity");
  char buf[40];
  int n;
  if (v == floor(v) && fabs(v) < 9007199254740992.0) {
    n = (int)gw_json_int(buf, (long long)v);
    if (v == 0 && signbit(v)) n = snprintf(buf, sizeof buf, "-0");
  } else {
    /* the shortest of 15/16/17 digits that reads back as the same double */
    n = snprintf(buf, sizeof buf, "%.15g", v);
    if (strtod(buf, NULL) != v) n = snprintf(buf, sizeof buf, "%.16g", v);
    if (strtod(buf, NULL) != v) n = snprintf(buf, sizeof buf, "%.17g", v);
  }
  return gw_strbuf_append(e->out, buf, (size_t)n) ? enc_fail(e, "out of memory") : 0;
}

static int enc_value(enc_t *e, int idx, int depth);

enum { TABLE_PLAIN = 0, TABLE_ARRAY, TABLE_ARGS, TABLE_BINARY };

/* Which marker metatable the table carries, if any. */
static int table_kind(lua_State *L, int idx) {
  if (!lua_getmetatable(L, idx)) return TABLE_PLAIN;
  int kind = TABLE_PLAIN;
  static const char *const keys[] = {ARRAY_MT_KEY, ARGS_MT_KEY, BINARY_MT_KEY};
  for (int i = 0; i < 3 && kind == TABLE_PLAIN; i++) {
    luaL_getmetatable(L, keys[i]);
    if (lua_rawequal(L, -1, -2)) kind = TABLE_ARRAY + i;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return kind;
}

/* {"_binary":"<base64>"} */
static int enc_binary(enc_t *e, const char *s, size_t len) {
  if (gw_strbuf_reserve(e->out, GW_BASE64_LEN(len) + 16)) return enc_fail(e, "out of memory");
  gw_strbuf_append(e->out, "{\"_binary\":\"", 12);
  e->out->len += gw_base64_encode((const unsigned char *)s, len, e->out->p + e->out->len);
  gw_strbuf_append(e->out, "\"}", 2);
  return 0;
}

/* 1..n array if the table holds only keys 1..n (n > 0), or carries the array marker. */
static int table_array_len(lua_State *L, int idx, size_t *n_out) {
  size_t count = 0;
  double max = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TNUMBER) { lua_pop(L, 1); return 0; }
    double k = lua_tonumber(L, -1);
    if (k < 1 || k != floor(k)) { lua_pop(L, 1); return 0; }
    if (k > max) max = k;
    count++;
  }
  int kind = table_kind(L, idx);
  int marked = kind == TABLE_ARRAY || kind == TABLE_ARGS;
  if (count == 0) {
    *n_out = 0;
    return marked;
  }
  if (max > (double)count * 2 + 10) return 0; /* too sparse: an object with number keys */
  *n_out = (size_t)max;
  return 1;
}

static int enc_table(enc_t *e, int idx, int depth) {
  lua_State *L = e->L;
  if (depth > GW_JSON_MAX_DEPTH) return enc_fail(e, "nesting too deep (or a cycle)");
  if (!lua_checkstack(L, 6)) return enc_fail(e, "nesting too deep");
  if (table_kind(L, idx) == TABLE_BINARY) {
    lua_rawgeti(L, idx, 1);
    size_t blen;
    const char *b = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &blen) : NULL;
    int rc = b ? enc_binary(e, b, blen) : enc_fail(e, "a gw.binary value must hold a string");
    lua_pop(L, 1);
    return rc;
  }
  size_t n;
  if (table_array_len(L, idx, &n)) {
    if (gw_strbuf_append(e->out, "[", 1)) return enc_fail(e, "out of memory");
    for (size_t i = 1; i <= n; i++) {
      if (i > 1 && gw_strbuf_append(e->out, ",", 1)) return enc_fail(e, "out of memory");
      lua_rawgeti(L, idx, (int)i);
      int rc = enc_value(e, lua_gettop(L), depth + 1);
      lua_pop(L, 1);
      if (rc) return -1;
    }
    return gw_strbuf_append(e->out, "]", 1) ? enc_fail(e, "out of memory") : 0;
  }
  if (gw_strbuf_append(e->out, "{", 1)) return enc_fail(e, "out of memory");
  int first = 1;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (!first && gw_strbuf_append(e->out, ",", 1)) return enc_fail(e, "out of memory");
    first = 0;
    int kt = lua_type(L, -2);
    if (kt == LUA_TSTRING) {
      size_t kl;
      const char *k = lua_tolstring(L, -2, &kl);
      if (enc_string(e, k, kl)) return -1;
    } else if (kt == LUA_TNUMBER) {
      char kb[48];
      lua_Number kn = lua_tonumber(L, -2);
      int kn_len = kn == floor(kn) && fabs(kn) < 9007199254740992.0
                       ? snprintf(kb, sizeof kb, "\"%lld\"", (long long)kn)
                       : snprintf(kb, sizeof kb, "\"%.17g\"", kn);
      if (gw_strbuf_append(e->out, kb, (size_t)kn_len)) return enc_fail(e, "out of memory");
    } else {
      snprintf(e->errbuf, sizeof e->errbuf, "cannot encode a table key of type %s", lua_typename(L, kt));
      return enc_fail(e, e->errbuf);
    }
    if (gw_strbuf_append(e->out, ":", 1)) return enc_fail(e, "out of memory");
    if (enc_value(e, lua_gettop(L), depth + 1)) return -1;
    lua_pop(L, 1);
  }
  return gw_strbuf_append(e->out, "}", 1) ? enc_fail(e, "out of memory") : 0;
}

static int enc_value(enc_t *e, int idx, int depth) {
  lua_State *L = e->L;
  switch (lua_type(L, idx)) {
    case LUA_TNIL: return gw_strbuf_append(e->out, "null", 4) ? enc_fail(e, "out of memory") : 0;
    case LUA_TBOOLEAN:
      return (lua_toboolean(L, idx) ? gw_strbuf_append(e->out, "true", 4) : gw_strbuf_append(e->out, "false", 5))
                 ? enc_fail(e, "out of memory") : 0;
    case LUA_TNUMBER: return enc_number(e, lua_tonumber(L, idx));
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      if (e->binset) { /* bytes that arrived as a Socket.IO attachment stay binary */
        lua_pushvalue(L, idx);
        lua_rawget(L, e->binset);
        int bin = lua_toboolean(L, -1);
        lua_pop(L, 1);
        if (bin) return enc_binary(e, s, len);
      }
      return enc_string(e, s, len);
    }
    case LUA_TTABLE: return enc_table(e, idx, depth);
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) == NULL) return gw_strbuf_append(e->out, "null", 4) ? enc_fail(e, "out of memory") : 0;
      /* fall through */
    default:
      snprintf(e->errbuf, sizeof e->errbuf, "cannot encode a value of type %s", luaL_typename(L, idx));
      return enc_fail(e, e->errbuf);
  }
}

int gw_json_lua_encode(lua_State *L, int idx, gw_strbuf_t *out) {
  idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
  int top = lua_gettop(L);
  out->len = 0;
  enc_t e = {L, out, NULL, 0, {0}};
  lua_getfield(L, LUA_REGISTRYINDEX, BINSET_KEY);
  if (lua_istable(L, -1)) {
    lua_pushnil(L);
    if (lua_next(L, -2)) {
      lua_pop(L, 2);
      e.binset = lua_gettop(L);
    }
  }
  /* an argument list says so with one leading space: " [...]" (see json_lua.h) */
  if (lua_istable(L, idx) && table_kind(L, idx) == TABLE_ARGS && gw_strbuf_append(out, " ", 1)) {
    lua_settop(L, top);
    lua_pushliteral(L, "out of memory");
    return -1;
  }
  if (enc_value(&e, idx, 0)) {
    lua_settop(L, top);
    lua_pushstring(L, e.err ? e.err : "cannot encode");
    return -1;
  }
  lua_settop(L, top);
  return 0;
}

int gw_json_is_args(const char *json, size_t len) { return json && len >= 2 && json[0] == ' ' && json[1] == '['; }

void gw_json_lua_push_args_mt(lua_State *L) { luaL_getmetatable(L, ARGS_MT_KEY); }

void gw_json_lua_binset_add(lua_State *L, int idx) {
  idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
  lua_getfield(L, LUA_REGISTRYINDEX, BINSET_KEY);
  lua_pushvalue(L, idx);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

void gw_json_lua_binset_clear(lua_State *L) {
  lua_newtable(L);
  lua_setfield(L, LUA_REGISTRYINDEX, BINSET_KEY);
}

/* ---- the aivo.json module ------------------------------------------------------------ */

void gw_json_lua_setup(lua_State *L) {
  if (luaL_newmetatable(L, ARRAY_MT_KEY)) {
    lua_pushliteral(L, "array");
    lua_setfield(L, -2, "__jsontype");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, ARGS_MT_KEY)) {
    lua_pushliteral(L, "args");
    lua_setfield(L, -2, "__jsontype");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, BINARY_MT_KEY)) {
    lua_pushliteral(L, "binary");
    lua_setfield(L, -2, "__jsontype");
  }
  lua_pop(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, BINSET_KEY);
  int have = lua_istable(L, -1);
  lua_pop(L, 1);
  if (!have) gw_json_lua_binset_clear(L);
}

/* gw.args(...): an argument list (Socket.IO events and acks with several arguments). */
static int l_args(lua_State *L) {
  int n = lua_gettop(L);
  lua_createtable(L, n, 0);
  for (int i = 1; i <= n; i++) {
    lua_pushvalue(L, i);
    lua_rawseti(L, -2, i);
  }
  luaL_getmetatable(L, ARGS_MT_KEY);
  lua_setmetatable(L, -2);
  return 1;
}

/* gw.binary(bytes): a value sent as binary (a Socket.IO attachment, {"_binary"} in JSON). */
static int l_binary(lua_State *L) {
  luaL_checktype(L, 1, LUA_TSTRING);
  lua_createtable(L, 1, 0);
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, 1);
  luaL_getmetatable(L, BINARY_MT_KEY);
  lua_setmetatable(L, -2);
  return 1;
}

static int l_encode(lua_State *L) {
  luaL_checkany(L, 1);
  gw_strbuf_t b = {0};
  if (gw_json_lua_encode(L, 1, &b)) {
    gw_strbuf_free(&b);
    return lua_error(L);
  }
  lua_pushlstring(L, b.p, b.len);
  gw_strbuf_free(&b);
  return 1;
}

static int l_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  gw_strbuf_t b = {0};
  int rc = gw_json_lua_decode(L, s, len, &b);
  gw_strbuf_free(&b);
  if (rc) { /* nil, message: bad input from a client is not a programming error */
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
  }
  return 1;
}

int gw_json_lua_open(lua_State *L) {
  gw_json_lua_setup(L);
  lua_createtable(L, 0, 5);
  lua_pushcfunction(L, l_encode);
  lua_setfield(L, -2, "encode");
  lua_pushcfunction(L, l_decode);
  lua_setfield(L, -2, "decode");
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");
  luaL_getmetatable(L, ARRAY_MT_KEY);
  lua_setfield(L, -2, "array_mt");
  lua_newtable(L);
  luaL_getmetatable(L, ARRAY_MT_KEY);
  lua_setmetatable(L, -2);
  lua_setfield(L, -2, "empty_array");
  lua_pushcfunction(L, l_args);
  lua_setfield(L, -2, "args");
  lua_pushcfunction(L, l_binary);
  lua_setfield(L, -2, "binary");
  return 1;
}
