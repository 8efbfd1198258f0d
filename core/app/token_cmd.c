#include "token_cmd.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "json.h"

static const char usage[] =
    "usage: aivo-gw token --sub ID [--claim KEY=VALUE ...] [--ttl 1h] [--alg HS256] [--kid KID]\n"
    "\n"
    "Prints a JWT signed with the gateway's HMAC secret: JWT_SECRET, else NEXTAUTH_SECRET, else\n"
    "the development secret of `aivo-gw --dev-secret` (docs/security.md).\n"
    "\n"
    "  --sub ID             the subject: the connection's identity under the default policy\n"
    "  --claim KEY=VALUE    a string claim, e.g. --claim learnerId=l-42 (repeatable)\n"
    "  --claim KEY:=JSON    a claim with a JSON value, e.g. --claim admin:=true, --claim aud:='[\"a\",\"b\"]'\n"
    "  --ttl DURATION       lifetime: 90s, 15m, 1h (default), 7d; 0 for a token without exp\n"
    "  --alg ALG            HS256 (default), HS384 or HS512: the gateway's auth.alg\n"
    "  --kid KID            a key id header, for keys listed in auth.keys\n"
    "\n"
    "Use it:  ws://HOST:4003/ws?token=TOKEN, an `Authorization: Bearer TOKEN` header, or the\n"
    "Socket.IO auth payload {token: TOKEN}.\n";

static int usage_error(const char *fmt, const char *arg) {
  fprintf(stderr, "aivo-gw token: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, " (see aivo-gw token --help)\n");
  return 2;
}

double gw_token_parse_ttl(const char *s) {
  if (!s || !*s) return -1;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || errno || !isfinite(v) || v < 0) return -1;
  double mul = 1;
  if (*end) {
    switch (*end) {
      case 's': mul = 1; break;
      case 'm': mul = 60; break;
      case 'h': mul = 3600; break;
      case 'd': mul = 86400; break;
      default: return -1;
    }
    if (end[1]) return -1;
  }
  return v * mul;
}

/* Appends ,"key":value to the claims object being built. */
static int add_claim(char *buf, size_t cap, size_t *o, const char *key, size_t klen, const char *val,
                     int raw) {
  char k[GW_JSON_ESCAPED_MAX(200)];
  if (klen == 0 || klen > 200) return -1;
  gw_json_escape(key, klen, k, sizeof k);
  size_t vl = strlen(val);
  char *v = raw ? NULL : malloc(GW_JSON_ESCAPED_MAX(vl));
  if (!raw) {
    if (!v) return -1;
    gw_json_escape(val, vl, v, GW_JSON_ESCAPED_MAX(vl));
  }
  int n = snprintf(buf + *o, cap - *o, "%s%s:%s", *o > 1 ? "," : "", k, raw ? val : v);
  free(v);
  if (n < 0 || (size_t)n >= cap - *o) return -1;
  *o += (size_t)n;
  return 0;
}

