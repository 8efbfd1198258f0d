#include "lws_common.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <libwebsockets.h>

#include "log.h"
#include "settings.h"
#include "stats.h"

static int g_direct_writes;

void gw_lws_direct_writes(int on) { g_direct_writes = on; }

int gw_lws_rx_feed(struct lws *wsi, gw_rxbuf_t *r, const void *in, size_t len, size_t max,
                      const unsigned char **msg, size_t *msglen) {
  gw_rxbuf_set_budget(gw_settings()->max_inflight_bytes); /* the running policy's */
  return gw_rxbuf_feed(r, lws_is_first_fragment(wsi), lws_is_final_fragment(wsi), lws_frame_is_binary(wsi),
                       in, len, lws_remaining_packet_payload(wsi), max, msg, msglen);
}

int gw_lws_check_peer_close(struct lws *wsi, const unsigned char *in, size_t len) {
  unsigned code = len >= 2 ? (unsigned)in[0] << 8 | in[1] : 0;
  int ok = len == 0 || (len >= 2 && ((code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
                                     (code >= 3000 && code <= 4999)));
  if (ok) return 0;
  static const char why[] = "invalid close frame";
  gw_log(GW_LOG_INFO, 0, "closing 1002: a close frame with %s", len == 1 ? "a 1-byte payload" : "an invalid code");
  gw_stats_error("protocol_error");
  lws_close_reason(wsi, GW_CLOSE_PROTOCOL_ERROR, (unsigned char *)why, sizeof why - 1);
  return -1;
}

int gw_lws_frame_too_big(struct lws *wsi, size_t so_far, size_t max) {
  size_t rest = lws_remaining_packet_payload(wsi);
  return rest && (rest > max || so_far > max - rest);
}

int gw_lws_write_now(struct lws *wsi, gw_msgbuf_t *b) {
  /* lws_partial_buffered, not lws_send_pipe_choked: the latter polls the socket (one
   * poll() system call per message); the kernel's send buffer is what a full socket fills
   * first, and lws keeps what it could not write and reports it here */
  if (!g_direct_writes || lws_partial_buffered(wsi)) return 1;
  int n = lws_write(wsi, gw_msgbuf_payload(b), b->len, b->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
  return n < (int)b->len ? -1 : 0;
}

int gw_lws_limited_body(double retry_after_ms, const char *why, char *body, size_t cap, char retry[16]) {
  double ms = retry_after_ms > 0 ? ceil(retry_after_ms) : 1000;
  snprintf(retry, 16, "%.0f", ceil(ms / 1000));
  int n = snprintf(body, cap, "{\"error\":\"rate_limited\",\"reason\":\"%s\",\"retryAfterMs\":%.0f}\n", why, ms);
  return n < 0 || (size_t)n >= cap ? -1 : n;
}

int gw_lws_respond_json(struct lws *wsi, unsigned status, enum lws_token_indexes extra_token,
                        const char *extra_name, const char *extra_value, const char *body, size_t blen) {
  unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
  int elen = extra_value ? (int)strlen(extra_value) : 0;
  if (lws_add_http_header_status(wsi, status, &p, end) ||
      lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, (const unsigned char *)"application/json", 16, &p, end) ||
      (extra_value && extra_name &&
       lws_add_http_header_by_name(wsi, (const unsigned char *)extra_name, (const unsigned char *)extra_value, elen, &p, end)) ||
      (extra_value && !extra_name &&
       lws_add_http_header_by_token(wsi, extra_token, (const unsigned char *)extra_value, elen, &p, end)) ||
      lws_add_http_header_content_length(wsi, (lws_filepos_t)blen, &p, end) ||
      lws_finalize_http_header(wsi, &p, end) || end - p < (long)blen)
    return -1;
  memcpy(p, body, blen);
  p += blen;
  lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS);
  return -1;
}

int gw_lws_refuse_limited(struct lws *wsi, double retry_after_ms, const char *why) {
  char body[200], retry[16];
  int blen = gw_lws_limited_body(retry_after_ms, why, body, sizeof body, retry);
  if (blen < 0) return -1;
  return gw_lws_respond_json(wsi, 429, WSI_TOKEN_COUNT, "retry-after:", retry, body, (size_t)blen);
}
