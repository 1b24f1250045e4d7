import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HeartbeatRate } from '../../src/hosts/heartbeat-rate.js';

describe('HeartbeatRate', () => {
  const base = Date.UTC(2026, 11, 1, 12, 0, 0);

  test('counts the heartbeats of the last 60 whole seconds', () => {
    const rate = new HeartbeatRate();
    for (let second = 0; second < 90; second++) rate.record(base + second * 1000 + 500);
    assert.equal(rate.lastMinute(base + 89_900), 60);
    assert.equal(rate.lastMinute(base + 89_000), 60);
  });

  test('forgets a second once it is a minute old, and a quiet minute counts nothing', () => {
    const rate = new HeartbeatRate();
    for (let index = 0; index < 5; index++) rate.record(base);
    rate.record(base + 30_000);
    assert.equal(rate.lastMinute(base + 59_999), 6);
    assert.equal(rate.lastMinute(base + 60_000), 1);
    assert.equal(rate.lastMinute(base + 30_000 + 60_000), 0);
    // A bucket reused by a later second starts again from zero.
    rate.record(base + 120_000);
    assert.equal(rate.lastMinute(base + 120_000), 1);
  });
});
