/* Fuzz target: JWT verification as a client reaches it (core/proto/auth.c gw_auth_verify), with a
 * fixed key set: an HS256 secret without kid and an HS512 one with kid "k1", issuer and
 * audience configured. Two kinds of input, by the first byte:
 *  - even: the rest is token text, as sent (Bearer header, ?token=, cookie), plus the
 *    Bearer and Cookie readers on the same text;
 *  - odd: the rest is "<header JSON>\n<claims JSON>", signed here with the HS256 secret, so
 *    the header checks (alg, kid, crit, ...) and the claims checks (exp, nbf, iat, iss, aud)
 *    after a good signature are reached.
 * Every token is refused with a known reason code and a terminated detail, or accepted with
 * a JSON object for the claims; nothing crashes or reads past the token. */
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth.h"
#include "fuzz_common.h"

#define SECRET "fuzz-secret-0123456789abcdef0123456789abcdef"
#define SECRET_K1 "fuzz-secret-k1-0123456789abcdef0123456789abcdef0123456789abcdef"
#define NOW 1700000000.0

static gw_auth_t *keys(void) {
  static gw_auth_t *a;
  if (a) return a;
  char err[256];
  a = gw_auth_new();
  FUZZ_ASSERT(a != NULL, "gw_auth_new");
  FUZZ_ASSERT(gw_auth_add_key(a, NULL, "HS256", SECRET, strlen(SECRET), "fuzz", err, sizeof err) == 0, err);
  FUZZ_ASSERT(gw_auth_add_key(a, "k1", "HS512", SECRET_K1, strlen(SECRET_K1), "fuzz", err, sizeof err) == 0, err);
  gw_auth_settings_t *s = gw_auth_settings(a);
  s->leeway_s = 30;
  s->issuer = strdup("https://issuer.test");
  s->audience = strdup("aivo");
  return a;
}

static size_t b64url(const unsigned char *in, size_t n, char *out) {
  static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t o = 0, i = 0;
  for (; i + 2 < n; i += 3) {
    unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
    out[o++] = A[v >> 18];
    out[o++] = A[(v >> 12) & 63];
    out[o++] = A[(v >> 6) & 63];
    out[o++] = A[v & 63];
  }
  if (i < n) {
    unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0);
    out[o++] = A[v >> 18];
    out[o++] = A[(v >> 12) & 63];
    if (i + 1 < n) out[o++] = A[(v >> 6) & 63];
  }
  out[o] = 0;
  return o;
}

static void verify(const char *token) {
  gw_auth_claims_t c;
  gw_auth_status_t s = gw_auth_verify(keys(), token, NOW, &c);
  FUZZ_ASSERT(s >= GW_AUTH_OK && s < GW_AUTH_STATUS_COUNT, "an unknown status");
  const char *code = gw_auth_status_code(s);
  FUZZ_ASSERT(code && *code, "a status without a reason code");
  if (s == GW_AUTH_OK) {
    FUZZ_ASSERT(c.json && c.json[0] == '{', "accepted claims are not a JSON object");
  } else {
    FUZZ_ASSERT(c.json == NULL, "a refused token left claims");
    FUZZ_ASSERT(memchr(c.detail, 0, sizeof c.detail) != NULL, "detail not terminated");
  }
  gw_auth_claims_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 16384) return 0;
  const char *in = (const char *)data + 1;
  size_t n = size - 1;
  if ((data[0] & 1) == 0) {
    char *tok = malloc(n + 1);
    memcpy(tok, in, n);
    tok[n] = 0;
    verify(tok);
    const char *b = gw_auth_bearer(tok);
    FUZZ_ASSERT(!b || (b >= tok && b <= tok + n), "bearer token outside the header");
    char cookie[512];
    if (gw_auth_cookie(tok, "token", cookie, sizeof cookie) == 0)
      FUZZ_ASSERT(strlen(cookie) < sizeof cookie, "cookie overran its buffer");
    free(tok);
    return 0;
  }
  const char *nl = memchr(in, '\n', n);
  if (!nl) return 0;
  size_t hlen = (size_t)(nl - in), clen = n - hlen - 1;
  char *tok = malloc(2 * (n + 3) + 100);
  size_t o = b64url((const unsigned char *)in, hlen, tok);
  tok[o++] = '.';
  o += b64url((const unsigned char *)nl + 1, clen, tok + o);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned maclen = 0;
  HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (const unsigned char *)tok, o, mac, &maclen);
  tok[o++] = '.';
  b64url(mac, maclen, tok + o);
  verify(tok);
  free(tok);
  return 0;
}
