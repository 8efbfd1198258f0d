/* RFC 6455 §5.1: a server must close a connection whose client sends an unmasked frame
 * (1002). Debian's libwebsockets 4.1.6 keeps the mask bit in a private field and never
 * checks it on the server side, and no API exposes it. So the gateway watches the bytes lws
 * reads: recv() and SSL_read() are interposed (frame_guard.c defines them; the dynamic
 * linker binds libwebsockets' calls to the executable's definitions) and every watched
 * socket's stream is followed, headers only: the HTTP head (and a Content-Length body, for
 * kept-alive requests), then after an upgrade head every frame header, skipping payloads.
 * A frame header without the mask bit marks the socket and is cut from the read, with what
 * follows it, so lws handles the complete frames before it and never the bad one; the server
 * then closes with 1002 at its writeable callback (asked for at once) or at the next message
 * callback, whichever comes first.
 *
 * Cost: a table lookup per read, and a few bytes of state per socket; payload bytes are
 * never looked at. Not covered: a request with a chunked body on a kept-alive connection
 * stops the watch for that connection (lws 4.1 does not read chunked bodies anyway). */
#ifndef GW_FRAME_GUARD_H
#define GW_FRAME_GUARD_H

#include <stddef.h>

/* Called with the owner registered by gw_frame_guard_bind when its socket is marked. */
typedef void (*gw_frame_guard_cb)(void *owner);

void gw_frame_guard_set_callback(gw_frame_guard_cb cb);
/* A new client socket: its stream starts with an HTTP request head; tls: followed through
 * SSL_read, plain: through recv. 0, or -1 (out of memory: the socket is not watched). */
int gw_frame_guard_watch(int fd, int tls);
/* The WebSocket on fd (for the callback); NULL forgets it. */
void gw_frame_guard_bind(int fd, void *owner);
/* The socket is closed: its state is dropped. */
void gw_frame_guard_forget(int fd);
/* 1 when an unmasked client frame came on fd. */
int gw_frame_guard_violated(int fd);
/* 1 when, besides, the frames read before it have been handed to lws: a message callback
 * now is for bytes after the bad frame. (The read that finds the bad frame returns only the
 * complete frames before it, so those are handled; the bad frame never reaches lws.) */
int gw_frame_guard_armed(int fd);
/* The frames before the bad one are handled (the server knows it at its writeable callback). */
void gw_frame_guard_arm(int fd);
/* Follows n bytes read from fd whatever its kind (the interposed reads call it for the
 * right kind; exposed for the unit test); returns n, or the count of bytes before the
 * first unmasked frame of this read (0: it started in an earlier read, or at the start). */
size_t gw_frame_guard_feed(int fd, const unsigned char *p, size_t n);
/* At exit, after the last socket: the table goes. */
void gw_frame_guard_shutdown(void);
/* Sockets watched now. */
size_t gw_frame_guard_count(void);

#endif
