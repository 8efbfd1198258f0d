/* JWT verification on top of libjwt 1.10.2, which must never be trusted with a decision:
 * it takes the algorithm from the token (an HS256 token signed with an RSA public key's PEM
 * text verifies against that PEM; HS512 verifies where HS256 was meant), accepts any token
 * unverified when the key is NULL or empty, and checks no claim. Here every key carries the
 * algorithm pinned in configuration and the token's alg must equal it before libjwt is
 * given the key; empty keys are configuration errors; exp/nbf/iat (numbers only), iss and
 * aud are checked in this file. */
#define _GNU_SOURCE /* memmem */
#include "auth.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jwt.h>
#include <luajit-2.1/lauxlib.h>
#include <luajit-2.1/lua.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "clock.h"
#include "errlist.h"
#include "log.h"

#define MAX_TOKEN 8192
#define MAX_KEY_FILE (1 << 20)

typedef enum { KT_HMAC, KT_RSA, KT_EC } key_type_t;

static const struct alg_info {
  const char *name;
  jwt_alg_t alg;
  key_type_t type;
  const char *curve;  /* ES*: the only curve allowed */
  size_t min_secret;  /* HS*: RFC 7518 wants at least the hash size; shorter only warns */
} ALGS[] = {
    {"HS256", JWT_ALG_HS256, KT_HMAC, NULL, 32}, {"HS384", JWT_ALG_HS384, KT_HMAC, NULL, 48},
    {"HS512", JWT_ALG_HS512, KT_HMAC, NULL, 64}, {"RS256", JWT_ALG_RS256, KT_RSA, NULL, 0},
    {"RS384", JWT_ALG_RS384, KT_RSA, NULL, 0},   {"RS512", JWT_ALG_RS512, KT_RSA, NULL, 0},
    {"ES256", JWT_ALG_ES256, KT_EC, "prime256v1", 0},
    {"ES384", JWT_ALG_ES384, KT_EC, "secp384r1", 0},
    {"ES512", JWT_ALG_ES512, KT_EC, "secp521r1", 0},
};
#define N_ALGS (sizeof ALGS / sizeof ALGS[0])
#define ALG_LIST "HS256, HS384, HS512, RS256, RS384, RS512, ES256, ES384, ES512"

typedef struct key {
  char *kid; /* NULL: verifies tokens without a kid */
  const struct alg_info *alg;
  unsigned char *key; /* NUL-terminated copy */
  size_t len;
} key_t_;

struct gw_auth {
  key_t_ *keys;
  size_t n;
  gw_auth_settings_t s;
};

static const char *const STATUS_CODES[GW_AUTH_STATUS_COUNT] = {
    "ok",           "token_missing", "token_malformed",     "alg_not_allowed",
    "unknown_kid",  "bad_signature", "token_expired",       "token_not_yet_valid",
    "bad_issuer",   "bad_audience",  "bad_claims",          "no_keys",
};

const char *gw_auth_status_code(gw_auth_status_t s) {
  return s < GW_AUTH_STATUS_COUNT ? STATUS_CODES[s] : "unauthorized";
}

static const struct alg_info *alg_by_name(const char *name) {
  for (size_t i = 0; name && i < N_ALGS; i++)
    if (strcmp(ALGS[i].name, name) == 0) return &ALGS[i];
  return NULL;
}

void gw_auth_claims_free(gw_auth_claims_t *c) {
  if (!c) return;
  free(c->json);
  c->json = NULL;
}

/* ---- key sets ------------------------------------------------------------------------- */

gw_auth_t *gw_auth_new(void) {
  gw_auth_t *a = calloc(1, sizeof *a);
  if (!a) return NULL;
  a->s.required = 1;
  a->s.leeway_s = 30;
  a->s.refresh_grace_s = 30;
  a->s.query = 1;
  return a;
}

static void free_origins(gw_auth_settings_t *s) {
  for (size_t i = 0; i < s->n_origins; i++) free(s->origins[i]);
  free(s->origins);
  s->origins = NULL;
  s->n_origins = 0;
}

void gw_auth_free(gw_auth_t *a) {
  if (!a) return;
  for (size_t i = 0; i < a->n; i++) {
    free(a->keys[i].kid);
    if (a->keys[i].key) OPENSSL_cleanse(a->keys[i].key, a->keys[i].len);
    free(a->keys[i].key);
  }
  free(a->keys);
  free(a->s.issuer);
  free(a->s.audience);
  free(a->s.cookie);
  free_origins(&a->s);
  free(a);
}

gw_auth_settings_t *gw_auth_settings(gw_auth_t *a) {
  static gw_auth_settings_t none = {.required = 1, .leeway_s = 30, .refresh_grace_s = 30};
  return a ? &a->s : &none; /* no key set: everything is refused (fail closed) */
}
size_t gw_auth_key_count(const gw_auth_t *a) { return a ? a->n : 0; }

