/* Engine.IO v4 codec: error bodies, query parsing, the open packet, polling payloads
 * (\x1e separators, "b" + base64 binary packets), and base64 itself. */
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "check.h"
#include "engineio.h"

static void test_errors(void) {
  CHECK_STR(gw_eio_error_body(GW_EIO_ERR_TRANSPORT), "{\"code\":0,\"message\":\"Transport unknown\"}");
  CHECK_STR(gw_eio_error_body(GW_EIO_ERR_SID), "{\"code\":1,\"message\":\"Session ID unknown\"}");
  CHECK_STR(gw_eio_error_body(GW_EIO_ERR_METHOD), "{\"code\":2,\"message\":\"Bad handshake method\"}");
  CHECK_STR(gw_eio_error_body(GW_EIO_ERR_BAD_REQUEST), "{\"code\":3,\"message\":\"Bad request\"}");
  CHECK_STR(gw_eio_error_body(GW_EIO_ERR_FORBIDDEN), "{\"code\":4,\"message\":\"Forbidden\"}");
  CHECK_STR(gw_eio_error_body(GW_EIO_ERR_VERSION), "{\"code\":5,\"message\":\"Unsupported protocol version\"}");
  CHECK_EQ_INT(gw_eio_error_status(GW_EIO_ERR_SID), 400);
  CHECK_EQ_INT(gw_eio_error_status(GW_EIO_ERR_FORBIDDEN), 403);
}

static void test_query(void) {
  char v[16];
  CHECK_EQ_INT(gw_eio_query_get("EIO=4&transport=polling&t=abc", "transport", v, sizeof v), 0);
  CHECK_STR(v, "polling");
  CHECK_EQ_INT(gw_eio_query_get("EIO=4&transport=polling", "EIO", v, sizeof v), 0);
  CHECK_STR(v, "4");
  /* a name that only starts like the one asked for does not match */
  CHECK_EQ_INT(gw_eio_query_get("EIOX=4&sid=", "EIO", v, sizeof v), -1);
  CHECK_EQ_INT(gw_eio_query_get("sid=", "sid", v, sizeof v), 0);
  CHECK_STR(v, "");
  CHECK_EQ_INT(gw_eio_query_get("flag&x=1", "flag", v, sizeof v), 0);
  CHECK_STR(v, "");
  CHECK_EQ_INT(gw_eio_query_get("", "EIO", v, sizeof v), -1);
  CHECK_EQ_INT(gw_eio_query_get("sid=0123456789abcdefghij", "sid", v, sizeof v), -1); /* too long */

  gw_eio_transport_t t;
  char sid[32];
  CHECK_EQ_INT(gw_eio_check_query("EIO=4&transport=polling", &t, sid, sizeof sid), -1);
  CHECK_EQ_INT(t, GW_EIO_POLLING);
  CHECK_STR(sid, "");
  CHECK_EQ_INT(gw_eio_check_query("EIO=4&transport=websocket&sid=abc", &t, sid, sizeof sid), -1);
  CHECK_EQ_INT(t, GW_EIO_WEBSOCKET);
  CHECK_STR(sid, "abc");
  CHECK_EQ_INT(gw_eio_check_query("transport=polling", &t, sid, sizeof sid), GW_EIO_ERR_VERSION);
  CHECK_EQ_INT(gw_eio_check_query("EIO=abc&transport=polling", &t, sid, sizeof sid), GW_EIO_ERR_VERSION);
  CHECK_EQ_INT(gw_eio_check_query("EIO=3&transport=polling", &t, sid, sizeof sid), GW_EIO_ERR_VERSION);
  CHECK_EQ_INT(gw_eio_check_query("EIO=4", &t, sid, sizeof sid), GW_EIO_ERR_TRANSPORT);
  CHECK_EQ_INT(gw_eio_check_query("EIO=4&transport=abc", &t, sid, sizeof sid), GW_EIO_ERR_TRANSPORT);
}

static void test_open_packet(void) {
  char out[256];
  size_t n = gw_eio_open_packet(out, sizeof out, "SID1", 1, 25000, 20000, 1000000);
  CHECK_STR(out, "0{\"sid\":\"SID1\",\"upgrades\":[\"websocket\"],\"pingInterval\":25000,"
                 "\"pingTimeout\":20000,\"maxPayload\":1000000}");
  CHECK_EQ_INT(n, strlen(out));
  gw_eio_open_packet(out, sizeof out, "x", 0, 300, 200, 1000);
  CHECK_STR(out, "0{\"sid\":\"x\",\"upgrades\":[],\"pingInterval\":300,\"pingTimeout\":200,\"maxPayload\":1000}");
  /* truncated to fit, never past cap */
  n = gw_eio_open_packet(out, 10, "x", 0, 300, 200, 1000);
  CHECK_EQ_INT(n, 9);
  CHECK_EQ_INT(strlen(out), 9);
}

typedef struct {
  int n;
  char text[8][64];
  size_t len[8];
  int binary[8];
  int stop_at;
} seen_t;

static int collect(void *ud, const unsigned char *data, size_t len, int binary) {
  seen_t *s = ud;
  if (s->n < 8) {
    memcpy(s->text[s->n], data, len < 63 ? len : 63);
    s->text[s->n][len < 63 ? len : 63] = 0;
    s->len[s->n] = len;
    s->binary[s->n] = binary;
  }
  s->n++;
  return s->stop_at && s->n == s->stop_at ? 7 : 0;
}

