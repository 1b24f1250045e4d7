import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { composeRegistry } from '../../src/compose.js';
import { ConfigError, loadConfig } from '../../src/config.js';
import type { EmbeddedDynamoDb } from '../../src/store/dynamodb/embedded-dynalite.js';
import { freshTableName, startDynalite } from '../helpers/dynamodb.js';
import { form, listHosts, register, startRegistry, type RunningRegistry } from '../helpers/registry.js';

/** `[ip, port]` of each host served for `service`, in the order served. */
async function instances(url: string, service: string, query = ''): Promise<Array<[string, number]>> {
  const response = await fetch(`${url}/v1/registration/${service}${query}`);
  assert.equal(response.status, 200);
  const { hosts } = (await response.json()) as { hosts: Array<{ ip_address: string; port: number }> };
  return hosts.map((host) => [host.ip_address, host.port]);
}

function call(url: string, method: string, pathname: string, body?: URLSearchParams): Promise<Response> {
  return fetch(`${url}${pathname}`, { method, body });
}

for (const fastPaths of [true, false]) {
  describe(`INSTANCE_KEY=ip_port over HTTP (fast paths ${fastPaths ? 'on' : 'off'})`, () => {
    let server: RunningRegistry;
    before(async () => {
      server = await startRegistry({ env: { INSTANCE_KEY: 'ip_port' }, fastPaths });
    });
    after(async () => server.close());

    test('a heartbeat with a new port adds an instance; one with a known port refreshes it', async () => {
      assert.equal((await register(server.url, 'pods', { ip: '10.1.0.1', port: 8080, revision: 'a' })).status, 200);
      assert.equal((await register(server.url, 'pods', { ip: '10.1.0.1', port: 8081, revision: 'a' })).status, 200);
      assert.equal((await register(server.url, 'pods', { ip: '10.1.0.1', port: 8080, revision: 'b' })).status, 200);
      assert.equal((await register(server.url, 'pods', { ip: '2001:db8::7', port: 8080 })).status, 200);
      assert.deepEqual(await instances(server.url, 'pods'), [
        ['10.1.0.1', 8080],
        ['10.1.0.1', 8081],
        ['2001:db8::7', 8080],
      ]);
      const hosts = (await listHosts(server.url, 'pods')).hosts;
      assert.equal(hosts[0]!.revision, 'b');
      assert.equal(hosts[1]!.revision, 'a');
    });

    test('DELETE :ip_address/:port removes one instance; a port nobody has is a 400', async () => {
      await register(server.url, 'del-one', { ip: '10.2.0.1', port: 7000 });
      await register(server.url, 'del-one', { ip: '10.2.0.1', port: 7001 });
      const removed = await call(server.url, 'DELETE', '/v1/registration/del-one/10.2.0.1/7000');
      assert.equal(removed.status, 200);
      assert.deepEqual(await removed.json(), {});
      assert.deepEqual(await instances(server.url, 'del-one'), [['10.2.0.1', 7001]]);
      const again = await call(server.url, 'DELETE', '/v1/registration/del-one/10.2.0.1/7000');
      assert.equal(again.status, 400);
      assert.match(((await again.json()) as { error: string }).error, /10\.2\.0\.1 port 7000 .*not found/);
    });

    test('DELETE :ip_address removes every instance at the IP (200), and a 400 once none is left', async () => {
      await register(server.url, 'del-all', { ip: '10.3.0.1', port: 7000 });
      await register(server.url, 'del-all', { ip: '10.3.0.1', port: 7001 });
      await register(server.url, 'del-all', { ip: '10.3.0.2', port: 7000 });
      assert.equal((await call(server.url, 'DELETE', '/v1/registration/del-all/10.3.0.1')).status, 200);
      assert.deepEqual(await instances(server.url, 'del-all'), [['10.3.0.2', 7000]]);
      assert.equal((await call(server.url, 'DELETE', '/v1/registration/del-all/10.3.0.1')).status, 400);
    });

    test('a weight on :ip_address/:port weights that instance only; on :ip_address every instance there', async () => {
      await register(server.url, 'weights', { ip: '10.4.0.1', port: 7000 });
      await register(server.url, 'weights', { ip: '10.4.0.1', port: 7001 });
      await register(server.url, 'weights', { ip: '10.4.0.2', port: 7000 });
      const weightOf = async () =>
        (await listHosts(server.url, 'weights')).hosts.map((host) => host.tags.load_balancing_weight ?? null);
      const one = await call(
        server.url,
        'POST',
        '/v1/loadbalancing/weights/10.4.0.1/7001',
        form({ load_balancing_weight: 30 }),
      );
      assert.equal(one.status, 204);
      assert.deepEqual(await weightOf(), [null, 30, null]);
      const both = await call(
        server.url,
        'POST',
        '/v1/loadbalancing/weights/10.4.0.1',
        form({ load_balancing_weight: 5 }),
      );
      assert.equal(both.status, 204);
      assert.deepEqual(await weightOf(), [5, 5, null]);
      const nobody = await call(
        server.url,
        'POST',
        '/v1/loadbalancing/weights/10.4.0.1/9999',
        form({ load_balancing_weight: 5 }),
      );
      assert.equal(nobody.status, 404);
    });

    test('a port that is not a port is a 400 naming it, and changes nothing', async () => {
      await register(server.url, 'bad-port', { ip: '10.5.0.1', port: 7000 });
      for (const port of ['0', '65536', 'http', '80.5']) {
        const response = await call(server.url, 'DELETE', `/v1/registration/bad-port/10.5.0.1/${port}`);
        assert.equal(response.status, 400, port);
        assert.match(((await response.json()) as { error: string }).error, /'port'/);
      }
      assert.deepEqual(await instances(server.url, 'bad-port'), [['10.5.0.1', 7000]]);
    });
  });
}

