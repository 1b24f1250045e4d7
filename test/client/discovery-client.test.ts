import assert from 'node:assert/strict';
import { access, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { DiscoveryClient, DiscoveryError, type Registration } from '../../src/client/index.js';
import { FlakyHostStore, freePort, startSilentServer } from '../helpers/network.js';
import { listHosts, startRegistry, TAGS, type RunningRegistry } from '../helpers/registry.js';

const HOST: Registration = {
  ip: '10.0.3.17',
  port: 9211,
  revision: '2f1c0e9',
  serviceRepoName: 'users-repo',
  tags: TAGS,
};

/** Rejects with a DiscoveryError and returns it, for assertions on its fields. */
async function discoveryError(promise: Promise<unknown>): Promise<DiscoveryError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof DiscoveryError, `expected a DiscoveryError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected the call to fail');
}

describe('DiscoveryClient against a real registry', () => {
  const servers: RunningRegistry[] = [];
  after(async () => Promise.all(servers.map((server) => server.close())));
  async function start(options: Parameters<typeof startRegistry>[0] = {}) {
    const server = await startRegistry(options);
    servers.push(server);
    return { server, client: new DiscoveryClient({ baseUrl: server.url, timeoutMs: 5_000 }) };
  }

  test('register then list returns the typed v1 body', async () => {
    const { client } = await start();
    await client.register('users', HOST);
    const list = await client.list('users');
    assert.equal(list.service, 'users');
    assert.equal(list.env, 'development');
    assert.equal(list.hosts.length, 1);
    const host = list.hosts[0]!;
    assert.equal(host.ip_address, '10.0.3.17');
    assert.equal(host.port, 9211);
    assert.equal(host.revision, '2f1c0e9');
    assert.equal(host.service_repo_name, 'users-repo');
    assert.deepEqual(host.tags, TAGS);
    assert.match(host.last_check_in, /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}$/);
  });

  test('an unknown service lists no hosts', async () => {
    const { client } = await start();
    assert.deepEqual((await client.list('nobody')).hosts, []);
  });

  test('autoIp registers the address the registry sees', async () => {
    const { client } = await start({ env: { AUTO_IP_ALLOWED_RANGES: '127.0.0.0/8' } });
    await client.register('auto', { autoIp: true, port: 80, revision: 'r1', tags: TAGS });
    assert.deepEqual(
      (await client.list('auto')).hosts.map((host) => host.ip_address),
      ['127.0.0.1'],
    );
  });

  test('list sends the last ETag and reuses the cached body on 304', async () => {
    const { server } = await start();
    const seen: Array<{ method: string; ifNoneMatch: string | null; status: number }> = [];
    // The real fetch, observed: what went out and what came back.
    const observed: typeof fetch = async (input, init) => {
      const response = await fetch(input, init);
      seen.push({
        method: init?.method ?? 'GET',
        ifNoneMatch: new Headers(init?.headers).get('if-none-match'),
        status: response.status,
      });
      return response;
    };
    const gets = () => seen.filter((call) => call.method === 'GET');
    const client = new DiscoveryClient({ baseUrl: server.url, fetch: observed });
    await client.register('users', HOST);
    const first = await client.list('users');
    const second = await client.list('users');
    assert.equal(second, first, 'the cached object itself is returned on 304');
    assert.deepEqual(
      gets().map((call) => call.status),
      [200, 304],
    );
    assert.equal(gets()[0]!.ifNoneMatch, null);
    assert.match(gets()[1]!.ifNoneMatch ?? '', /^W\/"/);

    await client.register('users', { ...HOST, ip: '10.0.3.18' });
    const third = await client.list('users');
    assert.equal(gets().at(-1)!.status, 200, 'a changed list is fetched again');
    assert.notEqual(third, first);
    assert.deepEqual(third.hosts.map((host) => host.ip_address).sort(), ['10.0.3.17', '10.0.3.18']);
  });

  test('listByRepo lists across services and is cached by ETag too', async () => {
    const { client } = await start();
    await client.register('users', HOST);
    await client.register('users-admin', { ...HOST, ip: '10.0.4.1' });
    const first = await client.listByRepo('users-repo');
    assert.equal(first.service_repo_name, 'users-repo');
    assert.deepEqual(first.hosts.map((host) => host.service).sort(), ['users', 'users-admin']);
    assert.equal(await client.listByRepo('users-repo'), first);
  });

  test('deregister removes the host; a second deregister is a non-retryable 400', async () => {
    const { server, client } = await start();
    await client.register('users', HOST);
    await client.deregister('users', '10.0.3.17');
    assert.deepEqual((await listHosts(server.url, 'users')).hosts, []);
    const error = await discoveryError(client.deregister('users', '10.0.3.17'));
    assert.equal(error.status, 400);
    assert.equal(error.kind, 'http');
    assert.equal(error.retryable, false);
  });

  test('IPv6 addresses survive the path encoding', async () => {
    const { client } = await start();
    await client.register('v6', { ...HOST, ip: '2001:db8::7' });
    assert.deepEqual(
      (await client.list('v6')).hosts.map((host) => host.ip_address),
      ['2001:db8::7'],
    );
    await client.deregister('v6', '2001:db8::7');
    assert.deepEqual((await client.list('v6')).hosts, []);
  });

  test('setWeight sets one host, or every host of the service', async () => {
    const { server, client } = await start();
    await client.register('users', HOST);
    await client.register('users', { ...HOST, ip: '10.0.3.18' });
    await client.setWeight('users', 50, '10.0.3.17');
    const weights = async () =>
      Object.fromEntries(
        (await listHosts(server.url, 'users')).hosts.map((host) => [host.ip_address, host.tags.load_balancing_weight]),
      );
    assert.deepEqual(await weights(), { '10.0.3.17': 50, '10.0.3.18': undefined });
    await client.setWeight('users', 10);
    assert.deepEqual(await weights(), { '10.0.3.17': 10, '10.0.3.18': 10 });
  });

  test('setWeight on an unknown host carries the 404 and the server message', async () => {
    const { client } = await start();
    const error = await discoveryError(client.setWeight('users', 50, '10.9.9.9'));
    assert.equal(error.status, 404);
    assert.equal(error.serverMessage, 'Host not found');
    assert.equal(error.retryable, false);
  });

  test('invalid input is a non-retryable 400 naming the field, and nothing is written', async () => {
    const { server, client } = await start();
    const error = await discoveryError(client.register('users', { ...HOST, port: 70000 }));
    assert.equal(error.status, 400);
    assert.match(error.serverMessage ?? '', /port/);
    assert.match(error.message, /POST \/v1\/registration\/users: 400 .*port/);
    assert.equal(error.retryable, false);
    assert.deepEqual((await listHosts(server.url, 'users')).hosts, []);
  });

  test('a registry whose storage is down gives a retryable 503', async () => {
    const store = new FlakyHostStore();
    const { client } = await start({ store });
    store.down = true;
    const error = await discoveryError(client.register('users', HOST));
    assert.equal(error.status, 503);
    assert.equal(error.kind, 'http');
    assert.equal(error.retryable, true);
    store.down = false;
    await client.register('users', HOST);
  });

  test('a base URL with a trailing slash works', async () => {
    const { server } = await start();
    const client = new DiscoveryClient({ baseUrl: `${server.url}/` });
    await client.register('users', HOST);
    assert.equal((await client.list('users')).hosts.length, 1);
  });
});

describe('DiscoveryClient failures without an answer', () => {
  test('nothing listening is a retryable network error', async () => {
    const client = new DiscoveryClient({ baseUrl: `http://127.0.0.1:${await freePort()}`, timeoutMs: 2_000 });
    const error = await discoveryError(client.register('users', HOST));
    assert.equal(error.kind, 'network');
    assert.equal(error.status, undefined);
    assert.equal(error.retryable, true);
    assert.match(error.message, /ECONNREFUSED/);
  });

  test('a server that never answers is a retryable timeout after timeoutMs', async () => {
    const silent = await startSilentServer();
    try {
      const client = new DiscoveryClient({ baseUrl: silent.url, timeoutMs: 200 });
      const started = Date.now();
      const error = await discoveryError(client.list('users'));
      const elapsed = Date.now() - started;
      assert.equal(error.kind, 'timeout');
      assert.equal(error.retryable, true);
      assert.ok(elapsed >= 190 && elapsed < 3_000, `took ${elapsed} ms`);
    } finally {
      await silent.close();
    }
  });

  test("a caller's abort rejects with the caller's reason, not a DiscoveryError", async () => {
    const silent = await startSilentServer();
    try {
      const client = new DiscoveryClient({ baseUrl: silent.url, timeoutMs: 5_000 });
      const controller = new AbortController();
      const reason = new Error('stop asked');
      setTimeout(() => controller.abort(reason), 50);
      await assert.rejects(client.list('users', { signal: controller.signal }), (error) => error === reason);
    } finally {
      await silent.close();
    }
  });

  test('a malformed base URL is refused at construction', () => {
    assert.throws(() => new DiscoveryClient({ baseUrl: 'not a url' }), TypeError);
    assert.throws(() => new DiscoveryClient({ baseUrl: 'ftp://127.0.0.1/' }), TypeError);
  });
});

describe('the package entry point', () => {
  test("import '@discovery-registry/discovery' gives the client library, with its type declarations built", async () => {
    const name = '@discovery-registry/discovery'; // a variable, so tsc does not resolve the package's own build output while building it
    const entry = (await import(name)) as Record<string, unknown>;
    assert.equal(entry.DiscoveryClient, DiscoveryClient);
    assert.equal(typeof entry.HeartbeatAgent, 'function');
    assert.deepEqual(Object.keys(entry).sort(), [
      'DEFAULT_TIMEOUT_MS',
      'DiscoveryClient',
      'DiscoveryError',
      'HeartbeatAgent',
    ]);
    const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
    const manifest = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8')) as {
      types: string;
      exports: { '.': { types: string } };
    };
    assert.equal(path.normalize(manifest.exports['.'].types), path.normalize(manifest.types));
    await access(path.join(root, manifest.types));
  });
});
