import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import pino from 'pino';
import { composeRegistry } from '../../src/compose.js';
import { loadConfig } from '../../src/config.js';
import { StorageUnavailableError } from '../../src/errors.js';
import { Readiness } from '../../src/readiness.js';
import { HOST_STORE_METHODS, PROBE_KEY, pingStore, type HostStore } from '../../src/hosts/host-store.js';
import { MemoryHostStore } from '../../src/store/memory-host-store.js';
import { startDiscovery } from '../helpers/discovery-process.js';
import { startDynalite } from '../helpers/dynamodb.js';
import { register, startRegistry, waitFor } from '../helpers/registry.js';
import { tempDir } from '../helpers/temp-dir.js';
import { NO_STATS } from '../../src/stats.js';

async function getJson(url: string): Promise<{ status: number; body: { status: string; reason?: string } }> {
  const response = await fetch(url);
  return { status: response.status, body: (await response.json()) as { status: string; reason?: string } };
}

/** The InMemory store, counting how often readiness asks it. */
class CountingStore extends MemoryHostStore {
  pings = 0;
  override async ping(): Promise<void> {
    this.pings++;
  }
}

describe('GET /readyz and GET /livez', () => {
  test('a started registry is ready and alive; both are public JSON, never cached', async () => {
    const server = await startRegistry({ env: { AUTH_READ_TOKENS: 'tok-read-0123456789' } });
    try {
      const ready = await fetch(`${server.url}/readyz`);
      assert.equal(ready.status, 200);
      assert.deepEqual(await ready.json(), { status: 'ready' });
      assert.equal(ready.headers.get('cache-control'), 'no-store');
      const live = await fetch(`${server.url}/livez`);
      assert.equal(live.status, 200);
      assert.deepEqual(await live.json(), { status: 'alive' });
      assert.equal(await fetch(`${server.url}/healthcheck`).then((r) => r.text()), 'OK', '/healthcheck is unchanged');
    } finally {
      await server.close();
    }
  });

  test('503 "starting" until every listener is up', async () => {
    const config = loadConfig({ BACKEND_STORAGE: 'InMemory', LOG_LEVEL: 'ERROR' });
    const registry = await composeRegistry(config, pino({ level: 'silent' }), { stats: NO_STATS });
    try {
      await registry.app.listen({ port: 0, host: '127.0.0.1' });
      const { port } = registry.app.server.address() as { port: number };
      const url = `http://127.0.0.1:${port}`;
      const starting = await getJson(`${url}/readyz`);
      assert.equal(starting.status, 503);
      assert.equal(starting.body.status, 'unavailable');
      assert.match(starting.body.reason!, /^starting/);
      assert.equal((await fetch(`${url}/livez`)).status, 200, 'alive while starting');
      registry.readiness.markStarted();
      assert.equal((await fetch(`${url}/readyz`)).status, 200);
    } finally {
      await registry.close();
    }
  });

  test('DynamoDB stopped: 503 naming storage, liveness stays 200; DynamoDB back: 200 again, with nothing restarted', async () => {
    const dir = await tempDir();
    let dynalite = await startDynalite(dir.path);
    const server = await startRegistry({
      env: {
        BACKEND_STORAGE: 'DynamoDB',
        DYNAMODB_URL: dynalite.endpoint,
        DYNAMODB_CREATE_TABLES_IN_APP: 'true',
        DYNAMODB_TIMEOUT_MS: '1000',
      },
      readinessProbeIntervalMs: 100,
    });
    try {
      assert.equal((await register(server.url, 'users')).status, 200);
      assert.deepEqual(await getJson(`${server.url}/readyz`), { status: 200, body: { status: 'ready' } });

      await dynalite.close();
      const down = await waitFor('readyz to turn 503', async () => {
        const answer = await getJson(`${server.url}/readyz`);
        return answer.status === 503 ? answer : undefined;
      });
      assert.equal(down.body.status, 'unavailable');
      assert.match(down.body.reason!, /^storage unreachable: .*DynamoDB GetItem/);
      assert.equal((await fetch(`${server.url}/livez`)).status, 200, 'restarting would not bring storage back');

      dynalite = await startDynalite(dir.path, dynalite.port);
      await waitFor('readyz to turn 200 again', async () =>
        (await fetch(`${server.url}/readyz`)).status === 200 ? true : undefined,
      );
      assert.equal((await register(server.url, 'users', { revision: 'after' })).status, 200);
    } finally {
      await server.close();
      await dynalite.close();
      await dir.remove();
    }
  });

  test('storage is asked at most once per probe interval, however often and however many ask', async () => {
    const store = new CountingStore();
    const server = await startRegistry({ store, readinessProbeIntervalMs: 1000 });
    try {
      const started = performance.now();
      // 10 rounds of 20 parallel probes, within well under two intervals.
      for (let round = 0; round < 10; round++) {
        const answers = await Promise.all(Array.from({ length: 20 }, () => fetch(`${server.url}/readyz`)));
        assert.ok(answers.every((answer) => answer.status === 200));
      }
      const elapsed = performance.now() - started;
      const allowed = Math.floor(elapsed / 1000) + 1;
      assert.ok(store.pings >= 1 && store.pings <= allowed, `${store.pings} pings in ${Math.round(elapsed)} ms`);
    } finally {
      await server.close();
    }
  });

  test('draining: from the start of close, /readyz answers 503 while every other request is still served', async () => {
    const server = await startRegistry({ env: { SHUTDOWN_DRAIN_SECONDS: '1.5' } });
    assert.equal((await register(server.url, 'users')).status, 200);
    assert.equal((await fetch(`${server.url}/readyz`)).status, 200);
    const closed = server.close();
    const draining = await getJson(`${server.url}/readyz`);
    assert.equal(draining.status, 503);
    assert.match(draining.body.reason!, /^draining/);
    assert.equal((await fetch(`${server.url}/livez`)).status, 200, 'alive while draining');
    assert.equal((await fetch(`${server.url}/v1/registration/users`)).status, 200, 'reads are still served');
    assert.equal((await register(server.url, 'users')).status, 200, 'heartbeats are still taken');
    await closed;
    await assert.rejects(fetch(`${server.url}/livez`), 'closed after the drain');
  });

  test('the process: SIGTERM with SHUTDOWN_DRAIN_SECONDS turns /readyz 503 "draining", then exits 0', async () => {
    const server = await startDiscovery({ BACKEND_STORAGE: 'InMemory', SHUTDOWN_DRAIN_SECONDS: '2' });
    assert.deepEqual(await getJson(`${server.url}/readyz`), { status: 200, body: { status: 'ready' } });
    const exited = server.stop('SIGTERM');
    const draining = await waitFor('readyz to turn 503', async () => {
      const answer = await getJson(`${server.url}/readyz`);
      return answer.status === 503 ? answer : undefined;
    });
    assert.match(draining.body.reason!, /^draining/);
    assert.equal(await exited, 0);
  });

  test('a probe that hangs answers 503 within the probe bound, naming the wait', async () => {
    const readiness = new Readiness({ probe: () => new Promise(() => {}), probeTimeoutMs: 200 });
    readiness.markStarted();
    const started = performance.now();
    const report = await readiness.check();
    assert.ok(performance.now() - started < 2000);
    assert.deepEqual(report, { status: 'unavailable', reason: 'storage unreachable: no answer within 200 ms' });
  });

  test('a store without ping (a plugin) is probed with a get of a key no host can have', async () => {
    const memory = new MemoryHostStore();
    const asked: string[][] = [];
    const plugin = Object.fromEntries(
      HOST_STORE_METHODS.map((method) => [method, (memory[method] as (...args: unknown[]) => unknown).bind(memory)]),
    ) as unknown as HostStore;
    plugin.get = async (service, ip) => {
      asked.push([service, ip]);
      return memory.get(service, ip);
    };
    await pingStore(plugin);
    assert.deepEqual(asked, [[PROBE_KEY.service, PROBE_KEY.ipAddress]]);
    plugin.get = async () => {
      throw new StorageUnavailableError('plugin backend down');
    };
    await assert.rejects(pingStore(plugin), /plugin backend down/);
  });
});