/* Checks that a PEM public key fits the algorithm (RSA for RS*, EC on the right curve for
 * ES*); libjwt would otherwise fail only at the first token. */
static int check_public_key(const struct alg_info *ai, const void *key, size_t len,
                            const char *what, char *err, size_t errlen) {
  if (len > MAX_KEY_FILE) {
    snprintf(err, errlen, "%s: a public key file of %zu bytes is not a key", what, len);
    return -1;
  }
  BIO *bio = BIO_new_mem_buf(key, (int)len);
  EVP_PKEY *pk = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
  BIO_free(bio);
  if (!pk) {
    const char *hint = memmem(key, len, "CERTIFICATE-----", 16)
                           ? " (it is a certificate: extract its key with `openssl x509 -pubkey -noout -in FILE`)"
                       : memmem(key, len, "PRIVATE KEY-----", 16)
                           ? " (it is a private key: give the public key, `openssl pkey -pubout -in FILE`)"
                           : "";
    snprintf(err, errlen, "%s: not a PEM public key (-----BEGIN PUBLIC KEY-----) for %s%s", what,
             ai->name, hint);
    return -1;
  }
  int rc = 0, id = EVP_PKEY_get_base_id(pk);
  if (ai->type == KT_RSA && id != EVP_PKEY_RSA) {
    snprintf(err, errlen, "%s: %s needs an RSA public key, this is another key type", what, ai->name);
    rc = -1;
  } else if (ai->type == KT_RSA && EVP_PKEY_get_bits(pk) < 2048) {
    snprintf(err, errlen, "%s: a %d-bit RSA key is too weak for %s (at least 2048 bits)", what,
             EVP_PKEY_get_bits(pk), ai->name);
    rc = -1;
  } else if (ai->type == KT_EC) {
    char curve[64] = "";
    size_t cl = 0;
    if (id != EVP_PKEY_EC ||
        !EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, curve, sizeof curve, &cl) ||
        strcmp(curve, ai->curve) != 0) {
      snprintf(err, errlen, "%s: %s needs an EC public key on curve %s%s%s", what, ai->name,
               ai->curve, curve[0] ? ", this one is on " : "", curve);
      rc = -1;
    }
  }
  EVP_PKEY_free(pk);
  return rc;
}

int gw_auth_add_key(gw_auth_t *a, const char *kid, const char *alg, const void *key, size_t len,
                    const char *what, char *err, size_t errlen) {
  const struct alg_info *ai = alg_by_name(alg);
  if (!ai) {
    snprintf(err, errlen, "%s: algorithm '%s' is not one of " ALG_LIST "%s", what, alg ? alg : "",
             alg && strcasecmp(alg, "none") == 0 ? " (unsigned tokens are never accepted)" : "");
    return -1;
  }
  if (!key || len == 0) {
    /* libjwt verifies nothing with an empty key: never let one through */
    snprintf(err, errlen, "%s: the %s key is empty", what, ai->name);
    return -1;
  }
  if (ai->type == KT_HMAC) {
    if (memmem(key, len, "-----BEGIN", 10)) {
      snprintf(err, errlen,
               "%s: this %s secret is a PEM key; a public key used as an HMAC secret lets anyone "
               "who has it sign tokens. Pin RS*/ES* for a public key",
               what, ai->name);
      return -1;
    }
  } else if (check_public_key(ai, key, len, what, err, errlen)) {
    return -1;
  }
  const char *k = kid && *kid ? kid : NULL;
  for (size_t i = 0; i < a->n; i++) {
    if (k && a->keys[i].kid && strcmp(a->keys[i].kid, k) == 0) {
      snprintf(err, errlen, "%s: kid '%s' is used by two keys", what, k);
      return -1;
    }
  }
  key_t_ *nk = realloc(a->keys, (a->n + 1) * sizeof *nk);
  if (!nk) goto oom;
  a->keys = nk;
  key_t_ *e = &a->keys[a->n];
  memset(e, 0, sizeof *e);
  e->alg = ai;
  e->len = len;
  e->key = malloc(len + 1);
  e->kid = k ? strdup(k) : NULL;
  if (!e->key || (k && !e->kid)) {
    free(e->key);
    free(e->kid);
    goto oom;
  }
  memcpy(e->key, key, len);
  e->key[len] = 0;
  a->n++;
  return 0;
oom:
  snprintf(err, errlen, "%s: out of memory", what);
  return -1;
}

