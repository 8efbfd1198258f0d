#!/usr/bin/env node
// Include-cycle check for core/ (issue 13): reads every #include "..." among core/**/*.{c,h},
// builds the dependency graph between modules, and reports each cycle (every strongly
// connected component of more than one module). Exit status: 0 when there is none, 1 when
// there is one or more, 2 on a usage error. No dependencies beyond Node itself.
//
// Usage: node tests/tools/include-cycles.js [--json] [--by-file] [core-folder]
//
// Modules, not files: a .c and the .h of the same name in the same folder are ONE node
// (core/hub/room.c + core/hub/room.h = "room"). A cycle between files alone is rare in C (headers
// seldom include each other in a loop); the cycles that make a layering impossible go
// through implementations: room.c includes gateway.h while gateway.c includes room.h. At
// file level that is no cycle at all (gateway.c -> room.h, room.c -> gateway.h); at module
// level it is gateway <-> room, which is what a layer rule forbids. --by-file checks the
// file graph instead (each file its own node).
//
// Resolution of "x.h": beside the including file first, then from the core folder, then
// by path suffix anywhere under it (a layer's library exposes its folder as an include
// directory, so core/base/log.h is included as "log.h"). Names that match nothing (system
// or generated headers written with quotes) are ignored; a name matching several files is
// reported as ambiguous on stderr and ignored. Includes inside comments are ignored;
// includes under #if are counted (a conditional dependency is still a dependency).
'use strict';

const fs = require('fs');
const path = require('path');

function listSources(root) {
  const out = [];
  (function walk(dir) {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.[ch]$/.test(e.name)) out.push(p);
    }
  })(root);
  return out.sort();
}