int gw_token_cmd(int argc, char **argv) {
  const char *sub = NULL, *alg = "HS256", *kid = NULL;
  double ttl = 3600;
  static char claims[65536];
  size_t o = 1;
  claims[0] = '{';
  claims[1] = 0;
  /* --claim values, kept until the subject and times are in (they may not override them) */
  const char *extra[64];
  size_t n_extra = 0;

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *val = NULL;
    char flag[32];
    const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
    if (eq && (size_t)(eq - a) < sizeof flag) {
      memcpy(flag, a, (size_t)(eq - a));
      flag[eq - a] = 0;
      val = eq + 1;
      a = flag;
    }
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(usage, stdout);
      return 0;
    }
    int known = strcmp(a, "--sub") == 0 || strcmp(a, "--claim") == 0 || strcmp(a, "--ttl") == 0 ||
                strcmp(a, "--alg") == 0 || strcmp(a, "--kid") == 0;
    if (!known) return usage_error("unknown option '%s'", argv[i]);
    if (!val) {
      if (i + 1 >= argc) return usage_error("%s needs a value", a);
      val = argv[++i];
    }
    if (strcmp(a, "--sub") == 0) sub = val;
    else if (strcmp(a, "--alg") == 0) alg = val;
    else if (strcmp(a, "--kid") == 0) kid = val;
    else if (strcmp(a, "--ttl") == 0) {
      if ((ttl = gw_token_parse_ttl(val)) < 0) return usage_error("--ttl: '%s' is not a duration like 90s, 15m, 1h or 7d", val);
    } else {
      if (!strchr(val, '=') || val[0] == '=' || (val[0] == ':' && val[1] == '='))
        return usage_error("--claim: '%s' is not KEY=VALUE or KEY:=JSON", val);
      if (n_extra == sizeof extra / sizeof extra[0]) return usage_error("%s", "too many --claim");
      extra[n_extra++] = val;
    }
  }
  if (!sub || !*sub) return usage_error("%s", "--sub ID is required");
  if (strcmp(alg, "HS256") && strcmp(alg, "HS384") && strcmp(alg, "HS512"))
    return usage_error("--alg: '%s' is not HS256, HS384 or HS512", alg);

  double now = floor((double)time(NULL));
  char num[32];
  if (add_claim(claims, sizeof claims, &o, "sub", 3, sub, 0)) return usage_error("%s", "--sub is too long");
  snprintf(num, sizeof num, "%.0f", now);
  add_claim(claims, sizeof claims, &o, "iat", 3, num, 1);
  if (ttl > 0) {
    snprintf(num, sizeof num, "%.0f", now + ceil(ttl));
    add_claim(claims, sizeof claims, &o, "exp", 3, num, 1);
  }
  for (size_t i = 0; i < n_extra; i++) {
    const char *e = strchr(extra[i], '=');
    int raw = e > extra[i] && e[-1] == ':';
    size_t klen = (size_t)(e - extra[i]) - (raw ? 1 : 0);
    if ((klen == 3 && (!strncmp(extra[i], "sub", 3) || !strncmp(extra[i], "exp", 3) || !strncmp(extra[i], "iat", 3))))
      return usage_error("--claim: set %.3s with --sub or --ttl", extra[i]);
    if (add_claim(claims, sizeof claims, &o, extra[i], klen, e + 1, raw))
      return usage_error("--claim: '%s' is too long", extra[i]);
  }
  if (o + 2 > sizeof claims) return usage_error("%s", "the claims are too long");
  claims[o++] = '}';
  claims[o] = 0;

  /* the key: what the gateway would use */
  char secret[4096], err[512];
  const char *var = "JWT_SECRET", *s = getenv(var);
  if (!s) s = getenv(var = "NEXTAUTH_SECRET");
  if (s && !*s) {
    fprintf(stderr, "aivo-gw token: %s is set but empty\n", var);
    return 1;
  }
  if (!s) {
    if (gw_auth_dev_secret(0, secret, sizeof secret, err, sizeof err)) {
      fprintf(stderr,
              "aivo-gw token: no key: set JWT_SECRET (or NEXTAUTH_SECRET) to the gateway's secret.\n"
              "  For local development the gateway makes one with --dev-secret (scripts/run.sh does):\n"
              "  %s\n",
              err);
      return 1;
    }
    char path[4096];
    gw_auth_dev_secret_path(path, sizeof path);
    fprintf(stderr, "aivo-gw token: signed with the DEVELOPMENT secret %s (not for production)\n", path);
    s = secret;
  }
  char *tok = gw_auth_mint(alg, s, strlen(s), kid, claims, err, sizeof err);
  memset(secret, 0, sizeof secret);
  if (!tok) {
    fprintf(stderr, "aivo-gw token: %s\n", err);
    return strstr(err, "JSON") ? 2 : 1;
  }
  printf("%s\n", tok);
  free(tok);
  return 0;
}
