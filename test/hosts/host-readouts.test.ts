import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import { ManualClock } from '../../src/clock.js';
import { HostReadouts } from '../../src/hosts/host-readouts.js';
import { HostService } from '../../src/hosts/host-service.js';
import { statsdCounter } from '../../src/stats.js';
import { MemoryHostStore } from '../../src/store/memory-host-store.js';
import { RecordingStats } from '../helpers/stats.js';

describe('HostReadouts', () => {
  test('heartbeats taken through the service count for one minute, written or not', async () => {
    const clock = new ManualClock();
    const stats = new RecordingStats();
    const service = new HostService({
      store: new MemoryHostStore(),
      clock,
      hostTtlSeconds: 30,
      heartbeatWriteIntervalSeconds: 10,
      cacheType: 'null',
      cacheTtlSeconds: 30,
      stats,
      log: pino({ level: 'silent' }),
    });
    const beat = () =>
      service.heartbeat({
        service: 'users',
        ip_address: '10.0.0.1',
        port: 80,
        revision: 'r1',
        service_repo_name: '',
        tags: {},
      });
    await beat();
    clock.advance(1_000);
    await beat(); // within the write interval: answered without a write, still a heartbeat taken
    assert.equal(service.readouts.heartbeatsLastMinute(), 2);
    assert.equal(stats.count(statsdCounter.heartbeat('users', 'success')), 2);
    clock.advance(59_000);
    assert.equal(service.readouts.heartbeatsLastMinute(), 1, 'the first heartbeat is a minute old');
    clock.advance(1_000);
    assert.equal(service.readouts.heartbeatsLastMinute(), 0);
  });

  test('a heartbeat refused before the domain is counted as a failure of its service', () => {
    const stats = new RecordingStats();
    const readouts = new HostReadouts({ clock: new ManualClock(), stats, protectedServices: () => [] });
    readouts.heartbeatFailed('users');
    assert.equal(stats.count(statsdCounter.heartbeat('users', 'failure')), 1);
    assert.equal(readouts.heartbeatsLastMinute(), 0, 'a failed heartbeat is not a heartbeat taken');
  });

  test('protection status: its settings (off when unset) and the services it holds now', () => {
    let held: string[] = [];
    const unset = new HostReadouts({
      clock: new ManualClock(),
      stats: new RecordingStats(),
      protectedServices: () => held,
    });
    assert.deepEqual(unset.expiryProtectionStatus(), {
      enabled: false,
      threshold: 0,
      minHosts: 0,
      maxSeconds: 0,
      protectedServices: [],
    });
    const set = new HostReadouts({
      clock: new ManualClock(),
      stats: new RecordingStats(),
      expiryProtection: { enabled: true, threshold: 0.5, minHosts: 3, maxSeconds: 600 },
      protectedServices: () => held,
    });
    held = ['orders', 'users'];
    assert.deepEqual(set.expiryProtectionStatus(), {
      enabled: true,
      threshold: 0.5,
      minHosts: 3,
      maxSeconds: 600,
      protectedServices: ['orders', 'users'],
    });
  });
});
