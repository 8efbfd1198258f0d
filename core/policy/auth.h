/* Authentication: JWT verification (the only libjwt user), the auth.* and origins.* settings
 * of a policy generation, origin checks, and token minting for `aivo-gw token`.
 *
 * libjwt 1.10.2 takes the algorithm from the token, verifies nothing with an empty key and
 * checks no claims (docs/security.md, DESIGN.md §6). So every key here has its algorithm
 * pinned, the token's `alg` must equal it before libjwt sees the key, an empty key is a
 * configuration error, and exp/nbf/iss/aud are checked in this file.
 *
 * ---- For a protocol (native /ws, Socket.IO) ------------------------------------------------
 * Do not verify tokens yourself: fill the gw_request_t (policy.h) and make ONE call,
 *
 *     req.token = token;                        // NULL when the client sent none
 *     req.auth_json = payload; req.auth_json_len = n;   // Socket.IO CONNECT auth payload
 *     int code = gw_gateway_conn_open(c, &req, reason, sizeof reason);
 *
 * It verifies the token in C, runs the policy's auth hook (claims, req -> identity or
 * refusal) and connect hook, joins the user room, and starts the expiry watch. 0 accepts;
 * GW_CLOSE_UNAUTHORIZED (4401) is an authentication refusal with the reason code in `reason`
 * ("token_expired", "bad_signature", a policy's own code such as "learner_mismatch"):
 * answer it with HTTP 401 on an upgrade, or Socket.IO CONNECT_ERROR
 * {"message": "unauthorized", "data": {"reason": reason}}. Any other code is a refusal by the
 * connect hook (4403, "code: reason"), a bad identity (4400) or a failed hook (1011).
 *
 * Origin checks (browser upgrades and Socket.IO polling requests):
 *     if (!gw_auth_origin_allowed(gw_policy_current()->auth, origin)) -> HTTP 403
 * Token refresh on a live connection (event "auth:refresh" {token}, either protocol):
 *     gw_auth_session_refresh(c, token, reason, sizeof reason)   (auth_session.h)
 * --------------------------------------------------------------------------------------------
 */
#ifndef GW_AUTH_H
#define GW_AUTH_H

#include <stddef.h>

struct lua_State;
struct gw_errlist;

typedef struct gw_auth gw_auth_t;

typedef enum {
  GW_AUTH_OK = 0,
  GW_AUTH_MISSING,   /* token_missing: no token and auth.required */
  GW_AUTH_MALFORMED, /* token_malformed: not three base64url parts, header not JSON, ... */
  GW_AUTH_ALG,       /* alg_not_allowed: alg none, or not the algorithm pinned for the key */
  GW_AUTH_KID,       /* unknown_kid: no configured key has the token's kid */
  GW_AUTH_SIGNATURE, /* bad_signature */
  GW_AUTH_EXPIRED,   /* token_expired: exp + leeway is past */
  GW_AUTH_NOT_YET,   /* token_not_yet_valid: nbf - leeway is in the future */
  GW_AUTH_ISSUER,    /* bad_issuer */
  GW_AUTH_AUDIENCE,  /* bad_audience */
  GW_AUTH_CLAIMS,    /* bad_claims: exp, nbf or iat not a number, ... */
  GW_AUTH_NO_KEYS,   /* no_keys: a token arrived but no key is configured (auth.required off) */
  GW_AUTH_STATUS_COUNT
} gw_auth_status_t;

/* "token_expired", ...: the reason code clients and metrics see. */
const char *gw_auth_status_code(gw_auth_status_t s);

/* A verified token. Fields are owned; free with gw_auth_claims_free. */
typedef struct gw_auth_claims {
  char *json;       /* the claims, a JSON object (verified) */
  double exp;       /* expiry in Unix seconds; 0 when the token has no exp */
  char detail[200]; /* on failure: what exactly was wrong, for the log (never the token) */
} gw_auth_claims_t;

void gw_auth_claims_free(gw_auth_claims_t *c);