/* Reads a whole file (at most MAX_KEY_FILE bytes); NULL with err naming the file. */
static char *read_file(const char *path, size_t *len, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
    return NULL;
  }
  char *buf = malloc(MAX_KEY_FILE + 1);
  size_t n = buf ? fread(buf, 1, MAX_KEY_FILE + 1, f) : 0;
  int bad = !buf || ferror(f);
  fclose(f);
  if (bad || n > MAX_KEY_FILE) {
    snprintf(err, errlen, "%s: %s", path, !buf ? "out of memory" : n > MAX_KEY_FILE ? "too large for a key" : "read error");
    free(buf);
    return NULL;
  }
  buf[n] = 0;
  *len = n;
  return buf;
}

int gw_auth_add_key_file(gw_auth_t *a, const char *kid, const char *alg, const char *path,
                         char *err, size_t errlen) {
  size_t len = 0;
  char *buf = read_file(path, &len, err, errlen);
  if (!buf) return -1;
  const struct alg_info *ai = alg_by_name(alg);
  if (ai && ai->type == KT_HMAC)
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) len--; /* `echo secret > file` */
  int rc = gw_auth_add_key(a, kid, alg, buf, len, path, err, errlen);
  OPENSSL_cleanse(buf, len);
  free(buf);
  return rc;
}

/* ---- verification --------------------------------------------------------------------- */

static int b64url_part(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!(isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '_')) return 0;
  return 1;
}

/* A JSON number (as libjwt dumps one grant) -> d. -1 for anything else (strings too). */
static int json_number(const char *j, double *d) {
  if (!j || !(*j == '-' || isdigit((unsigned char)*j))) return -1;
  char *end;
  errno = 0;
  double v = strtod(j, &end);
  if (end == j || *end || errno == ERANGE || !isfinite(v)) return -1;
  *d = v;
  return 0;
}

/* A numeric claim: 0 absent, 1 present (value in *d), -1 present but not a number. */
static int number_claim(jwt_t *j, const char *name, double *d) {
  char *js = jwt_get_grants_json(j, name);
  if (!js) return 0;
  int rc = json_number(js, d) == 0 ? 1 : -1;
  free(js);
  return rc;
}

/* Is want one of the strings of the JSON array at j? (Plain strings; an escape other than
 * \" \\ \/ makes that element not match, which can only refuse, never accept.) */
static int json_array_has(const char *j, const char *want) {
  const char *p = j;
  size_t wl = strlen(want);
  while (isspace((unsigned char)*p)) p++;
  if (*p++ != '[') return 0;
  for (;;) {
    while (isspace((unsigned char)*p)) p++;
    if (*p != '"') return 0;
    p++;
    char buf[512];
    size_t n = 0;
    int ok = 1;
    while (*p && *p != '"') {
      char ch = *p++;
      if (ch == '\\') {
        ch = *p++;
        if (ch != '"' && ch != '\\' && ch != '/') ok = 0;
        if (!ch) return 0;
      }
      if (n < sizeof buf - 1) buf[n++] = ch;
      else ok = 0;
    }
    if (*p != '"') return 0;
    p++;
    buf[n] = 0;
    if (ok && n == wl && memcmp(buf, want, wl) == 0) return 1;
    while (isspace((unsigned char)*p)) p++;
    if (*p == ',') {
      p++;
      continue;
    }
    return 0;
  }
}

/* Is j (a header value as JSON) what crit must be: a non-empty array of non-empty strings? */
static int crit_names(const char *j) {
  const char *p = j;
  while (isspace((unsigned char)*p)) p++;
  if (*p++ != '[') return 0;
  for (;;) {
    while (isspace((unsigned char)*p)) p++;
    if (*p++ != '"' || *p == '"') return 0;
    while (*p && *p != '"') p += *p == '\\' && p[1] ? 2 : 1;
    if (*p++ != '"') return 0;
    while (isspace((unsigned char)*p)) p++;
    if (*p == ']') return 1;
    if (*p++ != ',') return 0;
  }
}

