/* Time and randomness for every layer (they were gateway.c's, which made the lowest files
 * depend on the top). */
#ifndef GW_CLOCK_H
#define GW_CLOCK_H

#include <stddef.h>

/* Monotonic milliseconds, read now (not the loop's cached time). */
double gw_clock_now_ms(void);
/* len bytes from the kernel's CSPRNG (getrandom). */
void gw_random_bytes(void *buf, size_t len);

#endif