describe('INSTANCE_KEY=ip (the default) with the port routes', () => {
  let server: RunningRegistry;
  before(async () => {
    server = await startRegistry();
  });
  after(async () => server.close());

  test('a heartbeat from a known IP on another port moves the one host, as the original did', async () => {
    await register(server.url, 'moves', { ip: '10.6.0.1', port: 8080 });
    await register(server.url, 'moves', { ip: '10.6.0.1', port: 8081 });
    assert.deepEqual(await instances(server.url, 'moves'), [['10.6.0.1', 8081]]);
  });

  test('DELETE :ip_address/:port removes the host when it listens on that port, else a 400 that says its port', async () => {
    await register(server.url, 'port-check', { ip: '10.7.0.1', port: 8080 });
    const wrong = await call(server.url, 'DELETE', '/v1/registration/port-check/10.7.0.1/9090');
    assert.equal(wrong.status, 400);
    assert.match(((await wrong.json()) as { error: string }).error, /listens on port 8080, not 9090/);
    assert.deepEqual(await instances(server.url, 'port-check'), [['10.7.0.1', 8080]]);
    assert.equal((await call(server.url, 'DELETE', '/v1/registration/port-check/10.7.0.1/8080')).status, 200);
    assert.deepEqual(await instances(server.url, 'port-check'), []);
  });

  test('a weight on :ip_address/:port needs the stored port too', async () => {
    await register(server.url, 'port-weight', { ip: '10.8.0.1', port: 8080 });
    const wrong = await call(
      server.url,
      'POST',
      '/v1/loadbalancing/port-weight/10.8.0.1/9090',
      form({ load_balancing_weight: 9 }),
    );
    assert.equal(wrong.status, 400);
    const right = await call(
      server.url,
      'POST',
      '/v1/loadbalancing/port-weight/10.8.0.1/8080',
      form({ load_balancing_weight: 9 }),
    );
    assert.equal(right.status, 204);
    assert.equal((await listHosts(server.url, 'port-weight')).hosts[0]!.tags.load_balancing_weight, 9);
  });
});

