#include "tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

struct gw_tls {
  char *cert_path, *key_path;
  X509 *cert;
  STACK_OF(X509) *chain;
  EVP_PKEY *key;
  char describe[320];
};

typedef struct {
  X509 *cert;
  STACK_OF(X509) *chain;
  EVP_PKEY *key;
} pair_t;

static void pair_free(pair_t *p) {
  X509_free(p->cert);
  sk_X509_pop_free(p->chain, X509_free);
  EVP_PKEY_free(p->key);
  memset(p, 0, sizeof *p);
}

/* An encrypted key would make OpenSSL prompt on the terminal: refuse instead. */
static int no_passphrase(char *buf, int size, int rwflag, void *u) {
  (void)buf, (void)size, (void)rwflag, (void)u;
  return -1;
}

static FILE *open_file(const char *path, const char *what, char *err, size_t errlen) {
  FILE *f = fopen(path, "r");
  if (!f)
    snprintf(err, errlen, "TLS %s %s: %s", what, path,
             errno == ENOENT ? "no such file" : errno == EACCES ? "cannot read it (permission denied)" : strerror(errno));
  return f;
}

static void asn1_date(const ASN1_TIME *t, char *out, size_t cap) {
  struct tm tm;
  if (ASN1_TIME_to_tm(t, &tm)) strftime(out, cap, "%Y-%m-%d %H:%M:%S UTC", &tm);
  else snprintf(out, cap, "(unreadable date)");
}

static int load_pair(const char *cert_path, const char *key_path, pair_t *p, char *err, size_t errlen) {
  memset(p, 0, sizeof *p);
  FILE *f = open_file(cert_path, "certificate", err, errlen);
  if (!f) return -1;
  p->cert = PEM_read_X509(f, NULL, no_passphrase, NULL);
  if (p->cert) {
    p->chain = sk_X509_new_null();
    X509 *x;
    while (p->chain && (x = PEM_read_X509(f, NULL, no_passphrase, NULL))) sk_X509_push(p->chain, x);
  }
  fclose(f);
  ERR_clear_error(); /* the end of the chain reads as an error */
  if (!p->cert) {
    snprintf(err, errlen, "TLS certificate %s: not a PEM certificate (-----BEGIN CERTIFICATE-----)", cert_path);
    goto fail;
  }
  char date[64];
  if (X509_cmp_current_time(X509_get0_notAfter(p->cert)) <= 0) {
    asn1_date(X509_get0_notAfter(p->cert), date, sizeof date);
    snprintf(err, errlen, "TLS certificate %s expired on %s", cert_path, date);
    goto fail;
  }
  if (X509_cmp_current_time(X509_get0_notBefore(p->cert)) > 0) {
    asn1_date(X509_get0_notBefore(p->cert), date, sizeof date);
    snprintf(err, errlen, "TLS certificate %s is not valid before %s", cert_path, date);
    goto fail;
  }
  if (!(f = open_file(key_path, "key", err, errlen))) goto fail;
  p->key = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
  fclose(f);
  ERR_clear_error();
  if (!p->key) {
    snprintf(err, errlen, "TLS key %s: not a PEM private key, or encrypted (give the key without a passphrase)", key_path);
    goto fail;
  }
  if (X509_check_private_key(p->cert, p->key) != 1) {
    ERR_clear_error();
    snprintf(err, errlen, "TLS key %s does not match the certificate %s", key_path, cert_path);
    goto fail;
  }
  return 0;
fail:
  pair_free(p);
  return -1;
}

static void describe(gw_tls_t *t) {
  char subject[200] = "", date[64];
  X509_NAME_oneline(X509_get_subject_name(t->cert), subject, sizeof subject);
  asn1_date(X509_get0_notAfter(t->cert), date, sizeof date);
  int days = 0, secs = 0;
  ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(t->cert));
  snprintf(t->describe, sizeof t->describe, "%s, expires %s (in %d days)", subject, date, days);
}

gw_tls_t *gw_tls_load(const char *cert_path, const char *key_path, char *err, size_t errlen) {
  pair_t p;
  if (load_pair(cert_path, key_path, &p, err, errlen)) return NULL;
  gw_tls_t *t = calloc(1, sizeof *t);
  if (!t || !(t->cert_path = strdup(cert_path)) || !(t->key_path = strdup(key_path))) {
    if (t) free(t->cert_path);
    free(t);
    pair_free(&p);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  t->cert = p.cert;
  t->chain = p.chain;
  t->key = p.key;
  describe(t);
  return t;
}

void gw_tls_free(gw_tls_t *t) {
  if (!t) return;
  pair_t p = {t->cert, t->chain, t->key};
  pair_free(&p);
  free(t->cert_path);
  free(t->key_path);
  free(t);
}

/* Every handshake gets the current certificate, whatever lws loaded into the context. */
static int cert_cb(SSL *ssl, void *arg) {
  gw_tls_t *t = arg;
  SSL_certs_clear(ssl);
  return SSL_use_cert_and_key(ssl, t->cert, t->key, t->chain, 1) == 1;
}

int gw_tls_attach(gw_tls_t *t, void *ssl_ctx, char *err, size_t errlen) {
  SSL_CTX *ctx = ssl_ctx;
  if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
    snprintf(err, errlen, ctx ? "cannot set TLS 1.2 as the minimum version" : "libwebsockets made no TLS context");
    return -1;
  }
  SSL_CTX_set_cert_cb(ctx, cert_cb, t);
  return 0;
}

int gw_tls_reload(gw_tls_t *t, char *err, size_t errlen) {
  pair_t p;
  if (load_pair(t->cert_path, t->key_path, &p, err, errlen)) return -1;
  pair_t old = {t->cert, t->chain, t->key};
  t->cert = p.cert; /* sessions already established hold their own references */
  t->chain = p.chain;
  t->key = p.key;
  pair_free(&old);
  describe(t);
  return 0;
}

const char *gw_tls_describe(gw_tls_t *t) { return t->describe; }