/* The settings of one policy generation (config sections auth.* and origins.*). */
typedef struct gw_auth_settings {
  int required;          /* auth.required: refuse connections without a token */
  double leeway_s;       /* auth.leeway */
  double refresh_grace_s; /* auth.refresh_grace */
  char *issuer;          /* auth.issuer, NULL: not checked */
  char *audience;        /* auth.audience, NULL: not checked */
  char *cookie;          /* auth.cookie, NULL: no cookie is read */
  int query;             /* auth.query: accept ?token= on /ws */
  char **origins;        /* origins.allowed, split; "*" allows any */
  size_t n_origins;
  int origin_required;   /* origins.require: refuse requests without an Origin header */
} gw_auth_settings_t;

/* ---- key sets ------------------------------------------------------------------------- */

gw_auth_t *gw_auth_new(void);
void gw_auth_free(gw_auth_t *a);
/* a NULL: fail-closed defaults (a token required, no keys). */
gw_auth_settings_t *gw_auth_settings(gw_auth_t *a);
size_t gw_auth_key_count(const gw_auth_t *a);

/* Adds a key with its algorithm pinned. kid NULL or "": the key verifies tokens without a
 * kid. HS256/384/512: key is the secret (must not be empty, must not be a PEM key);
 * RS*: a PEM RSA public key; ES*: a PEM EC public key on the curve of the algorithm.
 * `what` names where the key came from for error messages ("JWT_SECRET", a file path).
 * 0, or -1 with err filled. */
int gw_auth_add_key(gw_auth_t *a, const char *kid, const char *alg, const void *key, size_t len,
                    const char *what, char *err, size_t errlen);
/* The same from a file (an HMAC secret file: its contents without a trailing newline). */
int gw_auth_add_key_file(gw_auth_t *a, const char *kid, const char *alg, const char *path,
                         char *err, size_t errlen);

/* Verifies token at time now (Unix seconds). GW_AUTH_OK fills out (free it either way). */
gw_auth_status_t gw_auth_verify(const gw_auth_t *a, const char *token, double now,
                                gw_auth_claims_t *out);

/* 1 when a request with this Origin header (NULL: none) may connect. */
int gw_auth_origin_allowed(const gw_auth_t *a, const char *origin);

/* The token of an "Authorization: Bearer <token>" value, or NULL (points into value). */
const char *gw_auth_bearer(const char *authorization);

/* The value of cookie `name` in a Cookie header ("a=1; b=2") into out. 0, or -1 when absent
 * or longer than cap - 1. */
int gw_auth_cookie(const char *cookies, const char *name, char *out, size_t cap);

/* ---- configuration -------------------------------------------------------------------- */

/* Builds the key set and settings from the merged config table at config_idx (its auth and
 * origins sections) and the environment (JWT_SECRET, else NEXTAUTH_SECRET). Reports every
 * problem in errs and returns NULL; with auth.required and no key at all that is an error
 * naming the settings to use. */
gw_auth_t *gw_auth_from_config(struct lua_State *L, int config_idx, struct gw_errlist *errs);

/* --dev-secret: when no key is configured, use the development secret (created on first
 * use) instead of refusing to start, and say so loudly. */
void gw_auth_allow_dev_secret(int on);
/* --check: a missing key is a warning (the policy itself is valid), never a failed check.
 * The run path leaves this off, so the gateway still refuses to start without a key. */
void gw_auth_set_check_only(int on);
/* The development secret's file: $AIVO_DEV_SECRET_FILE, else
 * ${XDG_STATE_HOME:-$HOME/.local/state}/aivo-gw/dev-secret. */
int gw_auth_dev_secret_path(char *buf, size_t cap);
/* Reads the development secret (creating it, mode 0600, when create is set). 0 or -1 with err. */
int gw_auth_dev_secret(int create, char *secret, size_t cap, char *err, size_t errlen);

/* ---- minting (aivo-gw token, tests) ----------------------------------------------------- */

/* A signed token with these claims (a JSON object) and header kid (NULL: none); HMAC
 * algorithms only. malloc'd, or NULL with err filled. */
char *gw_auth_mint(const char *alg, const void *secret, size_t len, const char *kid,
                   const char *claims_json, char *err, size_t errlen);

#endif
