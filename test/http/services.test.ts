import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ManualClock } from '../../src/clock.js';
import { StorageUnavailableError } from '../../src/errors.js';
import { formatCheckIn } from '../../src/hosts/model.js';
import { MemoryHostStore } from '../../src/store/memory-host-store.js';
import { listHosts, register, startRegistry, TAGS, type RunningRegistry } from '../helpers/registry.js';

const UP_ONLY = (hosts: number) => ({ DRAINING: 0, OUT_OF_SERVICE: 0, UP: hosts });

interface ServicesBody {
  env: string;
  services: Array<{
    service: string;
    hosts: number;
    revisions: number;
    service_repo_names: string[];
    statuses?: Record<string, number>;
  }>;
  total: number;
  next_cursor: string | null;
}

async function services(url: string, query = '', headers: Record<string, string> = {}): Promise<ServicesBody> {
  const response = await fetch(`${url}/v1/services${query}`, { headers });
  assert.equal(response.status, 200, await response.clone().text());
  return (await response.json()) as ServicesBody;
}

/** A MemoryHostStore that counts `listServices`, the call that is a table scan on DynamoDB. */
class ScanCountingStore extends MemoryHostStore {
  scans = 0;
  down = false;
  override async listServices() {
    this.scans++;
    if (this.down) throw new StorageUnavailableError('storage is down (test)');
    return super.listServices();
  }
}

