/* The listening socket, owned by the gateway rather than by lws: it binds exactly the
 * address asked for (IPv4 or IPv6), sets SO_REUSEPORT before bind when asked (lws 4.1
 * cannot), reports a taken port as an error, and can stop accepting on drain by closing.
 * Accepted sockets are handed to a callback (the server adopts them into lws). */
#ifndef GW_LISTENER_H
#define GW_LISTENER_H

#include <stddef.h>

#include "loop.h"

typedef struct gw_listener gw_listener_t;
typedef void (*gw_accept_cb)(int fd, void *ud);

gw_listener_t *gw_listener_new(gw_loop_t *loop, const char *host, int port, int reuse_port,
                               gw_accept_cb cb, void *ud, char *err, size_t errlen);
int gw_listener_port(const gw_listener_t *l);
/* Closes the socket: new connections are refused by the kernel from now on. */
void gw_listener_close(gw_listener_t *l);
void gw_listener_free(gw_listener_t *l);

#endif
