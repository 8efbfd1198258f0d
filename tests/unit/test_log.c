/* gw_log: client-supplied text in a message (a token's kid, a user agent, an event name)
 * can never start a new line or break out of the JSON string, in either format; and the
 * escaper on its own: controls, C1, line separators, bytes that are not UTF-8, cuts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "log.h"

static void test_escape_text(void) {
  char out[256];
  gw_log_escape("plain é ✓ \\ \"q\"", strlen("plain é ✓ \\ \"q\""), 0, out, sizeof out);
  CHECK_STR(out, "plain é ✓ \\ \"q\""); /* printable text, UTF-8 and quotes as they are */
  const char in[] = "a\nb\rc\td\x01" "e\x7f" "f\x1b[31m";
  gw_log_escape(in, sizeof in - 1, 0, out, sizeof out);
  CHECK_STR(out, "a\\nb\\rc\\td\\x01e\\x7ff\\x1b[31m");
  /* a NUL inside the length is escaped, not an end */
  gw_log_escape("x\0y", 3, 0, out, sizeof out);
  CHECK_STR(out, "x\\x00y");
  /* C1 NEL (U+0085), U+2028, and bytes that are not UTF-8 (a lone 0x9b is CSI) */
  const char c1[] = "n\xc2\x85l\xe2\x80\xa8s\x9b" "z\xff";
  gw_log_escape(c1, sizeof c1 - 1, 0, out, sizeof out);
  CHECK_STR(out, "n\\x85l\\u2028s\\x9bz\\xff");
  /* overlong and truncated sequences are not UTF-8 */
  gw_log_escape("\xc0\xaf\xe2\x82", 4, 0, out, sizeof out);
  CHECK_STR(out, "\\xc0\\xaf\\xe2\\x82");
}

static void test_escape_json(void) {
  char out[256];
  const char in[] = "q\"b\\n\nc\x01" "d\xc2\x85" "e\xff" "é";
  gw_log_escape(in, sizeof in - 1, 1, out, sizeof out);
  CHECK_STR(out, "q\\\"b\\\\n\\nc\\u0001d\\u0085e\\ufffdé");
}

/* The output is cut before a whole escape or character, never inside one. */
static void test_escape_cut(void) {
  char out[8];
  size_t n = gw_log_escape("abcde\n", 6, 0, out, sizeof out); /* "abcde\n" needs 7 + NUL = 8 */
  CHECK_STR(out, "abcde\\n");
  CHECK_EQ_INT(n, 7);
  n = gw_log_escape("abcdef\n", 7, 0, out, sizeof out); /* the escape does not fit: left out */
  CHECK_STR(out, "abcdef");
  n = gw_log_escape("abcde✓", strlen("abcde✓"), 0, out, 7);
  CHECK_STR(out, "abcde");
}

/* Runs gw_log with stderr sent to a file; returns what it wrote (free it). */
static char *logged(gw_log_format_t format, uint64_t conn, const char *msg) {
  fflush(stderr);
  FILE *f = tmpfile();
  int saved = dup(2);
  dup2(fileno(f), 2);
  gw_log_setup(GW_LOG_DEBUG, format);
  gw_log(GW_LOG_INFO, conn, "unauthorized: unknown_kid (no key has kid '%s')", msg);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  long n = ftell(f);
  rewind(f);
  char *s = calloc(1, (size_t)n + 1);
  if (fread(s, 1, (size_t)n, f) != (size_t)n) s[0] = 0;
  fclose(f);
  return s;
}

static int lines(const char *s) {
  int n = 0;
  for (; *s; s++) n += *s == '\n';
  return n;
}

static void test_no_forged_line(void) {
  const char *kid = "k1\n2026-01-01T00:00:00.000Z error forged\r\n{\"level\":\"error\"}";
  char *t = logged(GW_LOG_TEXT, 7, kid);
  CHECK_EQ_INT(lines(t), 1);
  CHECK_CONTAINS(t, " info  conn=7 unauthorized: unknown_kid (no key has kid 'k1\\n2026-01-01T00:00:00.000Z error forged\\r\\n{\"level\":\"error\"}')\n");
  free(t);
  char *j = logged(GW_LOG_JSON, 7, kid);
  CHECK_EQ_INT(lines(j), 1);
  CHECK_CONTAINS(j, "\"conn\":7,\"msg\":\"unauthorized: unknown_kid (no key has kid 'k1\\n2026-01-01T00:00:00.000Z error forged\\r\\n{\\\"level\\\":\\\"error\\\"}')\"}\n");
  free(j);
  gw_log_setup(GW_LOG_INFO, GW_LOG_TEXT);
}

int main(void) {
  test_escape_text();
  test_escape_json();
  test_escape_cut();
  test_no_forged_line();
  return check_done();
}
