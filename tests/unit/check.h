/* A minimal check harness for the C unit tests: no framework, one header.
 * Every check counts; a failing one prints file:line and carries on, so one run shows
 * every broken behaviour. main() ends with `return check_done();`. */
#ifndef AIVO_TEST_CHECK_H
#define AIVO_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

static unsigned check_total, check_failed;

__attribute__((unused)) static int check_report(int ok, const char *file, int line,
                                                const char *what) {
  check_total++;
  if (!ok) {
    check_failed++;
    fprintf(stderr, "%s:%d: FAILED: %s\n", file, line, what);
  }
  return ok;
}

__attribute__((unused)) static int check_int(long long a, long long b, const char *file,
                                             int line, const char *ea, const char *eb) {
  check_total++;
  if (a == b) return 1;
  check_failed++;
  fprintf(stderr, "%s:%d: FAILED: %s == %s (got %lld, want %lld)\n", file, line, ea, eb, a, b);
  return 0;
}

__attribute__((unused)) static int check_str(const char *a, const char *b, const char *file,
                                             int line, const char *ea, const char *eb) {
  check_total++;
  if (a && b && strcmp(a, b) == 0) return 1;
  check_failed++;
  fprintf(stderr, "%s:%d: FAILED: %s == %s (got \"%s\", want \"%s\")\n", file, line, ea, eb,
          a ? a : "(null)", b ? b : "(null)");
  return 0;
}

/* hay contains needle: error messages are checked by their meaningful part only. */
__attribute__((unused)) static int check_contains(const char *hay, const char *needle,
                                                  const char *file, int line, const char *eh) {
  check_total++;
  if (hay && needle && strstr(hay, needle)) return 1;
  check_failed++;
  fprintf(stderr, "%s:%d: FAILED: %s contains \"%s\" (got \"%s\")\n", file, line, eh,
          needle ? needle : "(null)", hay ? hay : "(null)");
  return 0;
}

/* Each macro evaluates to 1 on success, so a test can skip what depends on a failed check. */
#define CHECK(cond) check_report(!!(cond), __FILE__, __LINE__, #cond)
#define CHECK_EQ_INT(a, b) \
  check_int((long long)(a), (long long)(b), __FILE__, __LINE__, #a, #b)
#define CHECK_STR(a, b) check_str((a), (b), __FILE__, __LINE__, #a, #b)
#define CHECK_CONTAINS(hay, needle) check_contains((hay), (needle), __FILE__, __LINE__, #hay)

__attribute__((unused)) static int check_done(void) {
  printf("%u checks, %u failed\n", check_total, check_failed);
  return check_failed ? 1 : 0;
}

#endif
