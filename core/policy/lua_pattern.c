#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include "lua_pattern.h"

#include <stddef.h>
#include <string.h>

#include <luajit-2.1/lauxlib.h>

#include "lua_vm.h"

/* Why a matcher of our own rather than limits on pattern and subject sizes: a size limit
 * either refuses real patterns or lets a slow one through (three ".-" over 600 bytes took
 * 33 s), and a watchdog cannot stop C code that has no safe point. Counting steps bounds
 * the work exactly, with the budget operators already set (lua.instruction_budget), plus
 * the call's wall-clock deadline. One step ~ one Lua instruction in cost. */

#define MAX_CAPTURES 32
#define MAX_DEPTH 200 /* recursion of the matcher (nested quantifiers and captures) */
#define CHARGE_EVERY 1024
#define CAP_UNFINISHED (-1)
#define CAP_POSITION (-2)
#define SPECIALS "^$*+?.([%-"

typedef struct {
  const char *src_init, *src_end, *p_end;
  lua_State *L;
  int level, depth;
  unsigned steps; /* not yet charged */
  struct {
    const char *init;
    ptrdiff_t len;
  } capture[MAX_CAPTURES];
} match_state_t;

static void step(match_state_t *ms) {
  if (++ms->steps >= CHARGE_EVERY) {
    unsigned n = ms->steps;
    ms->steps = 0;
    gw_lua_vm_charge(ms->L, n);
  }
}

static void flush(match_state_t *ms) {
  if (ms->steps) gw_lua_vm_charge(ms->L, ms->steps);
  ms->steps = 0;
}

