/* Base64 (RFC 4648, standard alphabet, with padding): binary Engine.IO packets on HTTP
 * long-polling ("b" + base64) and the JSON form of a binary value ({"_binary": "..."}). */
#ifndef GW_BASE64_H
#define GW_BASE64_H

#include <stddef.h>

/* Encoded length of n bytes. */
#define GW_BASE64_LEN(n) (4 * (((n) + 2) / 3))
/* Largest decoded length of n base64 characters. */
#define GW_BASE64_DECODED_MAX(n) (3 * ((n) / 4) + 3)

/* Writes GW_BASE64_LEN(len) characters (no NUL) and returns that count. */
size_t gw_base64_encode(const unsigned char *in, size_t len, char *out);
/* Decodes in[0..len) into out (room for GW_BASE64_DECODED_MAX(len)); 0 and *outlen, or -1
 * when it is not base64 (bad character, bad length, bad padding). */
int gw_base64_decode(const char *in, size_t len, unsigned char *out, size_t *outlen);
/* A random id: raw_len random bytes in the URL-safe alphabet, NUL-terminated (out needs
 * GW_BASE64_LEN(raw_len) + 1 bytes). Engine.IO sids, Socket.IO socket ids. */
void gw_base64url_random(char *out, size_t raw_len);

#endif
