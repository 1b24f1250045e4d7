import assert from 'node:assert/strict';
import { test } from 'node:test';
import { soak } from '../../bench/soak.js';

test('a short soak: hosts that keep heartbeating are all listed, stopped ones expire, memory is flat', async (t) => {
  const result = await soak({
    seconds: 12,
    hosts: 1500,
    services: 30,
    hostTtlSeconds: 3,
    heartbeatEverySeconds: 1,
    readers: 4,
    dyingShare: 0.1,
    backend: 'InMemory',
    minimumBeatsPerHost: 4,
  });
  t.diagnostic(
    `soak: ${result.requests} requests, at least ${result.fewestBeatsOfALiveHost} heartbeats per surviving host, heartbeat p99 ${result.heartbeatP99Ms.toFixed(1)} ms, read p99 ${result.readP99Ms.toFixed(1)} ms, rss ${result.rssMbSamples.map((mb) => Math.round(mb)).join(' ')} MB`,
  );
  assert.equal(result.failedRequests, 0);
  assert.equal(result.missingLiveHosts, 0, 'a host that kept heartbeating is missing');
  assert.equal(result.returnedDeadHosts, 0, 'an expired host was returned');
  // What makes it a soak: every surviving host refreshed its record again and again while hosts
  // around it expired (a throughput figure would be a benchmark's business, and this machine's load).
  assert.ok(
    result.fewestBeatsOfALiveHost >= 4,
    `a surviving host sent only ${result.fewestBeatsOfALiveHost} heartbeats`,
  );
  assert.ok(
    result.rssGrowthPercent < 25,
    `resident memory grew ${result.rssGrowthPercent.toFixed(1)}% over the second half`,
  );
});
