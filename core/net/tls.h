/* TLS certificates (OpenSSL): checked before the gateway starts — missing, unreadable, not
 * PEM, expired or not yet valid, or a key that does not match refuses to start with the
 * file named — and reloaded on SIGHUP without dropping connections: every new handshake
 * uses the current certificate, and a bad new one keeps the old one. lws owns the TLS
 * sessions (server.c); this file only owns the certificate and key. */
#ifndef GW_TLS_H
#define GW_TLS_H

#include <stddef.h>

typedef struct gw_tls gw_tls_t;

/* Loads and checks cert_path (a PEM certificate, optionally followed by its chain) and
 * key_path (its PEM private key, unencrypted). NULL with err naming the file and the fault. */
gw_tls_t *gw_tls_load(const char *cert_path, const char *key_path, char *err, size_t errlen);
void gw_tls_free(gw_tls_t *t);

/* Puts t in charge of the certificate of ssl_ctx (an SSL_CTX *): TLS 1.2 at least, and every
 * handshake served with t's current certificate. 0 or -1. */
int gw_tls_attach(gw_tls_t *t, void *ssl_ctx, char *err, size_t errlen);

/* Reads the same two files again; when they pass every check they serve the next
 * handshakes, else the old certificate stays and err says why. 0 or -1. */
int gw_tls_reload(gw_tls_t *t, char *err, size_t errlen);

/* "CN=example.com, expires 2026-01-31 (89 days)" for the log. */
const char *gw_tls_describe(gw_tls_t *t);

#endif