static void test_payloads(void) {
  gw_strbuf_t out = {0};
  CHECK_EQ_INT(gw_eio_payload_append(&out, (const unsigned char *)"42[\"a\"]", 7, 0), 0);
  CHECK_EQ_INT(gw_eio_payload_append(&out, (const unsigned char *)"\x01\x02\x03", 3, 1), 0);
  CHECK_EQ_INT(gw_eio_payload_append(&out, (const unsigned char *)"2", 1, 0), 0);
  CHECK_EQ_INT(out.len, strlen("42[\"a\"]\x1e" "bAQID\x1e" "2"));
  CHECK(memcmp(out.p, "42[\"a\"]\x1e" "bAQID\x1e" "2", out.len) == 0);

  gw_strbuf_t scratch = {0};
  seen_t s;
  memset(&s, 0, sizeof s);
  CHECK_EQ_INT(gw_eio_payload_decode(out.p, out.len, &scratch, collect, &s), 0);
  CHECK_EQ_INT(s.n, 3);
  CHECK_STR(s.text[0], "42[\"a\"]");
  CHECK_EQ_INT(s.binary[0], 0);
  CHECK_EQ_INT(s.binary[1], 1);
  CHECK_EQ_INT(s.len[1], 3);
  CHECK(memcmp(s.text[1], "\x01\x02\x03", 3) == 0);
  CHECK_STR(s.text[2], "2");

  /* one packet, no separator */
  memset(&s, 0, sizeof s);
  CHECK_EQ_INT(gw_eio_payload_decode("40", 2, &scratch, collect, &s), 0);
  CHECK_EQ_INT(s.n, 1);
  /* a callback's non-zero answer stops the walk and is returned */
  memset(&s, 0, sizeof s);
  s.stop_at = 1;
  CHECK_EQ_INT(gw_eio_payload_decode("3\x1e" "3", 3, &scratch, collect, &s), 7);
  CHECK_EQ_INT(s.n, 1);
  /* malformed: empty body, empty packet, bad base64 */
  memset(&s, 0, sizeof s);
  CHECK_EQ_INT(gw_eio_payload_decode("", 0, &scratch, collect, &s), -1);
  CHECK_EQ_INT(gw_eio_payload_decode("3\x1e\x1e" "3", 4, &scratch, collect, &s), -1);
  CHECK_EQ_INT(gw_eio_payload_decode("3\x1e", 2, &scratch, collect, &s), -1);
  CHECK_EQ_INT(gw_eio_payload_decode("bA*==", 5, &scratch, collect, &s), -1);
  /* an empty binary packet is fine */
  memset(&s, 0, sizeof s);
  CHECK_EQ_INT(gw_eio_payload_decode("b", 1, &scratch, collect, &s), 0);
  CHECK_EQ_INT(s.n, 1);
  CHECK_EQ_INT(s.len[0], 0);
  gw_strbuf_free(&out);
  gw_strbuf_free(&scratch);
}

static void test_base64(void) {
  static const char *const vec[][2] = {{"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"},
                                       {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};
  char enc[32];
  unsigned char dec[32];
  size_t dlen;
  for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
    size_t n = gw_base64_encode((const unsigned char *)vec[i][0], strlen(vec[i][0]), enc);
    enc[n] = 0;
    CHECK_STR(enc, vec[i][1]);
    CHECK_EQ_INT(n, GW_BASE64_LEN(strlen(vec[i][0])));
    CHECK_EQ_INT(gw_base64_decode(vec[i][1], strlen(vec[i][1]), dec, &dlen), 0);
    CHECK_EQ_INT(dlen, strlen(vec[i][0]));
    CHECK(memcmp(dec, vec[i][0], dlen) == 0);
  }
  /* every byte value round-trips */
  unsigned char all[256], back[GW_BASE64_DECODED_MAX(GW_BASE64_LEN(256))];
  char b64[GW_BASE64_LEN(256)];
  for (int i = 0; i < 256; i++) all[i] = (unsigned char)i;
  size_t n = gw_base64_encode(all, 256, b64);
  CHECK_EQ_INT(gw_base64_decode(b64, n, back, &dlen), 0);
  CHECK_EQ_INT(dlen, 256);
  CHECK(memcmp(all, back, 256) == 0);
  /* not base64 */
  CHECK_EQ_INT(gw_base64_decode("Zm9", 3, dec, &dlen), -1);      /* length */
  CHECK_EQ_INT(gw_base64_decode("Zm9v!A==", 8, dec, &dlen), -1); /* character */
  CHECK_EQ_INT(gw_base64_decode("Z===", 4, dec, &dlen), -1);     /* too much padding */
  CHECK_EQ_INT(gw_base64_decode("Zg==Zm8=", 8, dec, &dlen), -1); /* padding in the middle */
  CHECK_EQ_INT(gw_base64_decode("Zg=A", 4, dec, &dlen), -1);     /* data after padding */
}

int main(void) {
  test_errors();
  test_query();
  test_open_packet();
  test_payloads();
  test_base64();
  return check_done();
}
