import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { ManualClock } from '../../src/clock.js';
import { MemoryHostStore } from '../../src/store/memory-host-store.js';
import { listHosts, RecordingStats, register, startRegistry, type RunningRegistry } from '../helpers/registry.js';

describe('expiry after HOST_TTL', () => {
  let server: RunningRegistry | undefined;
  afterEach(async () => server?.close());

  test('a host is listed until HOST_TTL passes, then never again, and is removed from storage', async () => {
    const clock = new ManualClock();
    const store = new MemoryHostStore();
    const stats = new RecordingStats();
    server = await startRegistry({ env: { HOST_TTL: '60' }, clock, store, stats });
    await register(server.url, 'users', { ip: '10.0.0.1' });
    clock.advance(30_000);
    await register(server.url, 'users', { ip: '10.0.0.2' });
    clock.advance(30_000);
    assert.deepEqual(
      (await listHosts(server.url, 'users')).hosts.map((host) => host.ip_address),
      ['10.0.0.1', '10.0.0.2'],
      'exactly HOST_TTL old is still live',
    );
    clock.advance(1);
    assert.deepEqual(
      (await listHosts(server.url, 'users')).hosts.map((host) => host.ip_address),
      ['10.0.0.2'],
    );
    assert.equal(await store.get('users', '10.0.0.1'), undefined, 'the expired record was removed from storage');
    assert.equal(stats.count('service.host.sweep.users'), 1);
    clock.advance(30_000);
    assert.deepEqual((await listHosts(server.url, 'users')).hosts, []);
    assert.equal(stats.count('service.host.sweep.users'), 2);
  });

  test('a heartbeat keeps a host alive', async () => {
    const clock = new ManualClock();
    server = await startRegistry({ env: { HOST_TTL: '10' }, clock });
    for (let beat = 0; beat < 5; beat++) {
      await register(server.url, 'alive', { ip: '10.0.0.1' });
      clock.advance(8_000);
    }
    assert.equal((await listHosts(server.url, 'alive')).hosts.length, 1);
  });

  test('expired hosts are also dropped from the repo listing', async () => {
    const clock = new ManualClock();
    server = await startRegistry({ env: { HOST_TTL: '10' }, clock });
    await register(server.url, 'a', { ip: '10.0.0.1', service_repo_name: 'mono' });
    clock.advance(5_000);
    await register(server.url, 'b', { ip: '10.0.0.2', service_repo_name: 'mono' });
    clock.advance(6_000);
    const body = (await (await fetch(`${server.url}/v1/registration/repo/mono`)).json()) as {
      hosts: { ip_address: string }[];
    };
    assert.deepEqual(
      body.hosts.map((host) => host.ip_address),
      ['10.0.0.2'],
    );
  });

  test('a weight cannot be set on an expired host', async () => {
    const clock = new ManualClock();
    server = await startRegistry({ env: { HOST_TTL: '10' }, clock });
    await register(server.url, 'w', { ip: '10.0.0.1' });
    clock.advance(11_000);
    const response = await fetch(`${server.url}/v1/loadbalancing/w/10.0.0.1`, {
      method: 'POST',
      body: new URLSearchParams({ load_balancing_weight: '5' }),
    });
    assert.equal(response.status, 404);
  });

  test('a heartbeat that lands while its host is being expired is never lost', async () => {
    const clock = new ManualClock();
    const store = new MemoryHostStore();
    server = await startRegistry({ env: { HOST_TTL: '10' }, clock, store });
    await register(server.url, 'race', { ip: '10.0.0.1' });
    clock.advance(11_000);
    // Force the interleaving: the sweep judged the old check-in expired, then a heartbeat lands, then the delete runs.
    const realDelete = store.deleteIfCheckInIs.bind(store);
    let heartbeatLanded: Promise<Response> | undefined;
    store.deleteIfCheckInIs = async (service, ip, lastCheckIn) => {
      heartbeatLanded ??= register(server!.url, 'race', { ip: '10.0.0.1', revision: 'fresh' });
      await heartbeatLanded;
      return realDelete(service, ip, lastCheckIn);
    };
    assert.deepEqual((await listHosts(server.url, 'race')).hosts, []);
    assert.equal((await heartbeatLanded)?.status, 200);
    const [host] = (await listHosts(server.url, 'race')).hosts;
    assert.equal(host?.revision, 'fresh', 'the fresh heartbeat survived the sweep');
  });
});