describe('GET /v1/services', () => {
  let server: RunningRegistry | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  test('lists every service by name with its live host count, revisions and repos', async () => {
    server = await startRegistry({ env: { APPLICATION_ENV: 'staging' } });
    await register(server.url, 'users', { ip: '10.0.0.1', revision: 'a1', service_repo_name: 'users-repo' });
    await register(server.url, 'users', { ip: '10.0.0.2', revision: 'b2', service_repo_name: 'users-repo' });
    await register(server.url, 'users', { ip: '10.0.0.3', revision: 'b2', service_repo_name: 'users-repo' });
    await register(server.url, 'orders', { ip: '10.0.1.1', service_repo_name: '' });
    assert.deepEqual(await services(server.url), {
      env: 'staging',
      next_cursor: null,
      services: [
        { service: 'orders', hosts: 1, revisions: 1, service_repo_names: [], statuses: UP_ONLY(1) },
        { service: 'users', hosts: 3, revisions: 2, service_repo_names: ['users-repo'], statuses: UP_ONLY(3) },
      ],
      total: 2,
    });
  });

  test('counts live hosts by effective status; every live host counts in hosts', async () => {
    server = await startRegistry();
    await register(server.url, 'mixed', { ip: '10.0.0.1' });
    await register(server.url, 'mixed', { ip: '10.0.0.2', status: 'DRAINING' });
    await register(server.url, 'mixed', { ip: '10.0.0.3', status: 'OUT_OF_SERVICE' });
    await register(server.url, 'mixed', { ip: '10.0.0.4' });
    const put = await fetch(`${server.url}/v1/registration/mixed/10.0.0.4/status`, {
      method: 'PUT',
      body: new URLSearchParams({ status: 'DRAINING' }),
    });
    assert.equal(put.status, 204);
    assert.deepEqual((await services(server.url)).services, [
      {
        service: 'mixed',
        hosts: 4,
        revisions: 1,
        service_repo_names: ['users-repo'],
        statuses: { DRAINING: 2, OUT_OF_SERVICE: 1, UP: 1 },
      },
    ]);
  });

  test('a registration or delete through this process is listed at once', async () => {
    server = await startRegistry();
    assert.deepEqual((await services(server.url)).services, []);
    await register(server.url, 'users', { ip: '10.0.0.1' });
    assert.equal((await services(server.url)).services[0]?.hosts, 1);
    await register(server.url, 'users', { ip: '10.0.0.2' });
    assert.equal((await services(server.url)).services[0]?.hosts, 2);
    await fetch(`${server.url}/v1/registration/users/10.0.0.1`, { method: 'DELETE' });
    assert.equal((await services(server.url)).services[0]?.hosts, 1);
    await fetch(`${server.url}/v1/registration/users/10.0.0.2`, { method: 'DELETE' });
    assert.deepEqual((await services(server.url)).services, [], 'a service without hosts is not listed');
  });

  test('pages by cursor: every service exactly once, in name order', async () => {
    server = await startRegistry();
    const names = ['a', 'b', 'c', 'd', 'e'];
    for (const name of names) await register(server.url, name);
    const seen: string[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 10; page++) {
      const body: ServicesBody = await services(server.url, `?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      assert.equal(body.total, 5);
      seen.push(...body.services.map((s) => s.service));
      cursor = body.next_cursor;
      if (cursor === null) break;
    }
    assert.deepEqual(seen, names);
    assert.equal(cursor, null);
  });

  test('a page stays consistent while services come and go', async () => {
    server = await startRegistry();
    for (const name of ['a', 'b', 'c', 'd']) await register(server.url, name);
    const first = await services(server.url, '?limit=2');
    assert.deepEqual(
      first.services.map((s) => s.service),
      ['a', 'b'],
    );
    await fetch(`${server.url}/v1/registration/a/10.0.3.17`, { method: 'DELETE' });
    const second = await services(server.url, `?limit=2&cursor=${first.next_cursor}`);
    assert.deepEqual(
      second.services.map((s) => s.service),
      ['c', 'd'],
      'removing an earlier service shifts nothing',
    );
  });

  test('prefix matches the start of the name; filter matches anywhere, ignoring case', async () => {
    server = await startRegistry();
    for (const name of ['users-api', 'users-worker', 'orders-api', 'Payments']) await register(server.url, name);
    assert.deepEqual(
      (await services(server.url, '?prefix=users')).services.map((s) => s.service),
      ['users-api', 'users-worker'],
    );
    assert.deepEqual(
      (await services(server.url, '?filter=API')).services.map((s) => s.service),
      ['orders-api', 'users-api'],
    );
    assert.deepEqual(
      (await services(server.url, '?filter=pay')).services.map((s) => s.service),
      ['Payments'],
    );
    const both = await services(server.url, '?prefix=users&filter=work');
    assert.deepEqual([both.total, both.services.map((s) => s.service)], [1, ['users-worker']]);
  });

  for (const [query, field] of [
    ['?limit=0', 'limit'],
    ['?limit=10001', 'limit'],
    ['?limit=ten', 'limit'],
    ['?cursor=not%20base64!', 'cursor'],
    ['?cursor=AAA', 'cursor'],
    [`?prefix=${'x'.repeat(300)}`, 'prefix'],
  ] as const) {
    test(`${query.slice(0, 30)} is a 400 naming '${field}'`, async () => {
      server ??= await startRegistry();
      const response = await fetch(`${server.url}/v1/services${query}`);
      assert.equal(response.status, 400);
      assert.match(((await response.json()) as { error: string }).error, new RegExp(`'${field}'`));
    });
  }

  test('an unchanged page answers 304 to its ETag; a change gives a new one', async () => {
    server = await startRegistry();
    await register(server.url, 'users', { ip: '10.0.0.1' });
    const first = await fetch(`${server.url}/v1/services`);
    const etag = first.headers.get('etag') ?? '';
    assert.match(etag, /^W\/".+"$/);
    const again = await fetch(`${server.url}/v1/services`, { headers: { 'if-none-match': etag } });
    assert.equal(again.status, 304);
    await register(server.url, 'users', { ip: '10.0.0.1' });
    assert.equal(
      (await fetch(`${server.url}/v1/services`, { headers: { 'if-none-match': etag } })).status,
      304,
      'a heartbeat changing no count',
    );
    await register(server.url, 'users', { ip: '10.0.0.2' });
    const changed = await fetch(`${server.url}/v1/services`, { headers: { 'if-none-match': etag } });
    assert.equal(changed.status, 200);
    assert.notEqual(changed.headers.get('etag'), etag);
  });

  test('storage is scanned once per refresh interval, not per call', async () => {
    const clock = new ManualClock();
    const store = new ScanCountingStore();
    server = await startRegistry({ clock, store, serviceRefreshIntervalMs: 60_000 });
    store.scans = 0; // start-up's INSTANCE_KEY check reads the store once
    await register(server.url, 'users', { ip: '10.0.0.1' });
    for (let call = 0; call < 50; call++) await services(server.url);
    assert.equal(store.scans, 1);
    clock.advance(60_000);
    await services(server.url);
    // The refresh runs in the background; wait for it, bounded.
    for (let waited = 0; store.scans < 2 && waited < 2_000; waited += 10) await sleep(10);
    assert.equal(store.scans, 2);
    for (let call = 0; call < 20; call++) await services(server.url);
    assert.equal(store.scans, 2);
  });

  test('while storage is down the last summary is served, and the scan is retried once per interval', async () => {
    const clock = new ManualClock();
    const store = new ScanCountingStore();
    server = await startRegistry({ clock, store, serviceRefreshIntervalMs: 60_000 });
    store.scans = 0; // start-up's INSTANCE_KEY check reads the store once
    await register(server.url, 'users', { ip: '10.0.0.1' });
    assert.equal((await services(server.url)).total, 1);
    store.down = true;
    clock.advance(60_000);
    for (let call = 0; call < 20; call++) assert.equal((await services(server.url)).total, 1);
    assert.equal(store.scans, 2, 'one failed background refresh, not one per call');
    store.down = false;
    clock.advance(60_000);
    await services(server.url);
    for (let waited = 0; store.scans < 3 && waited < 2_000; waited += 10) await sleep(10);
    assert.equal(store.scans, 3);
  });

  test('the first list fails with 503 while storage is down, and works once it is back', async () => {
    const store = new ScanCountingStore();
    store.down = true;
    server = await startRegistry({ store });
    const response = await fetch(`${server.url}/v1/services`);
    assert.equal(response.status, 503);
    assert.match(((await response.json()) as { error: string }).error, /storage is down/);
    store.down = false;
    assert.equal((await services(server.url)).total, 0);
  });

  test('hosts that expire unread leave the count at the next refresh; reading them removes them at once', async () => {
    const clock = new ManualClock();
    server = await startRegistry({ env: { HOST_TTL: '10' }, clock, serviceRefreshIntervalMs: 30_000 });
    await register(server.url, 'quiet', { ip: '10.0.0.1' });
    await register(server.url, 'read', { ip: '10.0.0.2' });
    assert.equal((await services(server.url)).total, 2);
    clock.advance(11_000);
    assert.deepEqual((await listHosts(server.url, 'read')).hosts, []);
    assert.deepEqual(
      (await services(server.url)).services.map((s) => s.service),
      ['quiet'],
      'the read swept it',
    );
    clock.advance(30_000);
    await services(server.url); // starts the background refresh
    let listed = ['quiet'];
    for (let waited = 0; listed.length > 0 && waited < 2_000; waited += 10) {
      await sleep(10);
      listed = (await services(server.url)).services.map((s) => s.service);
    }
    assert.deepEqual(listed, []);
  });

  test('10,000 services: pages answer quickly from memory', async (t) => {
    const store = new MemoryHostStore();
    const checkIn = formatCheckIn(Date.now());
    for (let index = 0; index < 10_000; index++) {
      const service = `svc-${String(index).padStart(5, '0')}`;
      await store.heartbeat({
        service,
        ip_address: '10.0.0.1',
        port: 80,
        revision: 'r1',
        service_repo_name: `${service}-repo`,
        last_check_in: checkIn,
        tags: TAGS,
      });
    }
    server = await startRegistry({ store });
    let started = performance.now();
    const first = await services(server.url);
    const buildMs = performance.now() - started;
    assert.equal(first.total, 10_000);
    assert.equal(first.services.length, 1000, 'the default page');
    assert.ok(buildMs < 10_000, `first build took ${buildMs.toFixed(0)} ms`);

    started = performance.now();
    for (let call = 0; call < 20; call++) await services(server.url, '?limit=1000&filter=9');
    const filteredMs = (performance.now() - started) / 20;
    started = performance.now();
    const all = await services(server.url, '?limit=10000');
    const allMs = performance.now() - started;
    assert.equal(all.services.length, 10_000);
    assert.equal(all.next_cursor, null);
    t.diagnostic(
      `first build ${buildMs.toFixed(0)} ms, filtered page ${filteredMs.toFixed(1)} ms, all 10,000 ${allMs.toFixed(0)} ms`,
    );
    assert.ok(filteredMs < 100, `a filtered page took ${filteredMs.toFixed(1)} ms`);
    assert.ok(allMs < 1_000, `all 10,000 took ${allMs.toFixed(0)} ms`);
  });

  test('more than 10,000 services changed between two lists: one full refresh, and every change is listed', async () => {
    const store = new ScanCountingStore();
    server = await startRegistry({ store });
    assert.equal((await register(server.url, 'gone-soon', { ip: '10.0.0.1' })).status, 200);
    assert.equal((await services(server.url)).total, 1);
    const scansBefore = store.scans;
    for (let index = 0; index < 10_050; index++) {
      await server.registry.hostService.heartbeat({
        service: `many-${String(index).padStart(5, '0')}`,
        ip_address: '10.0.0.1',
        port: 80,
        revision: 'r1',
        service_repo_name: '',
        tags: TAGS,
      });
    }
    await server.registry.hostService.deregister('gone-soon', '10.0.0.1');
    const listed = await services(server.url, '?limit=10000');
    assert.equal(listed.total, 10_050);
    assert.ok(!listed.services.some((summary) => summary.service === 'gone-soon'));
    assert.equal(store.scans, scansBefore + 1, 'one full refresh instead of 10,050 single reads');
    assert.equal((await services(server.url, '?prefix=many-10049')).total, 1);
  });

  test('read credentials protect the list', async () => {
    server = await startRegistry({ env: { AUTH_READ_PASSWORD: 'readers-only-please' } });
    assert.equal((await fetch(`${server.url}/v1/services`)).status, 401);
    const authorization = `Basic ${Buffer.from('read:readers-only-please').toString('base64')}`;
    assert.equal((await services(server.url, '', { authorization })).total, 0);
  });
});
