/* The libwebsockets side of Engine.IO at /socket.io/ (server_eio.c, which like server.c
 * includes libwebsockets): HTTP long-polling requests with CORS, the Engine.IO WebSocket
 * transport and the upgrade probe. server.c hands it every lws callback first. */
#ifndef GW_SERVER_EIO_H
#define GW_SERVER_EIO_H

#include <stddef.h>

struct lws;

/* Called first by server.c's protocol callback. slot is the per-wsi pointer server_eio.c
 * keeps (NULL when lws gives no per-wsi data). Returns 1 when the callback was a Socket.IO
 * one (*rc is then the callback's return value), 0 to let server.c handle it. */
/* Registers the links table with engineio.c (gw_server_new calls it). */
void gw_server_eio_register(void);
int gw_server_eio_callback(struct lws *wsi, int reason, void **slot, void *in, size_t len, int *rc);

#endif
