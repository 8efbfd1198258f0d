#!/usr/bin/env node
// A tiny static server for the demo page (Node 18+, no dependencies).
//
//   (cd clients/js && npm ci)          # React 18's UMD builds, once
//   node examples/web/serve.js         # http://localhost:3000/
//
// Serves only: the page (examples/web/), the client kit (clients/js/, without
// its node_modules) and React's two UMD files (as /vendor/react.js and
// /vendor/react-dom.js). Options: --port N (default 3000: the gateway's
// default allowed origin is http://localhost:3000), --host H (default
// 127.0.0.1 and ::1, loopback only).
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const MODULES = path.join(REPO, 'clients', 'js', 'node_modules');
const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.json': 'application/json', '.png': 'image/png', '.svg': 'image/svg+xml',
};
const VENDOR = {
  '/vendor/react.js': path.join(MODULES, 'react', 'umd', 'react.production.min.js'),
  '/vendor/react-dom.js': path.join(MODULES, 'react-dom', 'umd', 'react-dom.production.min.js'),
};
const ROOTS = [path.join(REPO, 'examples', 'web'), path.join(REPO, 'clients', 'js')];

// Map a URL path to a file, or null: only under ROOTS, never node_modules,
// never outside (a normalised path that escapes is refused).
export function resolvePath(urlPath) {
  let p;
  try { p = decodeURIComponent(urlPath.split('?')[0]); } catch { return null; }
  if (p === '/' || p === '/index.html') return path.join(REPO, 'examples', 'web', 'index.html');
  if (VENDOR[p]) return VENDOR[p];
  if (p.includes('\0')) return null;
  const file = path.resolve(REPO, '.' + path.posix.normalize(p));
  if (file.split(path.sep).includes('node_modules')) return null;
  return ROOTS.some((r) => file.startsWith(r + path.sep)) ? file : null;
}

export function createServer() {
  return http.createServer((req, res) => {
    const file = req.method === 'GET' || req.method === 'HEAD' ? resolvePath(req.url) : null;
    const fail = (code, text) => { res.writeHead(code, { 'content-type': 'text/plain' }); res.end(text + '\n'); };
    if (!file) return fail(404, 'not found');
    fs.readFile(file, (err, body) => {
      if (err) {
        return fail(404, VENDOR[req.url] ? 'not found: run `npm ci` in clients/js first (React UMD builds)' : 'not found');
      }
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream', 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    });
  });
}

function main(argv) {
  const arg = (name, dflt) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : dflt; };
  const port = Number(arg('--port', process.env.PORT || 3000));
  const host = arg('--host', null);
  if (!fs.existsSync(VENDOR['/vendor/react.js'])) {
    console.error(`warning: ${VENDOR['/vendor/react.js']} is missing: run \`npm ci\` in clients/js`);
  }
  const hosts = host ? [host] : ['127.0.0.1', '::1'];
  for (const h of hosts) {
    const srv = createServer();
    srv.on('error', (e) => { if (h !== '::1' || host) { console.error(`cannot listen on ${h}:${port}: ${e.message}`); process.exit(1); } });
    srv.listen(port, h, () => {
      const a = srv.address();
      if (h === hosts[0]) {
        console.log(`aivo demo on http://${host || 'localhost'}:${a.port}/  (allow this origin in the gateway: origins.allowed)`);
      }
    });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main(process.argv.slice(2));
