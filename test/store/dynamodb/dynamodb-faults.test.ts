import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { ManualClock } from '../../../src/clock.js';
import { composeRegistry, type Registry } from '../../../src/compose.js';
import { loadConfig } from '../../../src/config.js';
import { StorageUnavailableError } from '../../../src/errors.js';
import { DynamoDbHostStore } from '../../../src/store/dynamodb/dynamodb-host-store.js';
import type { EmbeddedDynamoDb } from '../../../src/store/dynamodb/embedded-dynalite.js';
import { heartbeatOf } from '../../contract/host-store.contract.js';
import { openStore, startDynalite, testClient, type OpenedStore } from '../../helpers/dynamodb.js';
import { tempDir } from '../../helpers/temp-dir.js';
import { NO_STATS } from '../../../src/stats.js';

/** Small, so that a test waiting on a dead server stays short; the bound is what is being proved. */
const REQUEST_TIMEOUT_MS = 1500;
/** Generous against a loaded CI machine; it only proves "answers, not hangs". */
const ANSWER_BOUND_MS = REQUEST_TIMEOUT_MS + 5000;
const STALE_READ_MAX_SECONDS = 300;

/** A loopback HTTP server that answers every DynamoDB call as `respond` says. */
async function fakeEndpoint(
  respond: (res: http.ServerResponse) => void,
): Promise<{ endpoint: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => respond(res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function rejectsWithin<T>(promise: Promise<T>, boundMs: number): Promise<unknown> {
  const started = performance.now();
  const error = await promise.then(
    () => assert.fail('expected a failure'),
    (failure: unknown) => failure,
  );
  const elapsed = performance.now() - started;
  assert.ok(elapsed < boundMs, `failed after ${Math.round(elapsed)} ms, bound ${boundMs} ms`);
  return error;
}

/** A store on a fake endpoint, giving up on each call after `requestTimeoutMs`. */
function storeOn(endpoint: string, requestTimeoutMs: number): DynamoDbHostStore {
  return new DynamoDbHostStore({
    client: testClient(endpoint, requestTimeoutMs),
    tableName: 'hosts',
    hostTtlSeconds: 600,
    requestTimeoutMs,
  });
}

describe('DynamoDB faults at the store', () => {
  test('throttling answers become StorageUnavailableError after the SDK retries', async () => {
    const throttling = await fakeEndpoint((res) => {
      res.writeHead(400, { 'content-type': 'application/x-amz-json-1.0' });
      res.end(
        JSON.stringify({
          __type: 'com.amazonaws.dynamodb.v20120810#ThrottlingException',
          message: 'Rate of requests exceeds the allowed throughput.',
        }),
      );
    });
    // Room for the SDK's three attempts with its throttling back-off (under 3 s in all), so the
    // failure reported is the throttling itself rather than the overall timeout.
    const timeoutMs = 6000;
    const store = storeOn(throttling.endpoint, timeoutMs);
    try {
      const error = await rejectsWithin(store.heartbeat(heartbeatOf()), timeoutMs + 5000);
      assert.ok(error instanceof StorageUnavailableError, String(error));
      assert.equal(error.statusCode, 503);
      assert.match(error.message, /ThrottlingException/);
      assert.ok(
        (await rejectsWithin(store.listByService('users'), timeoutMs + 5000)) instanceof StorageUnavailableError,
      );
    } finally {
      await store.close();
      await throttling.close();
    }
  });

  test('a server that accepts but never answers fails the call within the timeout', async () => {
    const silent = await fakeEndpoint(() => {
      /* never answers */
    });
    const store = storeOn(silent.endpoint, REQUEST_TIMEOUT_MS);
    try {
      const error = await rejectsWithin(store.heartbeat(heartbeatOf()), ANSWER_BOUND_MS);
      assert.ok(error instanceof StorageUnavailableError, String(error));
      assert.match(error.message, /no answer within|timed out/);
    } finally {
      await store.close();
      await silent.close();
    }
  });

  test('a stopped server fails calls with StorageUnavailableError, and they work again once it is back', async () => {
    const dir = await tempDir();
    let server = await startDynalite(dir.path);
    const opened = await openStore(server.endpoint, { requestTimeoutMs: REQUEST_TIMEOUT_MS });
    try {
      await opened.store.heartbeat(heartbeatOf());
      await server.close();
      const refused = await rejectsWithin(opened.store.heartbeat(heartbeatOf()), ANSWER_BOUND_MS);
      assert.ok(refused instanceof StorageUnavailableError);
      assert.match(refused.message, /UpdateItem: ECONNREFUSED/);
      assert.ok(
        (await rejectsWithin(opened.store.get('users', '10.0.0.1'), ANSWER_BOUND_MS)) instanceof
          StorageUnavailableError,
      );
      server = await startDynalite(dir.path, server.port);
      assert.equal((await opened.store.get('users', '10.0.0.1'))?.ip_address, '10.0.0.1');
    } finally {
      await opened.dispose();
      await server.close();
      await dir.remove();
    }
  });
});

describe('DynamoDB outage seen through the API', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let server: EmbeddedDynamoDb;
  let opened: OpenedStore;
  let registry: Registry;
  const clock = new ManualClock();

  before(async () => {
    dir = await tempDir();
    server = await startDynalite(dir.path);
    opened = await openStore(server.endpoint, { requestTimeoutMs: REQUEST_TIMEOUT_MS });
    const config = loadConfig(
      { BACKEND_STORAGE: 'DynamoDB', STALE_READ_MAX_SECONDS: String(STALE_READ_MAX_SECONDS) },
      process.cwd(),
    );
    registry = await composeRegistry(config, pino({ level: 'silent' }), {
      store: opened.store,
      clock,
      stats: NO_STATS,
    });
  });
  after(async () => {
    await registry.close();
    await opened.dispose();
    await server.close();
    await dir.remove();
  });

  const register = (ip: string) =>
    registry.app.inject({
      method: 'POST',
      url: '/v1/registration/users',
      payload: {
        ip,
        port: 80,
        revision: 'r1',
        service_repo_name: 'users-repo',
        tags: { az: 'a', region: 'r', instance_id: 'i' },
      },
    });
  const ips = (body: string) =>
    (JSON.parse(body) as { hosts: { ip_address: string }[] }).hosts.map((host) => host.ip_address);

  test('writes answer 503 JSON, reads serve the last list marked stale, and all recovers when DynamoDB returns', async () => {
    assert.equal((await register('10.0.0.1')).statusCode, 200);
    const fresh = await registry.app.inject({ url: '/v1/registration/users' });
    assert.equal(fresh.statusCode, 200);
    assert.equal(fresh.headers['x-discovery-stale'], undefined);
    assert.equal((await registry.app.inject({ url: '/v1/registration/repo/users-repo' })).statusCode, 200);

    await server.close();
    clock.advance(20_000);

    const started = performance.now();
    const write = await register('10.0.0.2');
    assert.ok(performance.now() - started < ANSWER_BOUND_MS, 'the write answered within its bound');
    assert.equal(write.statusCode, 503);
    assert.equal(typeof write.json<{ error: string }>().error, 'string');
    assert.match(String(write.headers['content-type']), /application\/json/);

    const stale = await registry.app.inject({ url: '/v1/registration/users' });
    assert.equal(stale.statusCode, 200);
    assert.equal(stale.headers['x-discovery-stale'], 'true');
    assert.equal(stale.headers.age, '20');
    assert.deepEqual(ips(stale.body), ['10.0.0.1']);

    const staleRepo = await registry.app.inject({ url: '/v1/registration/repo/users-repo' });
    assert.equal(staleRepo.statusCode, 200);
    assert.equal(staleRepo.headers['x-discovery-stale'], 'true');

    const neverRead = await registry.app.inject({ url: '/v1/registration/orders' });
    assert.equal(neverRead.statusCode, 503);
    assert.equal(
      (await registry.app.inject({ method: 'DELETE', url: '/v1/registration/users/10.0.0.1' })).statusCode,
      503,
    );
    const weight = await registry.app.inject({
      method: 'POST',
      url: '/v1/loadbalancing/users/10.0.0.1',
      payload: { load_balancing_weight: 5 },
    });
    assert.equal(weight.statusCode, 503);

    server = await startDynalite(dir.path, server.port);
    assert.equal((await register('10.0.0.2')).statusCode, 200);
    const recovered = await registry.app.inject({ url: '/v1/registration/users' });
    assert.equal(recovered.statusCode, 200);
    assert.equal(recovered.headers['x-discovery-stale'], undefined);
    assert.deepEqual(ips(recovered.body), ['10.0.0.1', '10.0.0.2']);
  });

  test('past STALE_READ_MAX_SECONDS a read during an outage answers 503', async () => {
    assert.equal((await registry.app.inject({ url: '/v1/registration/users' })).statusCode, 200);
    await server.close();
    try {
      clock.advance((STALE_READ_MAX_SECONDS - 1) * 1000);
      assert.equal((await registry.app.inject({ url: '/v1/registration/users' })).headers['x-discovery-stale'], 'true');
      clock.advance(2000);
      const tooOld = await registry.app.inject({ url: '/v1/registration/users' });
      assert.equal(tooOld.statusCode, 503);
      assert.equal(typeof tooOld.json<{ error: string }>().error, 'string');
    } finally {
      server = await startDynalite(dir.path, server.port);
    }
  });
});

/**
 * A loopback proxy to `target` that, while `holdUpdates` is set, forwards each UpdateItem (so the
 * write lands) but never passes its answer back: a write that times out after it was applied.
 */
async function answerLosingProxy(
  target: string,
): Promise<{ endpoint: string; holdUpdates: boolean; held: number; close(): Promise<void> }> {
  const targetUrl = new URL(target);
  const state = { holdUpdates: false, held: 0 };
  const server = http.createServer((req, res) => {
    const hold = state.holdUpdates && String(req.headers['x-amz-target']).endsWith('.UpdateItem');
    const upstream = http.request(
      { host: targetUrl.hostname, port: targetUrl.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        if (hold) {
          state.held++;
          answer.resume(); // applied upstream; the caller never hears of it
          return;
        }
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    endpoint: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  });
}

describe('DynamoDB: a heartbeat that timed out after it was stored', () => {
  test('is answered 503 (it may have landed: documented), and retrying the same heartbeat is harmless', async () => {
    const dynalite = await startDynalite();
    const proxy = await answerLosingProxy(dynalite.endpoint);
    const opened = await openStore(proxy.endpoint, { requestTimeoutMs: REQUEST_TIMEOUT_MS });
    const config = loadConfig({ BACKEND_STORAGE: 'DynamoDB' }, process.cwd());
    const registry = await composeRegistry(config, pino({ level: 'silent' }), {
      store: opened.store,
      clock: new ManualClock(),
      stats: NO_STATS,
    });
    const heartbeat = {
      ip: '10.0.0.7',
      port: 80,
      revision: 'r1',
      service_repo_name: 'users-repo',
      tags: { az: 'a', region: 'r', instance_id: 'i', role: 'web' },
    };
    const send = () => registry.app.inject({ method: 'POST', url: '/v1/registration/retried', payload: heartbeat });
    try {
      proxy.holdUpdates = true;
      const lost = await send();
      assert.equal(lost.statusCode, 503);
      assert.ok(proxy.held >= 1, 'the UpdateItem reached DynamoDB');
      proxy.holdUpdates = false;
      const landed = await opened.store.get('retried', '10.0.0.7');
      assert.ok(landed, 'the write answered 503 is in the table: a timeout cannot tell whether it landed');

      for (let attempt = 0; attempt < 3; attempt++) assert.equal((await send()).statusCode, 200);
      const { hosts } = await opened.store.listByService('retried');
      assert.equal(hosts.length, 1);
      const [host] = hosts;
      assert.deepEqual({ ...host, last_check_in: undefined }, { ...landed, last_check_in: undefined });
      assert.deepEqual(host?.tags, heartbeat.tags);
      const listed = await registry.app.inject({ url: '/v1/registration/retried' });
      assert.equal(JSON.parse(listed.body).hosts.length, 1);
    } finally {
      await registry.close();
      await opened.dispose();
      await proxy.close();
      await dynalite.close();
    }
  });
});
