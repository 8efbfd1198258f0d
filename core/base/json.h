/* The little JSON the C core writes itself: string escaping for event names, error
 * messages and log lines, and integers. Lua values go through json_lua.c. */
#ifndef GW_JSON_H
#define GW_JSON_H

#include <stddef.h>

/* Worst-case size of the quoted, escaped form of a string of len bytes. */
#define GW_JSON_ESCAPED_MAX(len) ((len) * 6 + 3)

/* The length of the longest prefix of s[0..len) that a JSON string holds as it is (no '"',
 * no '\\', no control character), found 8 bytes at a time: long strings are mostly that. */
size_t gw_json_plain_run(const char *s, size_t len);

/* Writes the quoted JSON string for s[0..len) into out (NUL-terminated, truncated to fit
 * cap) and returns its length. Control characters become \u00XX; bytes >= 0x80 are kept
 * (frames are checked as UTF-8 on the way in). */
size_t gw_json_escape(const char *s, size_t len, char *out, size_t cap);

/* The decimal digits of v (no NUL; out holds at least GW_JSON_INT_MAX bytes) and their
 * count: numbers on the message path (ack ids, integral values) without snprintf. */
#define GW_JSON_INT_MAX 21
size_t gw_json_int(char *out, long long v);

#endif