static gw_auth_status_t fail(gw_auth_claims_t *out, gw_auth_status_t s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static gw_auth_status_t fail(gw_auth_claims_t *out, gw_auth_status_t s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(out->detail, sizeof out->detail, fmt, ap);
  va_end(ap);
  return s;
}

/* exp, nbf, iat, iss, aud of a verified token. */
static gw_auth_status_t check_claims(const gw_auth_t *a, jwt_t *j, double now, gw_auth_claims_t *out) {
  double leeway = a->s.leeway_s, exp = 0, nbf = 0, iat = 0;
  int has = number_claim(j, "exp", &exp);
  if (has < 0) return fail(out, GW_AUTH_CLAIMS, "exp is not a number (NumericDate)");
  if (has && now >= exp + leeway)
    return fail(out, GW_AUTH_EXPIRED, "expired %.0f s ago (leeway %g s)", now - exp, leeway);
  out->exp = has ? exp : 0;
  has = number_claim(j, "nbf", &nbf);
  if (has < 0) return fail(out, GW_AUTH_CLAIMS, "nbf is not a number (NumericDate)");
  if (has && now + leeway < nbf)
    return fail(out, GW_AUTH_NOT_YET, "not valid for another %.0f s (leeway %g s)", nbf - now, leeway);
  if (number_claim(j, "iat", &iat) < 0) return fail(out, GW_AUTH_CLAIMS, "iat is not a number (NumericDate)");
  if (a->s.issuer) {
    const char *iss = jwt_get_grant(j, "iss");
    if (!iss || strcmp(iss, a->s.issuer) != 0)
      return fail(out, GW_AUTH_ISSUER, "iss is %s, not the configured issuer", iss ? "another issuer" : "missing");
  }
  if (a->s.audience) {
    const char *aud = jwt_get_grant(j, "aud");
    int ok = aud ? strcmp(aud, a->s.audience) == 0 : 0;
    if (!aud) {
      char *arr = jwt_get_grants_json(j, "aud");
      ok = arr && json_array_has(arr, a->s.audience);
      free(arr);
    }
    if (!ok) return fail(out, GW_AUTH_AUDIENCE, "aud does not name the configured audience");
  }
  return GW_AUTH_OK;
}

gw_auth_status_t gw_auth_verify(const gw_auth_t *a, const char *token, double now,
                                gw_auth_claims_t *out) {
  memset(out, 0, sizeof *out);
  if (!token || !*token) return fail(out, GW_AUTH_MISSING, "no token");
  if (!a || a->n == 0) return fail(out, GW_AUTH_NO_KEYS, "a token was sent but no key is configured");
  size_t len = strnlen(token, MAX_TOKEN + 1);
  if (len > MAX_TOKEN) return fail(out, GW_AUTH_MALFORMED, "longer than %d bytes", MAX_TOKEN);
  const char *d1 = strchr(token, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
  if (!d1 || !d2 || strchr(d2 + 1, '.') || d1 == token || d2 == d1 + 1 ||
      !b64url_part(token, (size_t)(d1 - token)) || !b64url_part(d1 + 1, (size_t)(d2 - d1 - 1)) ||
      !b64url_part(d2 + 1, strlen(d2 + 1)))
    return fail(out, GW_AUTH_MALFORMED, "not a JWT (three base64url parts)");

  /* Read the header only: libjwt parses a token unverified when given no key. Nothing but
   * alg and kid is taken from this copy. */
  jwt_t *peek = NULL;
  if (jwt_decode(&peek, token, NULL, 0) || !peek)
    return fail(out, GW_AUTH_MALFORMED, "header or payload is not valid JSON, or alg is unknown");
  const char *h_alg = jwt_get_header(peek, "alg"), *h_kid = jwt_get_header(peek, "kid");
  char alg[16] = "", kid[256] = "";
  int kid_bad = 0, have_kid = 0;
  if (h_alg) snprintf(alg, sizeof alg, "%s", h_alg);
  if (h_kid) {
    have_kid = 1;
    kid_bad = strlen(h_kid) >= sizeof kid;
    snprintf(kid, sizeof kid, "%s", h_kid);
  } else {
    char *kj = jwt_get_headers_json(peek, "kid");
    if (kj) kid_bad = 1; /* present but not a string */
    free(kj);
  }
  /* RFC 7515 §4.1.11: a token whose crit names an extension the recipient does not
   * understand must be refused. This gateway understands none, so any crit is refused. */
  char crit[72] = "";
  char *cj = jwt_get_headers_json(peek, "crit");
  if (!cj && jwt_get_header(peek, "crit")) cj = strdup("\"\""); /* a string: malformed */
  if (cj) snprintf(crit, sizeof crit, "%s", cj);
  int has_crit = cj != NULL, crit_list = has_crit && crit_names(cj);
  free(cj);
  jwt_free(peek);
  if (!alg[0]) return fail(out, GW_AUTH_MALFORMED, "the header has no alg");
  if (kid_bad) return fail(out, GW_AUTH_MALFORMED, "kid is not a short string");
  if (has_crit && !crit_list)
    return fail(out, GW_AUTH_MALFORMED, "crit must be a non-empty list of extension names");
  if (has_crit)
    return fail(out, GW_AUTH_MALFORMED, "crit names extensions this gateway does not understand: %.64s", crit);
  if (strcasecmp(alg, "none") == 0) return fail(out, GW_AUTH_ALG, "alg none (unsigned) is never accepted");

  /* The candidates: the key of this kid, or every key without a kid; the token's alg must
   * be the one pinned for the key before libjwt sees the key. */
  const key_t_ *cand[16];
  size_t nc = 0, same_kid = 0;
  for (size_t i = 0; i < a->n; i++) {
    const key_t_ *k = &a->keys[i];
    int kid_match = have_kid ? (k->kid && strcmp(k->kid, kid) == 0) : !k->kid;
    if (!kid_match) continue;
    same_kid++;
    if (strcmp(k->alg->name, alg) == 0 && nc < sizeof cand / sizeof cand[0]) cand[nc++] = k;
  }
  if (!same_kid)
    return have_kid ? fail(out, GW_AUTH_KID, "no key has kid '%.64s'", kid)
                    : fail(out, GW_AUTH_KID, "the token has no kid and every key has one");
  if (!nc) return fail(out, GW_AUTH_ALG, "alg %s is not the algorithm pinned for this key", alg);

  for (size_t i = 0; i < nc; i++) {
    jwt_t *j = NULL;
    if (jwt_decode(&j, token, cand[i]->key, (int)cand[i]->len) || !j) continue;
    if (jwt_get_alg(j) != cand[i]->alg->alg) { /* belt and braces: never reached */
      jwt_free(j);
      continue;
    }
    gw_auth_status_t s = check_claims(a, j, now, out);
    if (s == GW_AUTH_OK) {
      out->json = jwt_get_grants_json(j, NULL);
      if (!out->json || out->json[0] != '{') {
        free(out->json);
        out->json = NULL;
        s = fail(out, GW_AUTH_CLAIMS, "the claims are not a JSON object");
      }
    }
    jwt_free(j);
    return s;
  }
  return fail(out, GW_AUTH_SIGNATURE, "the %s signature does not verify", alg);
}

/* ---- origins and token sources ---------------------------------------------------------- */

static size_t origin_len(const char *o) {
  size_t n = strlen(o);
  while (n && (o[n - 1] == '/' || isspace((unsigned char)o[n - 1]))) n--;
  return n;
}

int gw_auth_origin_allowed(const gw_auth_t *a, const char *origin) {
  if (!origin || !*origin) return a ? !a->s.origin_required : 1;
  if (!a) return 0; /* no settings: no browser origin is allowed */
  size_t n = origin_len(origin);
  for (size_t i = 0; i < a->s.n_origins; i++) {
    const char *o = a->s.origins[i];
    if (strcmp(o, "*") == 0) return 1;
    if (strlen(o) == n && strncasecmp(o, origin, n) == 0) return 1;
  }
  return 0;
}

const char *gw_auth_bearer(const char *h) {
  if (!h) return NULL;
  while (*h == ' ') h++;
  if (strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t')) return NULL;
  h += 6;
  while (*h == ' ' || *h == '\t') h++;
  return *h ? h : NULL;
}

int gw_auth_cookie(const char *cookies, const char *name, char *out, size_t cap) {
  size_t nl = name ? strlen(name) : 0;
  for (const char *p = cookies; p && *p && nl;) {
    while (*p == ' ' || *p == '\t' || *p == ';') p++;
    const char *end = strchr(p, ';');
    if (!end) end = p + strlen(p);
    if ((size_t)(end - p) > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
      const char *v = p + nl + 1;
      size_t vl = (size_t)(end - v);
      while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--;
      if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') { /* quoted cookie value */
        v++;
        vl -= 2;
      }
      if (vl == 0 || vl >= cap) return -1;
      memcpy(out, v, vl);
      out[vl] = 0;
      return 0;
    }
    p = end;
  }
  return -1;
}

/* ---- development secret ------------------------------------------------------------------ */

static int g_allow_dev_secret;
static int g_dev_announced;

void gw_auth_allow_dev_secret(int on) { g_allow_dev_secret = on; }

/* --check validates a policy; whether the machine has a key is the run's concern. */
static int g_check_only;
void gw_auth_set_check_only(int on) { g_check_only = on; }

int gw_auth_dev_secret_path(char *buf, size_t cap) {
  const char *f = getenv("AIVO_DEV_SECRET_FILE"), *state = getenv("XDG_STATE_HOME"),
             *home = getenv("HOME");
  int n;
  if (f && *f) n = snprintf(buf, cap, "%s", f);
  else if (state && *state) n = snprintf(buf, cap, "%s/aivo-gw/dev-secret", state);
  else if (home && *home) n = snprintf(buf, cap, "%s/.local/state/aivo-gw/dev-secret", home);
  else n = snprintf(buf, cap, ".aivo-gw-dev-secret");
  return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static int mkdirs(char *path) { /* every folder of path, mode 0700 */
  for (char *p = path + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    int rc = mkdir(path, 0700);
    *p = '/';
    if (rc && errno != EEXIST) return -1;
  }
  return 0;
}

int gw_auth_dev_secret(int create, char *secret, size_t cap, char *err, size_t errlen) {
  char path[4096];
  if (gw_auth_dev_secret_path(path, sizeof path)) {
    snprintf(err, errlen, "the development secret's path is too long");
    return -1;
  }
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT && create) {
    unsigned char raw[32];
    char hex[sizeof raw * 2 + 2];
    gw_random_bytes(raw, sizeof raw);
    for (size_t i = 0; i < sizeof raw; i++) snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    hex[64] = '\n';
    hex[65] = 0;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    int wfd = mkdirs(dir) ? -1 : open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (wfd >= 0) {
      ssize_t w = write(wfd, hex, 65);
      close(wfd);
      if (w != 65) unlink(path);
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
  }
  if (fd < 0) {
    snprintf(err, errlen, "%s: %s", path,
             errno == ENOENT ? "no development secret yet (start the gateway with --dev-secret once)"
                             : strerror(errno));
    return -1;
  }
  ssize_t n = read(fd, secret, cap - 1);
  close(fd);
  if (n < 0) n = 0;
  secret[n] = 0;
  while (n && isspace((unsigned char)secret[n - 1])) secret[--n] = 0;
  if (n < 32) {
    snprintf(err, errlen, "%s: the development secret is shorter than 32 bytes; delete the file to get a new one", path);
    return -1;
  }
  return 0;
}

/* ---- configuration ---------------------------------------------------------------------- */

/* Field key of the table at idx: 1 with the value pushed, 0 (nothing pushed) when nil or of
 * another type than want (reported). */
static int field(lua_State *L, int idx, const char *section, const char *key, int want,
                 gw_errlist_t *errs) {
  lua_getfield(L, idx, key);
  if (lua_type(L, -1) == want) return 1;
  if (!lua_isnil(L, -1))
    gw_errlist_add(errs, "config: %s.%s must be a %s, got %s", section, key, lua_typename(L, want),
                   luaL_typename(L, -1));
  else
    gw_errlist_add(errs, "config: %s.%s is missing", section, key);
  lua_pop(L, 1);
  return 0;
}

/* An optional string: NULL when "" (not set). */
static char *opt_string(lua_State *L, int idx, const char *section, const char *key, gw_errlist_t *errs) {
  if (!field(L, idx, section, key, LUA_TSTRING, errs)) return NULL;
  const char *s = lua_tostring(L, -1);
  char *r = *s ? strdup(s) : NULL;
  lua_pop(L, 1);
  return r;
}

static double number(lua_State *L, int idx, const char *section, const char *key, double lo,
                     double hi, double dflt, gw_errlist_t *errs) {
  if (!field(L, idx, section, key, LUA_TNUMBER, errs)) return dflt;
  double v = lua_tonumber(L, -1);
  lua_pop(L, 1);
  if (!(v >= lo && v <= hi)) {
    gw_errlist_add(errs, "config: %s.%s = %g is out of range [%g, %g]", section, key, v, lo, hi);
    return dflt;
  }
  return v;
}

static int boolean(lua_State *L, int idx, const char *section, const char *key, int dflt, gw_errlist_t *errs) {
  if (!field(L, idx, section, key, LUA_TBOOLEAN, errs)) return dflt;
  int v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

static void parse_origins(gw_auth_settings_t *s, const char *list, gw_errlist_t *errs) {
  const char *p = list;
  while (*p) {
    while (*p == ',' || isspace((unsigned char)*p)) p++;
    const char *e = p;
    while (*e && *e != ',') e++;
    size_t n = (size_t)(e - p);
    while (n && (isspace((unsigned char)p[n - 1]) || p[n - 1] == '/')) n--;
    if (n) {
      if (!(n == 1 && *p == '*') && !memmem(p, n, "://", 3))
        gw_errlist_add(errs, "config: origins.allowed: '%.*s' is not an origin (scheme://host[:port]) or *",
                       (int)n, p);
      char **no = realloc(s->origins, (s->n_origins + 1) * sizeof *no);
      if (!no) return;
      s->origins = no;
      if ((no[s->n_origins] = strndup(p, n))) s->n_origins++;
    }
    p = e;
  }
}

/* One entry of auth.keys: { kid = "...", alg = "RS256", file = "/path" | env = "VAR" }. */
static void config_key(gw_auth_t *a, lua_State *L, int idx, int i, gw_errlist_t *errs) {
  char section[32];
  snprintf(section, sizeof section, "auth.keys[%d]", i);
  if (!lua_istable(L, idx)) {
    gw_errlist_add(errs, "config: %s must be a table { kid =, alg =, file = | env = }", section);
    return;
  }
  static const char *const known[] = {"kid", "alg", "file", "env", NULL};
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int ok = 0;
    if (lua_type(L, -2) == LUA_TSTRING)
      for (int k = 0; known[k]; k++) ok |= strcmp(known[k], lua_tostring(L, -2)) == 0;
    if (!ok) gw_errlist_add(errs, "config: %s: unknown key '%s' (kid, alg, file, env)", section,
                            lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?");
    lua_pop(L, 1);
  }
  lua_getfield(L, idx, "kid");
  lua_getfield(L, idx, "alg");
  lua_getfield(L, idx, "file");
  lua_getfield(L, idx, "env");
  const char *kid = lua_tostring(L, -4), *alg = lua_tostring(L, -3), *file = lua_tostring(L, -2),
             *env = lua_tostring(L, -1);
  char err[512];
  if (!lua_isnil(L, -4) && lua_type(L, -4) != LUA_TSTRING)
    gw_errlist_add(errs, "config: %s.kid must be a string", section);
  else if (lua_type(L, -3) != LUA_TSTRING)
    gw_errlist_add(errs, "config: %s.alg must be one of " ALG_LIST, section);
  else if ((lua_type(L, -2) == LUA_TSTRING) == (lua_type(L, -1) == LUA_TSTRING))
    gw_errlist_add(errs, "config: %s needs exactly one of file (a key file) or env (a variable holding an HMAC secret)", section);
  else if (file && gw_auth_add_key_file(a, kid, alg, file, err, sizeof err))
    gw_errlist_add(errs, "config: %s: %s", section, err);
  else if (env) {
    const char *v = getenv(env);
    const struct alg_info *ai = alg_by_name(alg);
    if (ai && ai->type != KT_HMAC)
      gw_errlist_add(errs, "config: %s: env holds HMAC secrets only; give %s keys as a file", section, alg);
    else if (!v || !*v)
      gw_errlist_add(errs, "config: %s: the environment variable %s is %s", section, env, v ? "empty" : "not set");
    else if (gw_auth_add_key(a, kid, alg, v, strlen(v), env, err, sizeof err))
      gw_errlist_add(errs, "config: %s: %s", section, err);
  }
  lua_pop(L, 4);
}

static void announce_dev_secret(void) {
  char path[4096] = "", exe[1024] = "aivo-gw";
  gw_auth_dev_secret_path(path, sizeof path);
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) exe[n] = 0;
  if (g_dev_announced++) {
    gw_warn("auth: still using the DEVELOPMENT secret %s", path);
    return;
  }
  gw_warn("************************************************************************");
  gw_warn("*  auth: using a DEVELOPMENT SECRET (--dev-secret, no JWT_SECRET set)  *");
  gw_warn("************************************************************************");
  gw_warn("  secret file: %s", path);
  gw_warn("  Anyone who can read it can mint tokens. NEVER use it in production:");
  gw_warn("  set JWT_SECRET (or NEXTAUTH_SECRET) and drop --dev-secret.");
  gw_warn("  Mint a token for a first session:");
  gw_warn("    %s token --sub alice", exe);
  gw_warn("  and connect with it, e.g. ws://127.0.0.1:4003/ws?token=<token>");
  gw_warn("************************************************************************");
}

gw_auth_t *gw_auth_from_config(lua_State *L, int config_idx, gw_errlist_t *errs) {
  size_t before = errs->n;
  int cfg = config_idx < 0 ? lua_gettop(L) + config_idx + 1 : config_idx;
  gw_auth_t *a = gw_auth_new();
  if (!a) {
    gw_errlist_add(errs, "auth: out of memory");
    return NULL;
  }
  gw_auth_settings_t *s = &a->s;
  char alg[16] = "HS256";

  lua_getfield(L, cfg, "auth");
  if (!lua_istable(L, -1)) {
    gw_errlist_add(errs, "config: auth must be a table");
  } else {
    int t = lua_gettop(L);
    s->required = boolean(L, t, "auth", "required", 1, errs);
    s->leeway_s = number(L, t, "auth", "leeway", 0, 86400, 30, errs);
    s->refresh_grace_s = number(L, t, "auth", "refresh_grace", 0, 86400, 30, errs);
    s->query = boolean(L, t, "auth", "query", 1, errs);
    s->issuer = opt_string(L, t, "auth", "issuer", errs);
    s->audience = opt_string(L, t, "auth", "audience", errs);
    s->cookie = opt_string(L, t, "auth", "cookie", errs);
    if (field(L, t, "auth", "alg", LUA_TSTRING, errs)) {
      snprintf(alg, sizeof alg, "%s", lua_tostring(L, -1));
      const struct alg_info *ai = alg_by_name(alg);
      if (!ai || ai->type != KT_HMAC)
        gw_errlist_add(errs, "config: auth.alg = '%s': the algorithm of JWT_SECRET/NEXTAUTH_SECRET must be HS256, HS384 or HS512 (public keys go in auth.keys)",
                       lua_tostring(L, -1));
      lua_pop(L, 1);
    }

    /* JWT_SECRET, else NEXTAUTH_SECRET (the old service's name) */
    const char *var = "JWT_SECRET", *secret = getenv(var);
    if (!secret) secret = getenv(var = "NEXTAUTH_SECRET");
    if (secret && !*secret) {
      gw_errlist_add(errs, "auth: %s is set but empty: set it to a long random secret (e.g. `openssl rand -hex 32`) or unset it", var);
    } else if (secret && errs->n == before) {
      char err[512];
      if (gw_auth_add_key(a, NULL, alg, secret, strlen(secret), var, err, sizeof err))
        gw_errlist_add(errs, "auth: %s", err);
      else if (strlen(secret) < alg_by_name(alg)->min_secret)
        gw_warn("auth: %s is only %zu bytes; %s wants at least %zu random bytes", var, strlen(secret), alg,
                alg_by_name(alg)->min_secret);
    }

    lua_getfield(L, t, "keys");
    if (lua_istable(L, -1)) {
      int kt = lua_gettop(L);
      for (int i = 1; i <= (int)lua_objlen(L, kt); i++) {
        lua_rawgeti(L, kt, i);
        config_key(a, L, lua_gettop(L), i, errs);
        lua_pop(L, 1);
      }
    } else if (!lua_isnil(L, -1)) {
      gw_errlist_add(errs, "config: auth.keys must be a list of keys");
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);

  lua_getfield(L, cfg, "origins");
  if (!lua_istable(L, -1)) {
    gw_errlist_add(errs, "config: origins must be a table");
  } else {
    int t = lua_gettop(L);
    s->origin_required = boolean(L, t, "origins", "require", 0, errs);
    if (field(L, t, "origins", "allowed", LUA_TSTRING, errs)) {
      parse_origins(s, lua_tostring(L, -1), errs);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);

  if (errs->n == before && a->n == 0 && g_allow_dev_secret) {
    char secret[256], err[512];
    if (gw_auth_dev_secret(1, secret, sizeof secret, err, sizeof err))
      gw_errlist_add(errs, "auth: --dev-secret: %s", err);
    else if (gw_auth_add_key(a, NULL, alg, secret, strlen(secret), "the development secret", err, sizeof err))
      gw_errlist_add(errs, "auth: %s", err);
    else
      announce_dev_secret();
    OPENSSL_cleanse(secret, sizeof secret);
  }
  if (errs->n == before && a->n == 0 && s->required && g_check_only)
    gw_warn("auth: no JWT key is configured (JWT_SECRET, NEXTAUTH_SECRET or config auth.keys): "
            "the policy is valid, but the gateway will refuse to start until one is set (or with "
            "--dev-secret for local development)");
  else if (errs->n == before && a->n == 0 && s->required)
    gw_errlist_add(errs,
                   "auth: auth.required is on but no key is configured: set JWT_SECRET (or "
                   "NEXTAUTH_SECRET) to the HMAC secret tokens are signed with, or list public keys in "
                   "config auth.keys; for local development start with --dev-secret; to accept "
                   "connections without a token set auth.required = false");
  if (errs->n > before) {
    gw_auth_free(a);
    return NULL;
  }
  return a;
}

/* ---- minting --------------------------------------------------------------------------- */

char *gw_auth_mint(const char *alg, const void *secret, size_t len, const char *kid,
                   const char *claims_json, char *err, size_t errlen) {
  const struct alg_info *ai = alg_by_name(alg);
  if (!ai || ai->type != KT_HMAC) {
    snprintf(err, errlen, "can only mint HS256, HS384 or HS512 tokens, not '%s'", alg ? alg : "");
    return NULL;
  }
  if (!secret || !len) {
    snprintf(err, errlen, "the secret is empty");
    return NULL;
  }
  jwt_t *j = NULL;
  char *tok = NULL;
  if (jwt_new(&j)) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  if (claims_json && jwt_add_grants_json(j, claims_json))
    snprintf(err, errlen, "the claims are not a JSON object");
  else if (kid && *kid && jwt_add_header(j, "kid", kid))
    snprintf(err, errlen, "cannot set kid");
  else if (jwt_set_alg(j, ai->alg, secret, (int)len))
    snprintf(err, errlen, "cannot set the algorithm");
  else if (!(tok = jwt_encode_str(j)))
    snprintf(err, errlen, "cannot encode the token");
  jwt_free(j);
  return tok;
}
