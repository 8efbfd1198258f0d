/* Fuzz target: Engine.IO v4 (core/proto/engineio.c) as a client reaches it before any session
 * exists: the body of a long-polling POST (packets split on 0x1e, "b" + base64 for binary)
 * and, for an input that starts with '?', the handshake's query string. A payload either is
 * refused as malformed or splits into packets that, appended again, give back a payload
 * that splits into the same packets. Each message packet ("4...") goes through the
 * Socket.IO header parser, as a session would pass it on. */
#include <string.h>

#include "engineio.h"
#include "fuzz_common.h"
#include "socketio.h"
#include "strbuf.h"

typedef struct {
  gw_strbuf_t again; /* the packets appended again */
  size_t n;
  /* second pass: compare with the first */
  const gw_strbuf_t *first_packets;
  gw_strbuf_t packets; /* each packet as [binary][len][bytes] */
} pass_t;

static int record(pass_t *p, const unsigned char *data, size_t len, int binary) {
  unsigned char hdr[1 + sizeof len];
  hdr[0] = (unsigned char)binary;
  memcpy(hdr + 1, &len, sizeof len);
  return gw_strbuf_append(&p->packets, hdr, sizeof hdr) || gw_strbuf_append(&p->packets, data, len);
}

static int on_packet(void *ud, const unsigned char *data, size_t len, int binary) {
  pass_t *p = ud;
  FUZZ_ASSERT(len > 0 || binary, "an empty text packet was passed on");
  p->n++;
  if (!binary && data[0] == '0' + GW_EIO_MESSAGE && len > 1) {
    gw_sio_packet_t sp;
    if (gw_sio_parse((const char *)data + 1, len - 1, &sp) == 0) {
      FUZZ_ASSERT(sp.type >= 0 && sp.type <= 6, "a Socket.IO type out of range");
      FUZZ_ASSERT(sp.attachments <= GW_SIO_MAX_ATTACHMENTS, "too many attachments accepted");
      FUZZ_ASSERT(sp.nsp_len >= 1 && sp.nsp[0] == '/', "a namespace without '/'");
      FUZZ_ASSERT(sp.data + sp.data_len == (const char *)data + len, "the payload does not end the packet");
    }
  }
  if (record(p, data, len, binary)) return -1;
  if (!p->first_packets) return gw_eio_payload_append(&p->again, data, len, binary) ? -1 : 0;
  return 0;
}

static void fuzz_query(const char *q) {
  char out[64];
  int r = gw_eio_query_get(q, "sid", out, sizeof out);
  FUZZ_ASSERT(r == -1 || (r == 0 && strlen(out) < sizeof out), "query value overran its buffer");
  gw_eio_transport_t t;
  char sid[24];
  int e = gw_eio_check_query(q, &t, sid, sizeof sid);
  FUZZ_ASSERT(e == -1 || (e >= GW_EIO_ERR_TRANSPORT && e <= GW_EIO_ERR_VERSION), "an unknown error code");
  if (e == -1) FUZZ_ASSERT(t == GW_EIO_POLLING || t == GW_EIO_WEBSOCKET, "an unknown transport accepted");
  else FUZZ_ASSERT(gw_eio_error_body(e) != NULL, "an error without a body");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 0 && data[0] == '?') {
    char q[4096];
    size_t n = size - 1 < sizeof q - 1 ? size - 1 : sizeof q - 1;
    memcpy(q, data + 1, n);
    q[n] = 0;
    fuzz_query(q);
    return 0;
  }
  gw_strbuf_t scratch = {0};
  pass_t one = {0};
  int rc = gw_eio_payload_decode((const char *)data, size, &scratch, on_packet, &one);
  FUZZ_ASSERT(rc == 0 || rc == -1, "an unexpected return code");
  FUZZ_ASSERT(size > 0 || rc == -1, "an empty body accepted");
  if (rc == 0) {
    FUZZ_ASSERT(one.n >= 1, "a good payload without a packet");
    pass_t two = {.first_packets = &one.packets};
    int rc2 = gw_eio_payload_decode(one.again.p, one.again.len, &scratch, on_packet, &two);
    FUZZ_ASSERT(rc2 == 0, "a payload we encoded does not decode");
    FUZZ_ASSERT(two.n == one.n, "the packet count changed on the way back");
    FUZZ_ASSERT(two.packets.len == one.packets.len &&
                    memcmp(two.packets.p, one.packets.p, one.packets.len) == 0,
                "the packets changed on the way back");
    gw_strbuf_free(&two.packets);
  }
  gw_strbuf_free(&one.packets);
  gw_strbuf_free(&one.again);
  gw_strbuf_free(&scratch);
  return 0;
}
