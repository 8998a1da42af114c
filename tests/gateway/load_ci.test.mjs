// The CI slice of the SSE load (load_sse.mjs; the full run is
// scripts/gateway_load.sh): 500 SSE connections on one project, one event
// per second for 5 s. Every event reaches every connection, no errors nor
// disconnects, publish→receive p99 under 100 ms.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { runLoad, table } from './load_sse.mjs';

const CONNECTIONS = 500;
const DURATION_S = 5;
const P99_MAX_MS = 100;

test(`${CONNECTIONS} SSE connections, 1 event/s for ${DURATION_S} s: all delivered, p99 < ${P99_MAX_MS} ms`, async (t) => {
  const f = await runLoad({ connections: CONNECTIONS, durationS: DURATION_S, workers: 1, connectRatePerSec: 1000 });
  t.diagnostic(`\n${table(f)}`);
  console.log(table(f));
  assert.equal(f.welcomed, CONNECTIONS, 'connections welcomed');
  assert.equal(f.published, DURATION_S, 'events published');
  assert.equal(f.errors, 0, `errors: ${f.errorSamples.join('; ')}`);
  assert.equal(f.disconnects, 0, 'disconnects');
  assert.equal(f.received, f.expected, `received ${f.received} of ${f.expected}`);
  assert.ok(f.latencyE2EMs.p99 < P99_MAX_MS, `publish→receive p99 ${f.latencyE2EMs.p99.toFixed(1)} ms`);
});