describe('CACHE_TYPE and CACHE_TTL', () => {
  let server: RunningRegistry | undefined;
  afterEach(async () => server?.close());

  test('CACHE_TYPE=null reads storage every time', async () => {
    const clock = new ManualClock();
    const store = new MemoryHostStore();
    server = await startRegistry({ env: { CACHE_TYPE: 'null' }, clock, store });
    await register(server.url, 'c', { ip: '10.0.0.1' });
    await listHosts(server.url, 'c');
    await store.heartbeat({
      service: 'c',
      ip_address: '10.0.0.9',
      port: 1,
      revision: 'behind-our-back',
      service_repo_name: '',
      last_check_in: '2026-11-28 06:40:12.000000',
      tags: { az: 'a', region: 'r', instance_id: 'i' },
    });
    assert.equal((await listHosts(server.url, 'c')).hosts.length, 2);
  });

  test('CACHE_TYPE=simple serves a cached list for CACHE_TTL seconds, then asks storage again', async () => {
    const clock = new ManualClock();
    const store = new MemoryHostStore();
    server = await startRegistry({ env: { CACHE_TYPE: 'simple', CACHE_TTL: '30' }, clock, store });
    await register(server.url, 'c', { ip: '10.0.0.1' });
    assert.equal((await listHosts(server.url, 'c')).hosts.length, 1);
    // A write that did not go through this replica (another replica sharing the store):
    await store.heartbeat({
      service: 'c',
      ip_address: '10.0.0.9',
      port: 1,
      revision: 'other-replica',
      service_repo_name: '',
      last_check_in: '2026-11-28 06:40:12.000000',
      tags: { az: 'a', region: 'r', instance_id: 'i' },
    });
    clock.advance(29_000);
    assert.equal((await listHosts(server.url, 'c')).hosts.length, 1, 'served from cache');
    clock.advance(1_001);
    assert.equal((await listHosts(server.url, 'c')).hosts.length, 2, 'refreshed after CACHE_TTL');
  });

  test('a cached list never contains a host that has expired since', async () => {
    const clock = new ManualClock();
    server = await startRegistry({ env: { CACHE_TYPE: 'simple', CACHE_TTL: '300', HOST_TTL: '10' }, clock });
    await register(server.url, 'c', { ip: '10.0.0.1' });
    assert.equal((await listHosts(server.url, 'c')).hosts.length, 1);
    clock.advance(10_001);
    assert.deepEqual((await listHosts(server.url, 'c')).hosts, []);
  });

  test('a local registration shows at once even with the cache on', async () => {
    const clock = new ManualClock();
    server = await startRegistry({ env: { CACHE_TYPE: 'simple', CACHE_TTL: '300' }, clock });
    await register(server.url, 'c', { ip: '10.0.0.1' });
    assert.equal((await listHosts(server.url, 'c')).hosts.length, 1);
    await register(server.url, 'c', { ip: '10.0.0.2' });
    assert.equal((await listHosts(server.url, 'c')).hosts.length, 2);
    await fetch(`${server.url}/v1/registration/c/10.0.0.1`, { method: 'DELETE' });
    assert.equal((await listHosts(server.url, 'c')).hosts.length, 1);
  });
});

describe('ETag and If-None-Match', () => {
  let server: RunningRegistry | undefined;
  afterEach(async () => server?.close());

  for (const cacheType of ['null', 'simple']) {
    test(`CACHE_TYPE=${cacheType}: a heartbeat alone keeps the ETag; a new host, a weight or a revision change it`, async () => {
      const clock = new ManualClock();
      server = await startRegistry({ env: { CACHE_TYPE: cacheType }, clock });
      const url = `${server.url}/v1/registration/e`;
      await register(server.url, 'e', { ip: '10.0.0.1' });
      const first = await fetch(url);
      const etag = first.headers.get('etag');
      assert.match(etag ?? '', /^W\/".+"$/);

      clock.advance(1000);
      await register(server.url, 'e', { ip: '10.0.0.1' });
      const afterHeartbeat = await fetch(url, { headers: { 'if-none-match': etag! } });
      assert.equal(afterHeartbeat.status, 304);
      assert.equal(await afterHeartbeat.text(), '');
      assert.equal(afterHeartbeat.headers.get('etag'), etag);

      await register(server.url, 'e', { ip: '10.0.0.2' });
      const afterNewHost = await fetch(url, { headers: { 'if-none-match': etag! } });
      assert.equal(afterNewHost.status, 200);
      const etag2 = afterNewHost.headers.get('etag');
      assert.notEqual(etag2, etag);
      assert.equal(((await afterNewHost.json()) as { hosts: unknown[] }).hosts.length, 2);

      await fetch(`${server.url}/v1/loadbalancing/e/10.0.0.2`, {
        method: 'POST',
        body: new URLSearchParams({ load_balancing_weight: '9' }),
      });
      const afterWeight = await fetch(url, { headers: { 'if-none-match': etag2! } });
      assert.equal(afterWeight.status, 200);
      const etag3 = afterWeight.headers.get('etag');

      await register(server.url, 'e', { ip: '10.0.0.2', revision: 'deploy-2' });
      const afterRevision = await fetch(url, { headers: { 'if-none-match': etag3! } });
      assert.equal(afterRevision.status, 200);
    });
  }

  test('the repo listing has an ETag too and answers 304', async () => {
    server = await startRegistry();
    await register(server.url, 'r1', { ip: '10.0.0.1', service_repo_name: 'mono' });
    const url = `${server.url}/v1/registration/repo/mono`;
    const etag = (await fetch(url)).headers.get('etag');
    assert.ok(etag);
    assert.equal((await fetch(url, { headers: { 'if-none-match': etag } })).status, 304);
    await register(server.url, 'r2', { ip: '10.0.0.2', service_repo_name: 'mono' });
    assert.equal((await fetch(url, { headers: { 'if-none-match': etag } })).status, 200);
  });

  test('If-None-Match with a list of tags or * matches', async () => {
    server = await startRegistry();
    await register(server.url, 'l', { ip: '10.0.0.1' });
    const url = `${server.url}/v1/registration/l`;
    const etag = (await fetch(url)).headers.get('etag')!;
    assert.equal((await fetch(url, { headers: { 'if-none-match': `W/"other", ${etag}` } })).status, 304);
    assert.equal((await fetch(url, { headers: { 'if-none-match': '*' } })).status, 304);
    assert.equal((await fetch(url, { headers: { 'if-none-match': 'W/"other"' } })).status, 200);
  });
});
