// Self-test of include-cycles.js on small trees written to a temporary folder.
// Run: node --test tests/tools/  (ctest: tools.include_cycles_selftest; tools.include_cycles runs the tool on core/)
'use strict';

const test = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');
const { analyse } = require('./include-cycles.js');

const tool = path.join(__dirname, 'include-cycles.js');

function tree(files) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'inc-cycles-'));
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, name)), { recursive: true });
    fs.writeFileSync(path.join(root, name), text);
  }
  return root;
}

function run(args) {
  return spawnSync(process.execPath, [tool, ...args], { encoding: 'utf8' });
}

test('a layered tree has no cycle; the CLI says so and exits 0', () => {
  const root = tree({
    'a.h': '#include "b.h"\n',
    'a.c': '#include "a.h"\n#include "b.h"\n#include <stdio.h>\n',
    'b.h': '',
    'b.c': '#include "b.h"\n#include "missing_generated.h"\n',
  });
  const r = analyse(root);
  assert.strictEqual(r.modules, 2);
  assert.deepStrictEqual(r.cycles, []);
  const cli = run([root]);
  assert.strictEqual(cli.status, 0);
  assert.match(cli.stdout, /no include cycle among 2 modules/);
});

test('a .c and its .h are one module: implementation includes make the cycle', () => {
  const root = tree({
    'gateway.h': '',
    'gateway.c': '#include "gateway.h"\n#include "room.h"\n',
    'room.h': '',
    'room.c': '#include "room.h"\n\n#include "gateway.h"\n',
  });
  const r = analyse(root);
  assert.strictEqual(r.cycles.length, 1);
  assert.deepStrictEqual(r.cycles[0].modules, ['gateway', 'room']);
  const back = r.cycles[0].edges.find((e) => e.from === 'room');
  assert.deepStrictEqual(back.at, ['room.c:3']); // the line to change
  // file by file there is no loop (gateway.c -> room.h, room.c -> gateway.h)
  assert.deepStrictEqual(analyse(root, { byFile: true }).cycles, []);
  const cli = run([root]);
  assert.strictEqual(cli.status, 1);
  assert.match(cli.stdout, /cycle 1: 2 modules tied together: gateway, room/);
  assert.match(cli.stdout, /room -> gateway {2}\(room\.c:3\)/);
});

test('includes in comments do not count; includes under #if do', () => {
  const root = tree({
    'a.c': '/* old:\n#include "b.h"\n*/\n// #include "b.h"\nconst char *s = "/*";\n#include "c.h"\n',
    'b.c': '#include "a.h"\n',
    'a.h': '',
    'b.h': '',
    'c.h': '#if 0\n#include "a.h"\n#endif\n',
  });
  const r = analyse(root);
  assert.strictEqual(r.cycles.length, 1); // a <-> c, through the #if 0
  assert.deepStrictEqual(r.cycles[0].modules, ['a', 'c']);
});

test('layer folders: "log.h" resolves to base/log.h; every cycle is reported with a path', () => {
  const root = tree({
    'base/log.h': '',
    'base/log.c': '#include "log.h"\n',
    'hub/room.c': '#include "log.h"\n#include "../node/node.h"\n',
    'hub/room.h': '',
    'node/node.c': '#include "policy.h"\n',
    'node/node.h': '',
    'policy/policy.c': '#include "room.h"\n',
    'policy/policy.h': '',
    'app/x.c': '#include "y.h"\n',
    'app/x.h': '',
    'app/y.h': '',
    'app/y.c': '#include "x.h"\n',
  });
  const r = analyse(root);
  assert.strictEqual(r.cycles.length, 2);
  const big = r.cycles.find((c) => c.modules.length === 3);
  assert.deepStrictEqual(big.modules, ['hub/room', 'node/node', 'policy/policy']);
  assert.deepStrictEqual(big.example, ['hub/room', 'node/node', 'policy/policy', 'hub/room']);
  assert.ok(!big.modules.includes('base/log'));
  assert.ok(r.cycles.some((c) => c.modules.join() === 'app/x,app/y'));
});

test('an ambiguous name is reported and ignored; bad usage exits 2', () => {
  const root = tree({
    'one/util.h': '',
    'two/util.h': '',
    'main.c': '#include "util.h"\n',
  });
  const r = analyse(root);
  assert.strictEqual(r.ambiguous.length, 1);
  const cli = run([root]);
  assert.strictEqual(cli.status, 0);
  assert.match(cli.stderr, /ambiguous include main\.c: "util\.h"/);
  assert.strictEqual(run([path.join(root, 'nope')]).status, 2);
  assert.strictEqual(run(['--bogus']).status, 2);
});
