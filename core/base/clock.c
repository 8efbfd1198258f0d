#include "clock.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/types.h>
#include <time.h>

double gw_clock_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

void gw_random_bytes(void *buf, size_t len) {
  unsigned char *p = buf;
  while (len) {
    ssize_t n = getrandom(p, len, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      for (size_t i = 0; i < len; i++) p[i] = (unsigned char)rand(); /* never reached on Linux >= 3.17 */
      return;
    }
    p += (size_t)n;
    len -= (size_t)n;
  }
}
