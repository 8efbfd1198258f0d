/* `aivo-gw test`: runs a plugin author's busted specs the way the gateway runs plugins:
 * under LuaJIT, with the aivo runtime, the test helpers (helpers.fake_core) and the plugin
 * search path on the module path, from any folder (docs/policy-api.md, "Testing a plugin
 * with busted"). */
#ifndef GW_TEST_CMD_H
#define GW_TEST_CMD_H

/* argv[0] is "test". Execs busted (returns only on failure: 2 usage, 127 no busted). */
int gw_test_cmd(int argc, char **argv);

#endif
