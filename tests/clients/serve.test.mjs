// examples/web/serve.js, the demo's static server: it serves the page, the
// kit and React's UMD files, and nothing else of the repository.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createServer } from '../../examples/web/serve.js';

function get(port, path) {
  return new Promise((resolve, reject) => {
    // a raw request path: no client-side normalisation of ../
    const req = http.request({ host: '127.0.0.1', port, path, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, type: res.headers['content-type'], body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('serves the page, the kit and React; refuses everything else', async () => {
  const srv = createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  try {
    const page = await get(port, '/');
    assert.equal(page.status, 200);
    assert.match(page.type, /text\/html/);
    assert.match(page.body, /importmap/);
    for (const p of ['/examples/web/app.js', '/clients/js/index.js', '/clients/js/react.js', '/clients/js/src/queue.js', '/vendor/react.js', '/vendor/react-dom.js']) {
      const r = await get(port, p);
      assert.equal(r.status, 200, p);
      assert.match(r.type, /javascript/, p);
    }
    for (const p of ['/core/app/main.c', '/clients/js/../../core/app/main.c', '/examples/web/..%2f..%2fREADME.md', '/clients/js/node_modules/ws/package.json',
      '/clients/js/%2e%2e/%2e%2e/scripts/run.sh', '/tests/policies/client_kit.lua', '/examples/web/%00', '/etc/passwd']) {
      assert.equal((await get(port, p)).status, 404, p);
    }
  } finally {
    srv.close();
  }
});
