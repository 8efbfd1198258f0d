// The React bindings (clients/js/react.js): the indicator's accessible markup
// in its three variants, rendered with react-dom/server. The hooks need a DOM;
// the browser tests (tests/browser/) exercise them in the demo page.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kitRequire } from './lib.mjs';
import { ConnectionQualityIndicator, qualityDescription } from '../../clients/js/react.js';

const React = kitRequire('react');
const { renderToStaticMarkup } = kitRequire('react-dom/server');
const render = (props) => renderToStaticMarkup(React.createElement(ConnectionQualityIndicator, props));
const fair = { quality: 'fair', latency: 420.4, jitter: 30, packetLoss: 2.5, stability: 100, state: 'open' };

for (const variant of ['full', 'badge', 'card']) {
  test(`indicator "${variant}": text label, role=status, aria-live, aria-label with class and rtt, data-quality`, () => {
    const html = render({ quality: fair, variant, className: 'mine' });
    assert.match(html, /role="status"/);
    assert.match(html, /aria-live="polite"/);
    assert.match(html, /aria-label="Connection quality: Fair, round trip 420 ms, packet loss 2.5 %"/);
    assert.match(html, /data-quality="fair"/);
    assert.match(html, new RegExp(`data-variant="${variant}"`));
    assert.match(html, new RegExp(`class="aivo-quality aivo-quality--${variant} mine"`));
    assert.match(html, /<span class="aivo-quality__label">Fair<\/span>/, 'a visible text label, not colour alone');
    assert.match(html, /data-bars="2"/, 'the bars repeat the class in shape');
  });
}

test('indicator: card shows the metrics; offline says so and leaves out the stale rtt', () => {
  const card = render({ quality: fair, variant: 'card' });
  assert.match(card, /<dt>Latency<\/dt><dd>420 ms<\/dd>/);
  assert.match(card, /<dt>Packet loss<\/dt><dd>2.5 %<\/dd>/);
  const off = render({ quality: { ...fair, quality: 'offline', state: 'reconnecting' }, variant: 'badge' });
  assert.match(off, /aria-label="Connection quality: Offline"/);
  assert.match(off, />Offline</);
  // labels can be translated
  const de = render({ quality: fair, variant: 'badge', labels: { fair: 'Mittel' } });
  assert.match(de, />Mittel</);
  assert.equal(qualityDescription({ quality: 'unknown', latency: null }), 'Connection quality: Unknown');
});

test('indicator without a source renders "unknown" instead of failing', () => {
  assert.match(render({}), /data-quality="unknown"/);
});
