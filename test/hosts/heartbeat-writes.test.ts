import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import { ManualClock } from '../../src/clock.js';
import { ConfigError, loadConfig } from '../../src/config.js';
import type { Heartbeat } from '../../src/hosts/model.js';
import { HostService } from '../../src/hosts/host-service.js';
import type { HeartbeatInput } from '../../src/hosts/model.js';
import { MemoryHostStore } from '../../src/store/memory-host-store.js';
import { RecordingStats } from '../helpers/stats.js';

/** An InMemory store that counts the heartbeats written to it. */
class CountingStore extends MemoryHostStore {
  writes = 0;
  override heartbeat(heartbeat: Heartbeat) {
    this.writes++;
    return super.heartbeat(heartbeat);
  }
}

const beat = (overrides: Partial<HeartbeatInput> = {}): HeartbeatInput => ({
  service: 'web',
  ip_address: '10.0.0.1',
  port: 80,
  revision: 'r1',
  service_repo_name: '',
  tags: { az: 'a', region: 'r', instance_id: 'i-1' },
  ...overrides,
});

function serviceWith(intervalSeconds: number, hostTtlSeconds = 30) {
  const store = new CountingStore();
  const clock = new ManualClock();
  const hostService = new HostService({
    store,
    clock,
    hostTtlSeconds,
    heartbeatWriteIntervalSeconds: intervalSeconds,
    cacheType: 'null',
    cacheTtlSeconds: 30,
    stats: new RecordingStats(),
    log: pino({ level: 'silent' }),
  });
  return { store, clock, hostService };
}

describe('HEARTBEAT_WRITE_INTERVAL', () => {
  test('a heartbeat that says what was last written, within the interval, is not written again', async () => {
    const { store, clock, hostService } = serviceWith(25);
    for (let second = 0; second < 60; second += 5) {
      await hostService.heartbeat(beat());
      clock.advance(5_000);
    }
    // At 0, 25 and 50 s.
    assert.equal(store.writes, 3);
  });

  test('anything else the heartbeat says is written at once: port, revision, repo, a tag', async () => {
    const { store, clock, hostService } = serviceWith(25);
    await hostService.heartbeat(beat());
    const changes: Array<Partial<HeartbeatInput>> = [
      { port: 81 },
      { revision: 'r2' },
      { service_repo_name: 'repo' },
      { tags: { az: 'a', region: 'r', instance_id: 'i-1', canary: true } },
    ];
    for (const change of changes) {
      clock.advance(1_000);
      await hostService.heartbeat(beat(change));
    }
    assert.equal(store.writes, 1 + changes.length);
    const [host] = (await hostService.listByService('web')).hosts;
    assert.equal(host?.tags.canary, true);
  });

  test('a host that heartbeats on time is never expired, though its stored check-in trails by up to the interval', async () => {
    // Heartbeats every 20 s, written at 0, 40, 80 s: just before 40 s the stored check-in is 39 s old, past HOST_TTL.
    const { store, clock, hostService } = serviceWith(25, 30);
    for (let second = 0; second <= 120; second += 20) {
      await hostService.heartbeat(beat());
      clock.advance(19_000);
      assert.equal((await hostService.listByService('web')).hosts.length, 1, `served at ${second + 19} s`);
      clock.advance(1_000);
    }
    assert.equal(store.writes, 4);
    // Once it stops, it is expired after HOST_TTL plus the interval at most.
    clock.advance(56_000);
    assert.equal((await hostService.listByService('web')).hosts.length, 0);
  });

  test('a deleted host is re-created by its next heartbeat, not one interval later', async () => {
    const { clock, hostService } = serviceWith(25);
    await hostService.heartbeat(beat());
    await hostService.deregister('web', '10.0.0.1');
    clock.advance(1_000);
    await hostService.heartbeat(beat());
    assert.equal((await hostService.listByService('web')).hosts.length, 1);
  });

  test('off (0, the default): every heartbeat is written', async () => {
    const { store, clock, hostService } = serviceWith(0);
    for (let index = 0; index < 10; index++) {
      await hostService.heartbeat(beat());
      clock.advance(1_000);
    }
    assert.equal(store.writes, 10);
  });

  test('the setting must be below HOST_TTL', () => {
    assert.throws(() => loadConfig({ HOST_TTL: '30', HEARTBEAT_WRITE_INTERVAL: '30' }), ConfigError);
    assert.equal(loadConfig({ HOST_TTL: '30', HEARTBEAT_WRITE_INTERVAL: '29.5' }).heartbeatWriteIntervalSeconds, 29.5);
    assert.equal(loadConfig({}).heartbeatWriteIntervalSeconds, 0);
  });
});
