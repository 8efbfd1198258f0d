#include "json.h"

#include <stdint.h>
#include <string.h>

static const char hex[] = "0123456789abcdef";

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
/* a byte of w is zero / below n (n <= 128): exact as a yes-or-no for the whole word */
#define HAS_ZERO(w) (((w) - ONES) & ~(w) & HIGHS)
#define HAS_LESS(w, n) (((w) - ONES * (n)) & ~(w) & HIGHS)

size_t gw_json_plain_run(const char *s, size_t len) {
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t w;
    memcpy(&w, s + i, 8);
    if (HAS_LESS(w, 0x20) || HAS_ZERO(w ^ (ONES * '"')) || HAS_ZERO(w ^ (ONES * '\\'))) break;
  }
  for (; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == '"' || c == '\\') break;
  }
  return i;
}

size_t gw_json_escape(const char *s, size_t len, char *out, size_t cap) {
  size_t o = 0;
  if (cap < 3) {
    if (cap) out[0] = 0;
    return 0;
  }
  out[o++] = '"';
  for (size_t i = 0; i < len; i++) {
    /* a run that needs no escape, copied at once; scanned no further than the room left
     * (quote and NUL kept), so a long string cut short costs its output, not its length */
    size_t room = cap - o - 2;
    size_t run = gw_json_plain_run(s + i, len - i < room ? len - i : room);
    if (run > 1) {
      memcpy(out + o, s + i, run);
      o += run;
      i += run - 1;
      continue;
    }
    unsigned char c = (unsigned char)s[i];
    char esc[7];
    size_t n = 0;
    switch (c) {
      case '"': esc[n++] = '\\'; esc[n++] = '"'; break;
      case '\\': esc[n++] = '\\'; esc[n++] = '\\'; break;
      case '\n': esc[n++] = '\\'; esc[n++] = 'n'; break;
      case '\r': esc[n++] = '\\'; esc[n++] = 'r'; break;
      case '\t': esc[n++] = '\\'; esc[n++] = 't'; break;
      default:
        if (c < 0x20) {
          esc[n++] = '\\'; esc[n++] = 'u'; esc[n++] = '0'; esc[n++] = '0';
          esc[n++] = hex[c >> 4]; esc[n++] = hex[c & 15];
        } else {
          esc[n++] = (char)c;
        }
    }
    if (o + n + 2 > cap) { /* keep room for the closing quote and NUL */
      /* and never end inside a UTF-8 sequence: the result goes into text frames */
      if ((c & 0xC0) == 0x80) { /* c continues a sequence: drop its start if it has one */
        size_t k = o;
        while (k > 1 && ((unsigned char)out[k - 1] & 0xC0) == 0x80) k--;
        if (k > 1 && (unsigned char)out[k - 1] >= 0xC0) o = k - 1;
      }
      break;
    }
    for (size_t k = 0; k < n; k++) out[o++] = esc[k];
  }
  out[o++] = '"';
  out[o] = 0;
  return o;
}

size_t gw_json_int(char *out, long long v) {
  char tmp[GW_JSON_INT_MAX];
  size_t n = 0, o = 0;
  unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
  do {
    tmp[n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0) out[o++] = '-';
  while (n) out[o++] = tmp[--n];
  return o;
}
