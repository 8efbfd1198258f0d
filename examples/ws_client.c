/* aivo-ws-client: a first session against aivo-gw's native /ws protocol, in C with
 * libwebsockets' client API (what scripts/install-deps.sh already installs; no Node needed).
 *
 *   TOKEN=$(./build/aivo-gw token --sub alice)
 *   ./build/aivo-ws-client [ws://127.0.0.1:4003/ws] [TOKEN]       (or the token in $AIVO_TOKEN)
 *
 * It sends the README's example messages one at a time (each waits for the previous ack),
 * prints every frame it gets like examples/ws-client.js does, closes with 1000 and exits 0
 * when the close handshake ends with 1000. Exit 1: cannot connect, refused (HTTP 401 for a
 * bad token), no answer within 10 s, or closed by the gateway with another code. Exit 2: usage.
 *
 * The token goes in an "Authorization: Bearer" header (docs/security.md).
 */
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TIMEOUT_S 10
#define MAX_FRAME (64 * 1024)

/* The session: each entry is sent when the previous one is acknowledged (or right away for
 * one that asks for no ack). */
static const struct step {
  int id; /* 0: no ack asked */
  const char *json;
} steps[] = {
    {1, "{\"event\":\"echo\",\"data\":{\"hello\":\"world\",\"n\":42},\"id\":1}"},
    {0, "{\"event\":\"echo\",\"data\":\"no ack asked: comes back as an event\"}"},
    {2, "{\"event\":\"join\",\"data\":{\"room\":\"lobby\"},\"id\":2}"},
    {3, "{\"event\":\"room:send\",\"data\":{\"room\":\"lobby\",\"msg\":\"hi all\"},\"id\":3}"},
    {4, "{\"event\":\"agent:learning\",\"data\":{\"action\":\"start_session\"},\"id\":4}"},
    {5, "{\"event\":\"no-such-event\",\"data\":{},\"id\":5}"},
};
#define N_STEPS (sizeof steps / sizeof steps[0])

static struct {
  const char *base;
  char auth[8192 + 16]; /* "Bearer " + a token up to the documented 8 KiB */
  size_t next;          /* the next step to send */
  int awaiting;         /* the ack id we wait for, 0: none */
  int closing;          /* all acks in: close after a short pause */
  int done, exit_code;
  int close_code;       /* the peer's close code, when it sent one */
  char rx[MAX_FRAME + 1];
  size_t rx_len;
} S = {.exit_code = 1};

/* The ack id of a frame, or 0 when it is not an ack. The gateway puts "ack" first. */
static int ack_of(const char *json) {
  const char *p = strstr(json, "\"ack\":");
  return p ? atoi(p + 6) : 0;
}

static int send_text(struct lws *wsi, const char *json) {
  size_t n = strlen(json);
  unsigned char buf[LWS_PRE + 512];
  if (n > sizeof buf - LWS_PRE) return -1;
  memcpy(buf + LWS_PRE, json, n);
  return lws_write(wsi, buf + LWS_PRE, n, LWS_WRITE_TEXT) < (int)n ? -1 : 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
  switch (reason) {
  case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
    unsigned char **p = in, *end = *p + len;
    if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, (unsigned char *)S.auth,
                                     (int)strlen(S.auth), p, end))
      return -1;
    break;
  }
  case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
    unsigned status = wsi ? lws_http_client_http_response(wsi) : 0;
    fprintf(stderr, "cannot connect to %s: %.*s", S.base, in ? (int)len : 0, in ? (const char *)in : "");
    if (status == 401) fprintf(stderr, " (HTTP 401: the token is missing, invalid or expired)");
    else if (status) fprintf(stderr, " (HTTP %u)", status);
    fprintf(stderr, "\nis aivo-gw running, and is the token valid and unexpired?\n");
    S.done = 1;
    break;
  }
  case LWS_CALLBACK_CLIENT_ESTABLISHED:
    printf("connected to %s\n", S.base);
    fflush(stdout);
    lws_callback_on_writable(wsi);
    break;
  case LWS_CALLBACK_CLIENT_WRITEABLE:
    /* one frame per WRITEABLE; steps without an ack id do not wait */
    if (S.awaiting || S.next >= N_STEPS) break;
    if (send_text(wsi, steps[S.next].json)) return -1;
    S.awaiting = steps[S.next].id;
    S.next++;
    if (!S.awaiting) lws_callback_on_writable(wsi);
    break;
  case LWS_CALLBACK_CLIENT_RECEIVE: {
    if (S.rx_len + len > MAX_FRAME) {
      fprintf(stderr, "a frame over %d bytes: stopping\n", MAX_FRAME);
      return -1;
    }
    memcpy(S.rx + S.rx_len, in, len);
    S.rx_len += len;
    if (!lws_is_final_fragment(wsi)) break;
    S.rx[S.rx_len] = 0;
    S.rx_len = 0;
    int ack = ack_of(S.rx);
    printf("%s %s\n", ack ? "ack    " : "event  ", S.rx);
    fflush(stdout);
    if (ack && ack == S.awaiting) {
      S.awaiting = 0;
      if (S.next < N_STEPS) {
        lws_callback_on_writable(wsi);
      } else if (!S.closing) { /* like the Node client: leave 200 ms for late events */
        S.closing = 1;
        lws_set_timer_usecs(wsi, 200 * LWS_US_PER_MS);
      }
    }
    break;
  }
  case LWS_CALLBACK_TIMER:
    lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
    return -1; /* sends the close frame */
  case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
    /* in: the close payload, a 2-byte code then the reason */
    if (len >= 2) {
      const unsigned char *b = in;
      S.close_code = b[0] << 8 | b[1];
    }
    break;
  case LWS_CALLBACK_CLIENT_CLOSED: {
    /* we closed with 1000 (after every ack), or the gateway closed with its own code */
    int code = S.close_code ? S.close_code : S.closing ? 1000 : 1006;
    printf("closed  %d\n", code);
    fflush(stdout);
    S.exit_code = code == 1000 && S.closing ? 0 : 1;
    S.done = 1;
    break;
  }
  default:
    break;
  }
  return 0;
}

