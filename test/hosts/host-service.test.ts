import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import { ManualClock } from '../../src/clock.js';
import { HostEvents, type ChangeOrigin } from '../../src/hosts/host-events.js';
import { HostService } from '../../src/hosts/host-service.js';
import { formatCheckIn, type HeartbeatInput } from '../../src/hosts/model.js';
import { MemoryHostStore } from '../../src/store/memory-host-store.js';
import { RecordingStats } from '../helpers/stats.js';

const TTL_SECONDS = 30;

const input = (ip: string, tags: Record<string, unknown> = {}): HeartbeatInput => ({
  service: 'users',
  ip_address: ip,
  port: 80,
  revision: 'r1',
  service_repo_name: '',
  tags,
});

/** A service on a memory store and a manual clock, its lists cached, with what its subscribers heard. */
function serviceWith() {
  const store = new MemoryHostStore();
  const clock = new ManualClock();
  const log = pino({ level: 'silent' });
  const events = new HostEvents(log);
  const service = new HostService({
    events,
    store,
    clock,
    hostTtlSeconds: TTL_SECONDS,
    cacheType: 'simple',
    cacheTtlSeconds: 600,
    stats: new RecordingStats(),
    log,
  });
  const changes: string[] = [];
  const local: string[] = [];
  const resyncs: number[] = [];
  events.onServiceChanged((name, origin: ChangeOrigin) => changes.push(`${name} ${origin}`));
  events.onLocalChange((name) => local.push(name));
  events.onResync(() => resyncs.push(clock.now()));
  /** A write through another replica sharing the store: this service is not told. */
  const elsewhere = (ip: string, tags: Record<string, unknown> = {}) =>
    store.heartbeat({ ...input(ip, tags), last_check_in: formatCheckIn(clock.now()) });
  const ips = async () => (await service.listByService('users')).hosts.map((host) => host.ip_address);
  return { store, clock, events, service, changes, local, resyncs, elsewhere, ips };
}

describe('HostService', () => {
  test('a new host is served and published as a local change; a heartbeat that changes nothing is not', async () => {
    const { service, changes, local, ips } = serviceWith();
    await service.heartbeat(input('10.0.0.1'));
    assert.deepEqual(await ips(), ['10.0.0.1']);
    await service.heartbeat(input('10.0.0.1'));
    assert.deepEqual(changes, ['users local']);
    assert.deepEqual(local, ['users']);
  });

  test('a host expires after HOST_TTL without heartbeats, and subscribers hear of it once', async () => {
    const { clock, service, changes, local, ips } = serviceWith();
    await service.heartbeat(input('10.0.0.1'));
    await service.heartbeat(input('10.0.0.2'));
    clock.advance(TTL_SECONDS * 1000);
    await service.heartbeat(input('10.0.0.2'));
    clock.advance(1);
    assert.deepEqual(await ips(), ['10.0.0.2']);
    assert.deepEqual(await ips(), ['10.0.0.2']);
    assert.deepEqual(changes, ['users local', 'users local', 'users local'], 'two registrations, one expiry');
    assert.deepEqual(local, ['users', 'users', 'users']);
  });

  test('a remote change drops the kept list, so the next read sees it, and is not published as local', async () => {
    const { events, service, changes, local, elsewhere, ips } = serviceWith();
    await service.heartbeat(input('10.0.0.1'));
    assert.deepEqual(await ips(), ['10.0.0.1']);
    await elsewhere('10.0.0.2');
    assert.deepEqual(await ips(), ['10.0.0.1'], 'the kept list is served until something says it changed');
    events.publishRemoteChanges(['users']);
    assert.deepEqual(await ips(), ['10.0.0.1', '10.0.0.2']);
    assert.deepEqual(changes, ['users local', 'users remote']);
    assert.deepEqual(local, ['users']);
  });

  test('a resync drops every kept list', async () => {
    const { events, service, resyncs, elsewhere, ips } = serviceWith();
    await service.heartbeat(input('10.0.0.1'));
    await ips();
    await elsewhere('10.0.0.2');
    events.publishResync();
    assert.equal(resyncs.length, 1);
    assert.deepEqual(await ips(), ['10.0.0.1', '10.0.0.2']);
    assert.equal(service.keptReadAt('users') !== undefined, true, 'the list read again is kept');
  });

  test('a read that finds routing changed by another replica tells subscribers, as seen on a read', async () => {
    const store = new MemoryHostStore();
    const clock = new ManualClock();
    const log = pino({ level: 'silent' });
    const service = new HostService({
      store,
      clock,
      hostTtlSeconds: TTL_SECONDS,
      cacheType: 'null',
      cacheTtlSeconds: 30,
      stats: new RecordingStats(),
      log,
    });
    const changes: string[] = [];
    service.events.onServiceChanged((name, origin) => changes.push(`${name} ${origin}`));
    await service.listByService('users');
    await store.heartbeat({ ...input('10.0.0.7'), last_check_in: formatCheckIn(clock.now()) });
    assert.equal((await service.listByService('users')).hosts.length, 1);
    assert.deepEqual(changes, ['users read']);
  });

  test('delete, weight and status take a canonical address and publish what they change', async () => {
    const { store, service, local, ips } = serviceWith();
    await service.heartbeat(input('2001:db8::7'));
    await service.heartbeat(input('10.0.0.1'));
    await service.setWeight('users', '10.0.0.1', 42);
    await service.setStatusOverride('users', '10.0.0.1', undefined, 'DRAINING');
    assert.equal((await store.get('users', '10.0.0.1'))?.tags.load_balancing_weight, 42);
    await service.deregister('users', '2001:db8::7');
    assert.deepEqual(await ips(), ['10.0.0.1']);
    assert.deepEqual(local, ['users', 'users', 'users', 'users', 'users']);
  });

  test('close stops judging due hosts', async () => {
    const { clock, service, local } = serviceWith();
    await service.heartbeat(input('10.0.0.1'));
    clock.advance(TTL_SECONDS * 1000 + 1);
    service.close();
    service.expiry.judgeDue(new Set(['users']));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(local, ['users'], 'the expired host was not judged after close');
  });
});