describe('starting in one INSTANCE_KEY mode on data written in the other', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'discovery-instance-key-'));
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  const start = (mode: string) =>
    composeRegistry(
      loadConfig({ BACKEND_STORAGE: 'InFile', APPLICATION_DIR: dir, INSTANCE_KEY: mode, LOG_LEVEL: 'ERROR' }),
      pino({ level: 'silent' }),
    );

  test('is refused with a message that says how, both ways; the same mode starts again', async () => {
    const first = await start('ip');
    await first.app.inject({ method: 'POST', url: '/v1/registration/kept', payload: heartbeatPayload('10.9.0.1') });
    await first.close();
    await assert.rejects(start('ip_port'), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(
        error.message,
        /INSTANCE_KEY=ip_port, but the InFile store in .* holds hosts written with INSTANCE_KEY=ip/,
      );
      assert.match(error.message, /Start with INSTANCE_KEY=ip, or point this server at an empty store/);
      return true;
    });
    const again = await start('ip');
    const listed = await again.app.inject({ method: 'GET', url: '/v1/registration/kept' });
    assert.equal(JSON.parse(listed.body).hosts.length, 1, 'nothing was changed by the refused start');
    await again.app.inject({ method: 'DELETE', url: '/v1/registration/kept/10.9.0.1' });
    await again.close();

    const portKeyed = await start('ip_port');
    await portKeyed.app.inject({ method: 'POST', url: '/v1/registration/pods', payload: heartbeatPayload('10.9.0.2') });
    await portKeyed.close();
    await assert.rejects(
      start('ip'),
      /INSTANCE_KEY=ip, but .* holds hosts written with INSTANCE_KEY=ip_port .*keyed '10\.9\.0\.2:80'/,
    );
  });
});

function heartbeatPayload(ip: string): Record<string, string> {
  return {
    ip,
    port: '80',
    revision: 'r1',
    service_repo_name: 'repo',
    tags: JSON.stringify({ az: 'a', region: 'r', instance_id: 'i' }),
  };
}

describe('the same refusal on a DynamoDB table (dynalite), through the settings a replica starts with', () => {
  let dynamo: EmbeddedDynamoDb;
  before(async () => {
    dynamo = await startDynalite();
  });
  after(async () => dynamo.close());

  test('a table written with INSTANCE_KEY=ip_port is refused in ip mode, naming the table', async () => {
    const table = freshTableName();
    const settings = (mode: string) =>
      loadConfig({
        BACKEND_STORAGE: 'DynamoDB',
        DYNAMODB_URL: dynamo.endpoint,
        DYNAMODB_CREATE_TABLES_IN_APP: 'true',
        DYNAMODB_TABLE_HOSTS: table,
        INSTANCE_KEY: mode,
        LOG_LEVEL: 'ERROR',
      });
    const writer = await composeRegistry(settings('ip_port'), pino({ level: 'silent' }));
    const written = await writer.app.inject({
      method: 'POST',
      url: '/v1/registration/pods',
      payload: heartbeatPayload('10.9.1.1'),
    });
    assert.equal(written.statusCode, 200);
    await writer.close();
    await assert.rejects(
      composeRegistry(settings('ip'), pino({ level: 'silent' })),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.message.includes(`the DynamoDB table ${table} holds hosts written with INSTANCE_KEY=ip_port`) &&
        error.message.includes("keyed '10.9.1.1:80'"),
    );
    const again = await composeRegistry(settings('ip_port'), pino({ level: 'silent' }));
    const listed = await again.app.inject({ method: 'GET', url: '/v1/registration/pods' });
    assert.deepEqual(
      JSON.parse(listed.body).hosts.map((host: { ip_address: string; port: number }) => [host.ip_address, host.port]),
      [['10.9.1.1', 80]],
    );
    await again.close();
  });
});
