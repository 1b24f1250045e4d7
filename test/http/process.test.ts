import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { once } from 'node:events';
import { mkdir, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { RawXdsStream } from '../helpers/ads-client.js';
import { form, listHosts, register, TAGS } from '../helpers/registry.js';
import { runDiscoveryToExit, startDiscovery } from '../helpers/discovery-process.js';
import { tempDir } from '../helpers/temp-dir.js';

describe('the discovery process', () => {
  for (const [env, name] of [
    [{ HOST_TTL: 'soon' }, 'HOST_TTL'],
    [{ BACKEND_STORAGE: 'Cassandra!' }, 'BACKEND_STORAGE'],
    [{ DEBUG: 'perhaps' }, 'DEBUG'],
    [{ CACHE_TTL: '-1' }, 'CACHE_TTL'],
  ] as const) {
    test(`a wrong ${name} stops start-up with one line naming it`, async () => {
      const { code, stderr, stdout } = await runDiscoveryToExit({
        ...env,
        BACKEND_STORAGE: env.BACKEND_STORAGE ?? 'InMemory',
      });
      assert.equal(code, 1);
      assert.deepEqual(stdout, []);
      assert.equal(stderr.length, 1, stderr.join('\n'));
      assert.match(stderr[0]!, new RegExp(`^discovery: invalid setting ${name}=`));
    });
  }

  test('InFile: a damaged snapshot stops start-up with one line naming the file, the offset and what to do', async () => {
    const dir = await tempDir();
    const data = path.join(dir.path, 'data', 'infile');
    await mkdir(data, { recursive: true });
    await writeFile(path.join(data, 'hosts.json'), '[{"service":"users","ip_addr');
    const { code, stderr } = await runDiscoveryToExit({ BACKEND_STORAGE: 'InFile', APPLICATION_DIR: dir.path });
    assert.equal(code, 1);
    assert.equal(stderr.length, 1, stderr.join('\n'));
    assert.match(
      stderr[0]!,
      /^discovery: start-up failed: InFile cannot start: .*hosts\.json is damaged at byte 28 \(line 1\): expected .* move .*hosts\.json aside/,
    );
    await dir.remove();
  });

  test('InFile: a damaged journal line is skipped with a warning in the log, and the rest is served', async () => {
    const dir = await tempDir();
    const data = path.join(dir.path, 'data', 'infile');
    await mkdir(data, { recursive: true });
    const host = {
      service: 'users',
      ip_address: '10.0.0.1',
      port: 80,
      revision: 'r1',
      service_repo_name: '',
      last_check_in: '2026-11-28 06:40:12.345678',
      tags: {},
    };
    await writeFile(path.join(data, 'hosts.journal'), `null\n${JSON.stringify({ put: host })}\n`);
    const server = await startDiscovery({
      BACKEND_STORAGE: 'InFile',
      APPLICATION_DIR: dir.path,
      HOST_TTL: '100000000',
    });
    assert.deepEqual(
      (await listHosts(server.url, 'users')).hosts.map((each) => each.ip_address),
      ['10.0.0.1'],
    );
    assert.match(server.output(), /"level":(40|"warn").*hosts\.journal: line 1 \(byte 0\)/);
    assert.equal(await server.stop('SIGTERM'), 0);
    await dir.remove();
  });

  test('an unknown plugin backend stops start-up with one line', async () => {
    const dir = await tempDir();
    const { code, stderr } = await runDiscoveryToExit({ BACKEND_STORAGE: 'nosuchplugin', APPLICATION_DIR: dir.path });
    assert.equal(code, 1);
    assert.equal(stderr.length, 1, stderr.join('\n'));
    assert.match(stderr[0]!, /BACKEND_STORAGE="nosuchplugin"/);
    await dir.remove();
  });

  for (const backend of ['InFile', 'DynamoDB']) {
    test(`${backend}: every registration answered 200 before a SIGKILL mid-storm is there after restart, three times over`, async () => {
      const dir = await tempDir();
      // DynamoDB here is the embedded store, in the killed process itself: its files must survive the kill too.
      const env = { BACKEND_STORAGE: backend, APPLICATION_DIR: dir.path, DYNAMODB_TIMEOUT_MS: '30000' };
      const everAcknowledged: string[] = [];
      for (let round = 0; round < 3; round++) {
        const server = await startDiscovery(env, { startTimeoutMs: 30_000 });
        const acknowledged: string[] = [];
        const storm = Array.from({ length: 700 }, (_, index) => {
          const ip = `10.${round}.${Math.floor(index / 250)}.${index % 250}`;
          return register(server.url, 'storm', { ip })
            .then((response) => {
              if (response.status === 200) acknowledged.push(ip);
            })
            .catch(() => undefined); // cut off by the kill: never acknowledged
        });
        // Kill once part of the storm has been answered, while the rest is in flight.
        const killAfter = 100 + 50 * round;
        const waitUntil = Date.now() + 20_000;
        while (acknowledged.length < killAfter && Date.now() < waitUntil)
          await new Promise((resolve) => setTimeout(resolve, 1));
        await server.stop('SIGKILL');
        await Promise.all(storm);
        assert.ok(
          acknowledged.length >= killAfter,
          `round ${round}: only ${acknowledged.length} answered before the kill`,
        );
        everAcknowledged.push(...acknowledged);
        const restarted = await startDiscovery(env, { startTimeoutMs: 30_000 });
        const listed = new Set((await listHosts(restarted.url, 'storm')).hosts.map((host) => host.ip_address));
        const lost = everAcknowledged.filter((ip) => !listed.has(ip));
        assert.deepEqual(
          lost,
          [],
          `round ${round}: ${lost.length} of ${everAcknowledged.length} acknowledged registrations lost`,
        );
        assert.equal(await restarted.stop('SIGTERM'), 0);
      }
      await dir.remove();
    });
  }

  test('SIGTERM finishes a request in flight, refuses new connections, flushes storage and exits 0', async () => {
    const dir = await tempDir();
    const env = { BACKEND_STORAGE: 'InFile', APPLICATION_DIR: dir.path };
    const server = await startDiscovery(env);
    const { port } = new URL(server.url);
    const body = form({ ip: '10.9.9.9', port: 80, revision: 'in-flight', tags: TAGS }).toString();
    // Headers and half the body now, the rest after SIGTERM: the request is in flight during shutdown.
    const socket = connect(Number(port), '127.0.0.1');
    await once(socket, 'connect');
    let response = '';
    socket.on('data', (chunk: Buffer) => (response += chunk.toString()));
    socket.write(
      `POST /v1/registration/inflight HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 20)}`,
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    const started = Date.now();
    const exited = server.stop('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 300));
    await assert.rejects(fetch(`${server.url}/healthcheck`), 'a new connection is refused while draining');
    socket.write(body.slice(20));
    assert.equal(await exited, 0);
    assert.ok(Date.now() - started < 10_000, 'shutdown is bounded');
    assert.match(response, /^HTTP\/1\.1 200 /, `the in-flight request was answered: ${response}`);
    socket.destroy();
    const restarted = await startDiscovery(env);
    assert.deepEqual(
      (await listHosts(restarted.url, 'inflight')).hosts.map((host) => host.revision),
      ['in-flight'],
    );
    assert.equal(await restarted.stop('SIGINT'), 0, 'SIGINT shuts down the same way');
    await dir.remove();
  });

  test('SIGTERM ends xDS streams cleanly (status OK), so proxies move to another replica', async () => {
    const server = await startDiscovery({ BACKEND_STORAGE: 'InMemory' });
    const xdsPort = Number(/xDS control plane listening on port (\d+)/.exec(server.output())?.[1]);
    const client = new grpc.Client(`127.0.0.1:${xdsPort}`, grpc.credentials.createInsecure());
    const stream = new RawXdsStream(client);
    stream.send({
      node: { id: 'envoy-1' },
      type_url: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
      resource_names: ['users'],
    });
    await stream.next(5000);
    assert.equal(await server.stop('SIGTERM'), 0);
    assert.equal((await stream.status).code, grpc.status.OK);
    client.close();
  });

  test('SIGTERM shuts down cleanly with exit code 0', async () => {
    const server = await startDiscovery({ BACKEND_STORAGE: 'InMemory' });
    assert.equal((await fetch(`${server.url}/healthcheck`)).status, 200);
    assert.equal(await server.stop('SIGTERM'), 0);
  });
});
