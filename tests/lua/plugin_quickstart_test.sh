#!/bin/sh
# `aivo-gw test` for a plugin that lives outside the repository (docs/policy-api.md):
# copies examples/plugin-quickstart to a temporary folder and runs its specs there, with
# the built binary and with an installed copy (cmake --install into a temporary prefix);
# every spec passes. The same with a deliberately failing spec added: non-zero.
# usage: plugin_quickstart_test.sh AIVO_GW_BIN SOURCE_DIR BUILD_DIR
set -eu
BIN=$(realpath "$1") SRC=$(realpath "$2") BUILD=$(realpath "$3")
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM

run_in() { # folder, binary, expected outcome (pass|fail)
  if (cd "$1" && "$2" test -o TAP >"$TMP/out" 2>&1); then got=pass; else got=fail; fi
  if [ "$got" != "$3" ]; then
    echo "FAILED: aivo-gw test in $1 with $2: expected $3, got $got"
    cat "$TMP/out"
    exit 1
  fi
  echo "ok: $2 test in $1: $3"
}

mkdir "$TMP/plugin"
cp -R "$SRC/examples/plugin-quickstart/." "$TMP/plugin/"
run_in "$TMP/plugin" "$BIN" pass
grep -q '^ok 5 ' "$TMP/out" || { echo "FAILED: expected 5 specs to pass"; cat "$TMP/out"; exit 1; }

cmake --install "$BUILD" --prefix "$TMP/prefix" >/dev/null
run_in "$TMP/plugin" "$TMP/prefix/bin/aivo-gw" pass
test -f "$TMP/prefix/share/aivo-gw/lua-test/helpers/fake_core.lua"

# a plugin in a --plugin-path folder of its own, the spec elsewhere
mkdir "$TMP/other" "$TMP/other/spec"
mv "$TMP/plugin/plugins" "$TMP/shared-plugins"
cp "$TMP/plugin/spec/greet_spec.lua" "$TMP/other/spec/"
(cd "$TMP/other" && "$BIN" test --plugin-path "$TMP/shared-plugins" >"$TMP/out" 2>&1) ||
  { echo "FAILED: --plugin-path"; cat "$TMP/out"; exit 1; }
echo "ok: --plugin-path"

cat >"$TMP/other/spec/broken_spec.lua" <<'LUA'
describe("a broken spec", function()
  it("fails", function() assert.equal(1, 2) end)
end)
LUA
(cd "$TMP/other" && "$BIN" test --plugin-path "$TMP/shared-plugins" >"$TMP/out" 2>&1) &&
  { echo "FAILED: a failing spec did not fail aivo-gw test"; cat "$TMP/out"; exit 1; }
echo "ok: a failing spec fails aivo-gw test"