static const struct lws_protocols protocols[] = {
    {"aivo-ws-client", callback, 0, MAX_FRAME, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

int main(int argc, char **argv) {
  S.base = argc > 1 ? argv[1] : "ws://127.0.0.1:4003/ws";
  const char *token = argc > 2 ? argv[2] : getenv("AIVO_TOKEN");
  if (argc > 3 || (argc > 1 && argv[1][0] == '-')) {
    fprintf(stderr, "usage: aivo-ws-client [ws://HOST:PORT/ws] [TOKEN]   (or the token in $AIVO_TOKEN)\n");
    return 2;
  }
  if (!token || !*token) {
    fprintf(stderr, "no token: pass one as the second argument or in AIVO_TOKEN, e.g.\n"
                    "  TOKEN=$(./build/aivo-gw token --sub alice)\n"
                    "  ./build/aivo-ws-client %s \"$TOKEN\"\n", S.base);
    return 2;
  }
  if ((size_t)snprintf(S.auth, sizeof S.auth, "Bearer %s", token) >= sizeof S.auth) {
    fprintf(stderr, "the token is longer than 8 KiB\n");
    return 2;
  }

  char url[1024], path[1024];
  const char *prot, *host, *p;
  int port;
  snprintf(url, sizeof url, "%s", S.base);
  if (lws_parse_uri(url, &prot, &host, &port, &p) || (strcmp(prot, "ws") && strcmp(prot, "wss"))) {
    fprintf(stderr, "'%s' is not a ws:// or wss:// URL\n", S.base);
    return 2;
  }
  snprintf(path, sizeof path, "/%s", p);

  lws_set_log_level(LLL_ERR, NULL);
  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.protocols = protocols;
  info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
  struct lws_context *ctx = lws_create_context(&info);
  if (!ctx) {
    fprintf(stderr, "cannot create the libwebsockets context\n");
    return 1;
  }

  struct lws_client_connect_info ci;
  memset(&ci, 0, sizeof ci);
  ci.context = ctx;
  ci.address = host;
  ci.port = port;
  ci.path = path;
  ci.host = host;
  ci.origin = NULL; /* not a browser: no Origin header (the gateway checks browsers' origins) */
  ci.protocol = NULL; /* the gateway speaks no subprotocol on /ws */
  ci.local_protocol_name = protocols[0].name;
  ci.ssl_connection = strcmp(prot, "wss") == 0 ? LCCSCF_USE_SSL : 0;
  if (!lws_client_connect_via_info(&ci)) {
    fprintf(stderr, "cannot connect to %s\n", S.base);
    lws_context_destroy(ctx);
    return 1;
  }

  time_t deadline = time(NULL) + TIMEOUT_S;
  while (!S.done && time(NULL) < deadline)
    if (lws_service(ctx, 0) < 0) break;
  if (!S.done) fprintf(stderr, "no answer from %s within %d s\n", S.base, TIMEOUT_S);
  lws_context_destroy(ctx);
  return S.done ? S.exit_code : 1;
}
