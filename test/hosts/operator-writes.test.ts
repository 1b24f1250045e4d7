import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import { ManualClock } from '../../src/clock.js';
import { InvalidInputError, NotFoundError } from '../../src/errors.js';
import { HostEvents } from '../../src/hosts/host-events.js';
import { formatCheckIn, effectiveStatus } from '../../src/hosts/model.js';
import { OperatorWrites } from '../../src/hosts/operator-writes.js';
import { statsdCounter } from '../../src/stats.js';
import { MemoryHostStore } from '../../src/store/memory-host-store.js';
import { RecordingStats } from '../helpers/stats.js';

const LIFETIME_MS = 30_000;
const RECORD = { service: 'users', port: 80, revision: 'r1', service_repo_name: '', tags: {} } as const;

/** Operator writes on a memory store and a manual clock; `published` lists the local changes, `forgotten` the instances forgotten. */
function writesWith() {
  const store = new MemoryHostStore();
  const clock = new ManualClock();
  const stats = new RecordingStats();
  const log = pino({ level: 'silent' });
  const events = new HostEvents(log);
  const published: string[] = [];
  events.onLocalChange((service) => published.push(service));
  const forgotten: string[] = [];
  const writes = new OperatorWrites({
    store,
    instanceKey: 'ip',
    hostLifetimeMs: LIFETIME_MS,
    expiry: { forgetInstance: (service, key) => forgotten.push(`${service} ${key}`) },
    events,
    clock,
    stats,
    log,
  });
  /** A heartbeat of `ip` written now, as a front end's would be. */
  const beat = (ip: string) =>
    store.heartbeat({ ...RECORD, ip_address: ip, last_check_in: formatCheckIn(clock.now()) });
  return { store, clock, stats, published, forgotten, writes, beat };
}

describe('OperatorWrites', () => {
  test('a delete removes the host, forgets what was kept about it, counts it and publishes the change', async () => {
    const { store, stats, published, forgotten, writes, beat } = writesWith();
    await beat('10.0.0.1');
    await writes.deregister('users', '10.0.0.1');
    assert.equal(await store.get('users', '10.0.0.1'), undefined);
    assert.deepEqual(forgotten, ['users 10.0.0.1']);
    assert.equal(stats.count(statsdCounter.hostRemoved('users', 'deleted')), 1);
    assert.deepEqual(published, ['users']);
  });

  test('a delete of nothing is the 400 the original answered, and publishes nothing', async () => {
    const { published, writes } = writesWith();
    await assert.rejects(writes.deregister('users', '10.0.0.9', undefined, 8080), (error: unknown) => {
      assert.ok(error instanceof InvalidInputError);
      assert.equal(error.message, "Host 10.0.0.9 port 8080 of service 'users' not found.");
      return true;
    });
    assert.deepEqual(published, []);
  });

  test('a weight at an address reaches the live host only; an expired one is a 404', async () => {
    const { store, clock, published, writes, beat } = writesWith();
    await beat('10.0.0.1');
    await writes.setWeight('users', '10.0.0.1', 40);
    assert.equal((await store.get('users', '10.0.0.1'))?.tags.load_balancing_weight, 40);
    assert.deepEqual(published, ['users']);
    clock.advance(LIFETIME_MS + 1);
    await assert.rejects(writes.setWeight('users', '10.0.0.1', 50), NotFoundError);
    assert.equal((await store.get('users', '10.0.0.1'))?.tags.load_balancing_weight, 40);
  });

  test('a weight for the whole service reaches every live host; with none it is no error and no change', async () => {
    const { store, clock, published, writes, beat } = writesWith();
    await writes.setWeight('users', undefined, 5);
    assert.deepEqual(published, []);
    await beat('10.0.0.1');
    await beat('10.0.0.2');
    clock.advance(LIFETIME_MS);
    await beat('10.0.0.3');
    clock.advance(1);
    await writes.setWeight('users', undefined, 7);
    const weights = (await store.listByService('users')).hosts.map((host) => host.tags.load_balancing_weight);
    assert.deepEqual(weights.sort(), [7, undefined, undefined]);
    assert.deepEqual(published, ['users']);
  });

  test('a status override is published only when it changes the status a proxy sees', async () => {
    const { store, published, writes, beat } = writesWith();
    await beat('10.0.0.1');
    await writes.setStatusOverride('users', '10.0.0.1', undefined, 'DRAINING');
    const host = await store.get('users', '10.0.0.1');
    assert.ok(host);
    assert.equal(effectiveStatus(host), 'DRAINING');
    assert.deepEqual(published, ['users']);
    await writes.setStatusOverride('users', '10.0.0.1', undefined, 'DRAINING');
    assert.deepEqual(published, ['users'], 'the same override again changes nothing a proxy sees');
    await writes.setStatusOverride('users', '10.0.0.1', 80, undefined);
    assert.deepEqual(published, ['users', 'users']);
    await assert.rejects(writes.setStatusOverride('users', '10.0.0.1', 81, 'DRAINING'), InvalidInputError);
  });
});