// Comments become spaces (newlines kept, so line numbers stay right); strings are left alone
// except that a comment opener inside one does not start a comment.
function stripComments(src) {
  let out = '';
  let i = 0;
  const n = src.length;
  while (i < n) {
    const c = src[i];
    const d = src[i + 1];
    if (c === '/' && d === '*') {
      const end = src.indexOf('*/', i + 2);
      const stop = end < 0 ? n : end + 2;
      out += src.slice(i, stop).replace(/[^\n]/g, ' ');
      i = stop;
    } else if (c === '/' && d === '/') {
      let end = src.indexOf('\n', i);
      if (end < 0) end = n;
      out += ' '.repeat(end - i);
      i = end;
    } else if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < n && src[j] !== c && src[j] !== '\n') j += src[j] === '\\' ? 2 : 1;
      out += src.slice(i, j + 1);
      i = j + 1;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

function parseIncludes(file) {
  const lines = stripComments(fs.readFileSync(file, 'utf8')).split('\n');
  const incs = [];
  lines.forEach((line, k) => {
    const m = /^\s*#\s*include\s*"([^"]+)"/.exec(line);
    if (m) incs.push({ name: m[1], line: k + 1 });
  });
  return incs;
}

function moduleOf(rel, byFile) {
  return byFile ? rel : rel.replace(/\.[ch]$/, '');
}

// Tarjan's strongly connected components, iterative (no recursion limit on a big graph).
function sccs(nodes, adj) {
  let index = 0;
  const idx = new Map();
  const low = new Map();
  const onStack = new Set();
  const stack = [];
  const result = [];
  for (const start of nodes) {
    if (idx.has(start)) continue;
    const work = [[start, 0]];
    idx.set(start, index);
    low.set(start, index);
    index++;
    stack.push(start);
    onStack.add(start);
    while (work.length) {
      const top = work[work.length - 1];
      const [v, i] = top;
      const succ = [...(adj.get(v) || [])];
      if (i < succ.length) {
        top[1]++;
        const w = succ[i];
        if (!idx.has(w)) {
          idx.set(w, index);
          low.set(w, index);
          index++;
          stack.push(w);
          onStack.add(w);
          work.push([w, 0]);
        } else if (onStack.has(w)) {
          low.set(v, Math.min(low.get(v), idx.get(w)));
        }
      } else {
        work.pop();
        if (work.length) {
          const u = work[work.length - 1][0];
          low.set(u, Math.min(low.get(u), low.get(v)));
        }
        if (low.get(v) === idx.get(v)) {
          const comp = [];
          let w;
          do {
            w = stack.pop();
            onStack.delete(w);
            comp.push(w);
          } while (w !== v);
          result.push(comp.sort());
        }
      }
    }
  }
  return result;
}

// One shortest cycle through `from` inside a component, as a list of modules (for the
// message: the whole component can be large, one loop tells the reader where to cut).
function shortestCycle(from, comp, adj) {
  const inComp = new Set(comp);
  const prev = new Map([[from, null]]);
  const queue = [from];
  while (queue.length) {
    const v = queue.shift();
    for (const w of adj.get(v) || []) {
      if (!inComp.has(w)) continue;
      if (w === from) {
        const pathOut = [from];
        for (let u = v; u !== from; u = prev.get(u)) pathOut.splice(1, 0, u);
        pathOut.push(from);
        return pathOut;
      }
      if (!prev.has(w)) {
        prev.set(w, v);
        queue.push(w);
      }
    }
  }
  return [from];
}

function analyse(root, { byFile = false } = {}) {
  const files = listSources(root);
  const rels = files.map((f) => path.relative(root, f).split(path.sep).join('/'));
  const relSet = new Set(rels);
  const modules = [...new Set(rels.map((r) => moduleOf(r, byFile)))].sort();
  const adj = new Map(modules.map((m) => [m, new Set()]));
  const evidence = new Map(); // "a -> b" => ["a.c:12", ...]
  const ambiguous = [];

  function resolve(fromRel, name) {
    const beside = path.posix.normalize(path.posix.join(path.posix.dirname(fromRel), name));
    if (relSet.has(beside)) return beside;
    const fromRoot = path.posix.normalize(name);
    if (relSet.has(fromRoot)) return fromRoot;
    const bySuffix = rels.filter((r) => r.endsWith('/' + fromRoot));
    if (bySuffix.length === 1) return bySuffix[0];
    if (bySuffix.length > 1) ambiguous.push(`${fromRel}: "${name}" matches ${bySuffix.join(', ')}`);
    return null;
  }

  files.forEach((file, k) => {
    const rel = rels[k];
    const from = moduleOf(rel, byFile);
    for (const inc of parseIncludes(file)) {
      const target = resolve(rel, inc.name);
      if (!target) continue;
      const to = moduleOf(target, byFile);
      if (to === from) continue; /* x.c including x.h */
      adj.get(from).add(to);
      const key = `${from} -> ${to}`;
      if (!evidence.has(key)) evidence.set(key, []);
      evidence.get(key).push(`${rel}:${inc.line}`);
    }
  });

  const cycles = sccs(modules, adj)
    .filter((c) => c.length > 1)
    .map((comp) => {
      const inComp = new Set(comp);
      const edges = [];
      for (const a of comp)
        for (const b of [...adj.get(a)].sort())
          if (inComp.has(b)) edges.push({ from: a, to: b, at: evidence.get(`${a} -> ${b}`) });
      return { modules: comp, example: shortestCycle(comp[0], comp, adj), edges };
    });
  return { root, files: files.length, modules: modules.length, cycles, ambiguous };
}

function main(argv) {
  const opts = { json: false, byFile: false };
  let root = null;
  for (const a of argv) {
    if (a === '--json') opts.json = true;
    else if (a === '--by-file') opts.byFile = true;
    else if (a === '-h' || a === '--help') {
      process.stdout.write('usage: include-cycles.js [--json] [--by-file] [core-folder]\n');
      return 0;
    } else if (a.startsWith('-') || root) {
      process.stderr.write(`include-cycles: unexpected argument ${a}\n`);
      return 2;
    } else root = a;
  }
  root = path.resolve(root || path.join(__dirname, '..', '..', 'core'));
  if (!fs.existsSync(root) || !fs.statSync(root).isDirectory()) {
    process.stderr.write(`include-cycles: ${root} is not a folder\n`);
    return 2;
  }
  const r = analyse(root, opts);
  for (const a of r.ambiguous) process.stderr.write(`include-cycles: ambiguous include ${a}\n`);
  const unit = opts.byFile ? 'files' : 'modules';
  if (opts.json) {
    process.stdout.write(JSON.stringify(r, null, 2) + '\n');
  } else if (!r.cycles.length) {
    process.stdout.write(`include-cycles: no include cycle among ${r.modules} ${unit} (${r.files} files) in ${root}\n`);
  } else {
    process.stdout.write(`include-cycles: ${r.cycles.length} cycle(s) among ${r.modules} ${unit} in ${root}\n`);
    r.cycles.forEach((c, i) => {
      process.stdout.write(`\ncycle ${i + 1}: ${c.modules.length} ${unit} tied together: ${c.modules.join(', ')}\n`);
      process.stdout.write(`  e.g. ${c.example.join(' -> ')}\n`);
      process.stdout.write('  includes inside it:\n');
      for (const e of c.edges) process.stdout.write(`    ${e.from} -> ${e.to}  (${e.at.join(', ')})\n`);
    });
  }
  return r.cycles.length ? 1 : 0;
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));

module.exports = { analyse, stripComments, parseIncludes, sccs };
