/* `aivo-gw token`: mints a token with the configured HMAC key, so a first session needs no
 * other tool (like `centrifugo gentoken`). */
#ifndef GW_TOKEN_CMD_H
#define GW_TOKEN_CMD_H

/* argv[0] is "token". Returns the process exit code (0, 1: no key, 2: usage). */
int gw_token_cmd(int argc, char **argv);

/* "90", "90s", "15m", "1h", "7d" -> seconds; -1 when not a duration. */
double gw_token_parse_ttl(const char *s);

#endif