/* ASCII classes, as LuaJIT's (locale-independent) character tables define them. */
static int is_lower(int c) { return c >= 'a' && c <= 'z'; }
static int is_upper(int c) { return c >= 'A' && c <= 'Z'; }
static int is_alpha(int c) { return is_lower(c) || is_upper(c); }
static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_alnum(int c) { return is_alpha(c) || is_digit(c); }
static int is_space(int c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
static int is_cntrl(int c) { return c < 32 || c == 127; }
static int is_punct(int c) { return c > 32 && c < 127 && !is_alnum(c); }
static int is_xdigit(int c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
static int to_lower(int c) { return is_upper(c) ? c + 32 : c; }

static int class_matches(int c, int cl) {
  int r;
  switch (to_lower(cl)) {
  case 'a': r = is_alpha(c); break;
  case 'c': r = is_cntrl(c); break;
  case 'd': r = is_digit(c); break;
  case 'l': r = is_lower(c); break;
  case 'p': r = is_punct(c); break;
  case 's': r = is_space(c); break;
  case 'u': r = is_upper(c); break;
  case 'w': r = is_alnum(c); break;
  case 'x': r = is_xdigit(c); break;
  case 'z': r = c == 0; break;
  default: return cl == c; /* %. %% %] ...: the character itself */
  }
  return is_upper(cl) ? !r : r;
}

/* p at '[', last at the closing ']'. */
static int set_matches(int c, const char *p, const char *last) {
  int yes = 1;
  if (p[1] == '^') {
    yes = 0;
    p++;
  }
  while (++p < last) {
    if (*p == '%') {
      p++;
      if (class_matches(c, (unsigned char)*p)) return yes;
    } else if (p[1] == '-' && p + 2 < last) {
      p += 2;
      if ((unsigned char)p[-2] <= c && c <= (unsigned char)*p) return yes;
    } else if ((unsigned char)*p == c) {
      return yes;
    }
  }
  return !yes;
}

/* The end of the single-character class starting at p. */
static const char *class_end(match_state_t *ms, const char *p) {
  char c = *p++;
  if (c == '%') {
    if (p >= ms->p_end) luaL_error(ms->L, "malformed pattern (ends with '%%')");
    return p + 1;
  }
  if (c == '[') {
    if (p < ms->p_end && *p == '^') p++;
    do { /* the first character is part of the set even when it is ']' */
      if (p >= ms->p_end) luaL_error(ms->L, "malformed pattern (missing ']')");
      c = *p++;
      if (c == '%' && p < ms->p_end) p++;
    } while (p >= ms->p_end || *p != ']');
    return p + 1;
  }
  return p;
}

static int single_matches(match_state_t *ms, const char *s, const char *p, const char *ep) {
  if (s >= ms->src_end) return 0;
  int c = (unsigned char)*s;
  switch (*p) {
  case '.': return 1;
  case '%': return class_matches(c, (unsigned char)p[1]);
  case '[': return set_matches(c, p, ep - 1);
  default: return (unsigned char)*p == c;
  }
}

static const char *do_match(match_state_t *ms, const char *s, const char *p);

static const char *match_balance(match_state_t *ms, const char *s, const char *p) {
  if (p + 1 >= ms->p_end) luaL_error(ms->L, "unbalanced pattern");
  if (s >= ms->src_end || *s != *p) return NULL;
  char open = p[0], close = p[1];
  int depth = 1;
  while (++s < ms->src_end) {
    step(ms);
    if (*s == close) {
      if (--depth == 0) return s + 1;
    } else if (*s == open) {
      depth++;
    }
  }
  return NULL;
}

static const char *max_expand(match_state_t *ms, const char *s, const char *p, const char *ep) {
  ptrdiff_t i = 0;
  while (single_matches(ms, s + i, p, ep)) {
    i++;
    step(ms);
  }
  for (; i >= 0; i--) { /* longest first, then give back one at a time */
    const char *r = do_match(ms, s + i, ep + 1);
    if (r) return r;
    step(ms);
  }
  return NULL;
}

static const char *min_expand(match_state_t *ms, const char *s, const char *p, const char *ep) {
  for (;;) {
    const char *r = do_match(ms, s, ep + 1);
    if (r) return r;
    if (!single_matches(ms, s, p, ep)) return NULL;
    s++;
    step(ms);
  }
}

static const char *start_capture(match_state_t *ms, const char *s, const char *p, ptrdiff_t what) {
  if (ms->level >= MAX_CAPTURES) luaL_error(ms->L, "too many captures");
  ms->capture[ms->level].init = s;
  ms->capture[ms->level].len = what;
  ms->level++;
  const char *r = do_match(ms, s, p);
  if (!r) ms->level--;
  return r;
}

static const char *end_capture(match_state_t *ms, const char *s, const char *p) {
  int l = ms->level - 1;
  while (l >= 0 && ms->capture[l].len != CAP_UNFINISHED) l--;
  if (l < 0) luaL_error(ms->L, "invalid pattern capture");
  ms->capture[l].len = s - ms->capture[l].init;
  const char *r = do_match(ms, s, p);
  if (!r) ms->capture[l].len = CAP_UNFINISHED;
  return r;
}

static int capture_index(match_state_t *ms, int c) {
  int l = c - '1';
  if (l < 0 || l >= ms->level || ms->capture[l].len == CAP_UNFINISHED)
    luaL_error(ms->L, "invalid capture index");
  return l;
}

static const char *match_capture(match_state_t *ms, const char *s, int c) {
  int l = capture_index(ms, c);
  size_t len = (size_t)ms->capture[l].len;
  if ((size_t)(ms->src_end - s) >= len && memcmp(ms->capture[l].init, s, len) == 0) return s + len;
  return NULL;
}

static const char *match_body(match_state_t *ms, const char *s, const char *p) {
  for (;;) {
    step(ms);
    if (p >= ms->p_end) return s;
    switch (*p) {
    case '(':
      if (p + 1 < ms->p_end && p[1] == ')') return start_capture(ms, s, p + 2, CAP_POSITION);
      return start_capture(ms, s, p + 1, CAP_UNFINISHED);
    case ')':
      return end_capture(ms, s, p + 1);
    case '%':
      if (p + 1 >= ms->p_end) luaL_error(ms->L, "malformed pattern (ends with '%%')");
      if (p[1] == 'b') {
        s = match_balance(ms, s, p + 2);
        if (!s) return NULL;
        p += 4;
        continue;
      }
      if (p[1] == 'f') {
        p += 2;
        if (p >= ms->p_end || *p != '[') luaL_error(ms->L, "missing '[' after '%%f' in pattern");
        const char *ep = class_end(ms, p);
        int prev = s == ms->src_init ? 0 : (unsigned char)s[-1];
        int cur = s < ms->src_end ? (unsigned char)*s : 0;
        if (set_matches(prev, p, ep - 1) || !set_matches(cur, p, ep - 1)) return NULL;
        p = ep;
        continue;
      }
      if (is_digit((unsigned char)p[1])) {
        s = match_capture(ms, s, (unsigned char)p[1]);
        if (!s) return NULL;
        p += 2;
        continue;
      }
      break;
    case '$':
      if (p + 1 == ms->p_end) return s == ms->src_end ? s : NULL;
      break;
    default:
      break;
    }
    const char *ep = class_end(ms, p);
    char suffix = ep < ms->p_end ? *ep : 0;
    int m = single_matches(ms, s, p, ep);
    switch (suffix) {
    case '?': {
      const char *r;
      if (m && (r = do_match(ms, s + 1, ep + 1))) return r;
      p = ep + 1;
      continue;
    }
    case '*': return max_expand(ms, s, p, ep);
    case '+': return m ? max_expand(ms, s + 1, p, ep) : NULL;
    case '-': return min_expand(ms, s, p, ep);
    default:
      if (!m) return NULL;
      s++;
      p = ep;
      continue;
    }
  }
}

static const char *do_match(match_state_t *ms, const char *s, const char *p) {
  if (++ms->depth > MAX_DEPTH) luaL_error(ms->L, "pattern too complex");
  const char *r = match_body(ms, s, p);
  ms->depth--;
  return r;
}

static void push_capture(match_state_t *ms, int i, const char *s, const char *e) {
  if (i >= ms->level) {
    if (i != 0) luaL_error(ms->L, "invalid capture index");
    lua_pushlstring(ms->L, s, (size_t)(e - s)); /* no captures: the whole match */
    return;
  }
  ptrdiff_t l = ms->capture[i].len;
  if (l == CAP_UNFINISHED) luaL_error(ms->L, "unfinished capture");
  if (l == CAP_POSITION) lua_pushinteger(ms->L, ms->capture[i].init - ms->src_init + 1);
  else lua_pushlstring(ms->L, ms->capture[i].init, (size_t)l);
}

static int push_captures(match_state_t *ms, const char *s, const char *e) {
  int n = ms->level == 0 && s ? 1 : ms->level;
  luaL_checkstack(ms->L, n, "too many captures");
  for (int i = 0; i < n; i++) push_capture(ms, i, s, e);
  return n;
}

static void init_state(match_state_t *ms, lua_State *L, const char *s, size_t ls, const char *p, size_t lp) {
  ms->L = L;
  ms->src_init = s;
  ms->src_end = s + ls;
  ms->p_end = p + lp;
  ms->level = ms->depth = 0;
  ms->steps = 0;
}

/* 1-based init (negative: from the end) -> 0-based offset clamped to [0, len]. */
static size_t start_offset(lua_State *L, int arg, size_t len) {
  lua_Integer i = luaL_optinteger(L, arg, 1);
  if (i < 0) i += (lua_Integer)len;
  else i--;
  if (i < 0) i = 0;
  if ((size_t)i > len) i = (lua_Integer)len;
  return (size_t)i;
}

static int has_specials(const char *p, size_t lp) {
  for (size_t i = 0; i < lp; i++)
    if (strchr(SPECIALS, p[i]) && p[i]) return 1;
  return 0;
}

static int find_aux(lua_State *L, int find) {
  size_t ls, lp;
  const char *s = luaL_checklstring(L, 1, &ls);
  const char *p = luaL_checklstring(L, 2, &lp);
  size_t init = start_offset(L, 3, ls);
  gw_lua_vm_charge(L, 0); /* a call already over its budget or deadline stops here */
  if (find && (lua_toboolean(L, 4) || !has_specials(p, lp))) {
    /* a plain search: memmem is linear (a naive search is quadratic) */
    const char *q = memmem(s + init, ls - init, p, lp);
    if (q) {
      lua_pushinteger(L, q - s + 1);
      lua_pushinteger(L, (lua_Integer)(q - s + lp));
      return 2;
    }
  } else {
    match_state_t ms;
    const char *from = s + init;
    int anchor = lp > 0 && *p == '^';
    if (anchor) {
      p++;
      lp--;
    }
    init_state(&ms, L, s, ls, p, lp);
    do {
      ms.level = ms.depth = 0;
      const char *e = do_match(&ms, from, p);
      if (e) {
        flush(&ms);
        if (find) {
          lua_pushinteger(L, from - s + 1);
          lua_pushinteger(L, e - s);
          return push_captures(&ms, NULL, NULL) + 2;
        }
        return push_captures(&ms, from, e);
      }
      step(&ms);
    } while (from++ < ms.src_end && !anchor);
    flush(&ms);
  }
  lua_pushnil(L);
  return 1;
}

static int l_find(lua_State *L) { return find_aux(L, 1); }
static int l_match(lua_State *L) { return find_aux(L, 0); }

static int gmatch_next(lua_State *L) {
  size_t ls, lp;
  const char *s = lua_tolstring(L, lua_upvalueindex(1), &ls);
  const char *p = lua_tolstring(L, lua_upvalueindex(2), &lp);
  size_t pos = (size_t)lua_tointeger(L, lua_upvalueindex(3));
  match_state_t ms;
  init_state(&ms, L, s, ls, p, lp);
  for (const char *from = s + pos; from <= ms.src_end; from++) {
    ms.level = ms.depth = 0;
    const char *e = do_match(&ms, from, p);
    if (e) {
      flush(&ms);
      lua_Integer next = e - s;
      if (e == from) next++; /* an empty match: move on by one */
      lua_pushinteger(L, next);
      lua_replace(L, lua_upvalueindex(3));
      return push_captures(&ms, from, e);
    }
    step(&ms);
  }
  flush(&ms);
  return 0;
}

static int l_gmatch(lua_State *L) {
  luaL_checkstring(L, 1);
  luaL_checkstring(L, 2);
  lua_settop(L, 2);
  lua_pushinteger(L, 0);
  lua_pushcclosure(L, gmatch_next, 3);
  return 1;
}

static void add_replacement(match_state_t *ms, luaL_Buffer *b, const char *s, const char *e) {
  lua_State *L = ms->L;
  switch (lua_type(L, 3)) {
  case LUA_TNUMBER:
  case LUA_TSTRING: {
    size_t l;
    const char *r = lua_tolstring(L, 3, &l);
    for (size_t i = 0; i < l; i++) {
      step(ms);
      if (r[i] != '%' || i + 1 >= l) {
        luaL_addchar(b, r[i]);
        continue;
      }
      i++;
      if (!is_digit((unsigned char)r[i])) {
        luaL_addchar(b, r[i]); /* "%%" and any other escaped character */
      } else if (r[i] == '0') {
        luaL_addlstring(b, s, (size_t)(e - s));
        ms->steps += (unsigned)((e - s) / 16);
      } else {
        push_capture(ms, r[i] - '1', s, e);
        luaL_addvalue(b);
      }
    }
    return;
  }
  case LUA_TFUNCTION: {
    flush(ms);
    lua_pushvalue(L, 3);
    int n = push_captures(ms, s, e);
    lua_call(L, n, 1);
    break;
  }
  default: /* a table */
    push_capture(ms, 0, s, e);
    lua_gettable(L, 3);
    break;
  }
  if (!lua_toboolean(L, -1)) { /* nil or false: keep the original text */
    lua_pop(L, 1);
    lua_pushlstring(L, s, (size_t)(e - s));
  } else if (!lua_isstring(L, -1)) {
    luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
  }
  luaL_addvalue(b);
}

static int l_gsub(lua_State *L) {
  size_t ls, lp;
  const char *src = luaL_checklstring(L, 1, &ls);
  const char *p = luaL_checklstring(L, 2, &lp);
  int tr = lua_type(L, 3);
  lua_Integer max_n = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
  luaL_argcheck(L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION || tr == LUA_TTABLE, 3,
                "string/function/table expected");
  gw_lua_vm_charge(L, 0);
  int anchor = lp > 0 && *p == '^';
  if (anchor) {
    p++;
    lp--;
  }
  match_state_t ms;
  init_state(&ms, L, src, ls, p, lp);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  lua_Integer n = 0;
  while (n < max_n) {
    ms.level = ms.depth = 0;
    const char *e = do_match(&ms, src, p);
    if (e) {
      n++;
      add_replacement(&ms, &b, src, e);
    }
    if (e && e > src) src = e;
    else if (src < ms.src_end) luaL_addchar(&b, *src++);
    else break;
    if (anchor) break;
    step(&ms);
  }
  flush(&ms);
  luaL_addlstring(&b, src, (size_t)(ms.src_end - src));
  luaL_pushresult(&b);
  lua_pushinteger(L, n);
  return 2;
}

void gw_lua_pattern_install(lua_State *L, int idx) {
  static const luaL_Reg fns[] = {
      {"find", l_find}, {"match", l_match}, {"gmatch", l_gmatch}, {"gsub", l_gsub}, {NULL, NULL}};
  idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
  for (const luaL_Reg *f = fns; f->name; f++) {
    lua_pushcfunction(L, f->func);
    lua_setfield(L, idx, f->name);
  }
}
