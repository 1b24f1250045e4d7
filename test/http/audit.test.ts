import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { composeRegistry, openWritesWarning, peerTokenWarning, type Registry } from '../../src/compose.js';
import { loadConfig } from '../../src/config.js';
import { NO_STATS } from '../../src/stats.js';
import { childEnv } from '../helpers/discovery-process.js';
import { form, TAGS } from '../helpers/registry.js';

const REGISTER_TOKEN = 'tok-register-0123456789';
const ADMIN_TOKEN = 'tok-admin-0123456789';
const READ_TOKEN = 'tok-read-0123456789';

interface LogLine {
  level: number;
  msg: string;
  reqId?: string;
  client?: string;
  role?: string;
  [key: string]: unknown;
}

/** A registry whose every info line is kept, with write and read credentials configured. */
async function loggedRegistry(env: Record<string, string>, fastPaths: boolean) {
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as LogLine);
      callback();
    },
  });
  const config = loadConfig({
    BACKEND_STORAGE: 'InMemory',
    XDS_ENABLED: 'false',
    AUTH_REGISTER_TOKENS: REGISTER_TOKEN,
    AUTH_ADMIN_TOKENS: ADMIN_TOKEN,
    AUTH_READ_TOKENS: READ_TOKEN,
    ...env,
  });
  const registry: Registry = await composeRegistry(config, pino({ level: 'info' }, sink), {
    stats: NO_STATS,
    fastPaths,
  });
  await registry.app.listen({ port: 0, host: '127.0.0.1' });
  const address = registry.app.server.address();
  const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  return { url, lines, close: () => registry.close() };
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

for (const fastPaths of [true, false]) {
  describe(`the audit trail and request ids (fast paths ${fastPaths ? 'on' : 'off'})`, () => {
    let server: Awaited<ReturnType<typeof loggedRegistry>>;
    before(async () => {
      server = await loggedRegistry({}, fastPaths);
    });
    after(async () => server.close());

    const heartbeat = (ip: string, headers: Record<string, string>) =>
      fetch(`${server.url}/v1/registration/audited`, {
        method: 'POST',
        headers,
        body: form({ ip, port: 80, revision: 'r1', tags: TAGS }),
      });

    test('an acceptable X-Request-Id comes back; a missing or unacceptable one is replaced by a UUID', async () => {
      const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
      const get = (headers: Record<string, string>) =>
        fetch(`${server.url}/v1/registration/audited`, { headers: { ...bearer(READ_TOKEN), ...headers } });
      assert.equal((await get({ 'x-request-id': 'lb-7f3a.42' })).headers.get('x-request-id'), 'lb-7f3a.42');
      const made = [
        (await get({})).headers.get('x-request-id') ?? '',
        (await get({ 'x-request-id': 'has spaces in it' })).headers.get('x-request-id') ?? '',
        (await get({ 'x-request-id': 'x'.repeat(129) })).headers.get('x-request-id') ?? '',
      ];
      for (const id of made) assert.match(id, uuid);
      assert.equal(new Set(made).size, made.length, `every request gets an id of its own: ${made.join(', ')}`);
      const beat = await heartbeat('10.9.0.1', { ...bearer(REGISTER_TOKEN), 'x-request-id': 'beat-1' });
      assert.equal(beat.status, 200);
      assert.equal(beat.headers.get('x-request-id'), 'beat-1');
    });

    test('a new host is logged at info with request id, client and role; a refresh is not', async () => {
      const before = server.lines.length;
      assert.equal((await heartbeat('10.9.0.2', { ...bearer(REGISTER_TOKEN), 'x-request-id': 'new-2' })).status, 200);
      assert.equal((await heartbeat('10.9.0.2', { ...bearer(REGISTER_TOKEN), 'x-request-id': 'again-2' })).status, 200);
      const registered = server.lines.slice(before).filter((line) => line.msg === 'host registered');
      assert.equal(registered.length, 1, 'one line for the new host, none for its refresh');
      assert.equal(registered[0]?.level, 30);
      assert.equal(registered[0]?.reqId, 'new-2');
      assert.equal(registered[0]?.role, 'register');
      assert.equal(registered[0]?.ip, '10.9.0.2');
      assert.match(String(registered[0]?.client), /127\.0\.0\.1/);
    });

    test('a weight change and a delete are logged with who asked', async () => {
      await heartbeat('10.9.0.3', bearer(REGISTER_TOKEN));
      const before = server.lines.length;
      const weight = await fetch(`${server.url}/v1/loadbalancing/audited/10.9.0.3`, {
        method: 'POST',
        headers: { ...bearer(ADMIN_TOKEN), 'x-request-id': 'w-3' },
        body: new URLSearchParams({ load_balancing_weight: '7' }),
      });
      assert.equal(weight.status, 204);
      const gone = await fetch(`${server.url}/v1/registration/audited/10.9.0.3`, {
        method: 'DELETE',
        headers: { ...bearer(ADMIN_TOKEN), 'x-request-id': 'd-3' },
      });
      assert.equal(gone.status, 200);
      const lines = server.lines.slice(before);
      const weighted = lines.find((line) => line.msg === 'weight set');
      assert.equal(weighted?.reqId, 'w-3');
      assert.equal(weighted?.role, 'admin');
      assert.equal(weighted?.weight, 7);
      const deleted = lines.find((line) => line.msg === 'host deregistered');
      assert.equal(deleted?.reqId, 'd-3');
      assert.equal(deleted?.role, 'admin');
    });

    test('every 401 and 403 is logged at info with its request id, never with the credential', async () => {
      const before = server.lines.length;
      assert.equal((await heartbeat('10.9.0.4', { 'x-request-id': 'no-cred' })).status, 401);
      assert.equal(
        (await heartbeat('10.9.0.4', { ...bearer('tok-wrong-0123456789'), 'x-request-id': 'bad' })).status,
        401,
      );
      const forbidden = await fetch(`${server.url}/v1/registration/audited/10.9.0.2`, {
        method: 'DELETE',
        headers: { ...bearer(REGISTER_TOKEN), 'x-request-id': 'weak' },
      });
      assert.equal(forbidden.status, 403);
      const refusals = server.lines.slice(before).filter((line) => line.msg.startsWith('refused:'));
      assert.deepEqual(
        refusals.map((line) => [line.reqId, line.level]),
        [
          ['no-cred', 30],
          ['bad', 30],
          ['weak', 30],
        ],
      );
      assert.equal(JSON.stringify(refusals).includes('tok-'), false, 'no credential in the log');
    });
  });
}

describe('the access log and production defaults', () => {
  test('ACCESS_LOG=true writes one info line per request, on both transports, with its request id', async () => {
    for (const fastPaths of [true, false]) {
      const server = await loggedRegistry({ ACCESS_LOG: 'true' }, fastPaths);
      try {
        await fetch(`${server.url}/v1/registration/users`, {
          headers: { ...bearer(READ_TOKEN), 'x-request-id': 'access-1' },
        });
        await fetch(`${server.url}/healthcheck`, { headers: { 'x-request-id': 'access-2' } });
        const requests = server.lines.filter((line) => line.msg === 'request');
        assert.deepEqual(
          requests.map((line) => [line.reqId, line.status, line.level]),
          [
            ['access-1', 200, 30],
            ['access-2', 200, 30],
          ],
          `fast paths ${fastPaths}`,
        );
      } finally {
        await server.close();
      }
    }
  });

  test('APPLICATION_ENV=production defaults to LOG_LEVEL=INFO and DEBUG=false; both can still be set', () => {
    const production = loadConfig({ APPLICATION_ENV: 'production', BACKEND_STORAGE: 'InMemory' });
    assert.equal(production.logLevel, 'info');
    assert.equal(production.debug, false);
    const told = loadConfig({
      APPLICATION_ENV: 'production',
      BACKEND_STORAGE: 'InMemory',
      LOG_LEVEL: 'DEBUG',
      DEBUG: 'true',
    });
    assert.equal(told.logLevel, 'debug');
    assert.equal(told.debug, true);
    const development = loadConfig({ BACKEND_STORAGE: 'InMemory' });
    assert.equal(development.logLevel, 'debug', "the original's default is kept outside production");
    assert.equal(development.debug, true);
  });

  test('open writes on a reachable address are warned about; locked writes or loopback are not', () => {
    const warning = (env: Record<string, string>) =>
      openWritesWarning(loadConfig({ BACKEND_STORAGE: 'InMemory', ...env }));
    assert.match(warning({}) ?? '', /writes are not authenticated and the HTTP port listens on 0\.0\.0\.0:8080/);
    assert.match(warning({ LISTEN_ADDRESS: '::' }) ?? '', /AUTH_REGISTER_TOKENS/);
    assert.equal(warning({ LISTEN_ADDRESS: '127.0.0.1' }), undefined);
    assert.equal(warning({ LISTEN_ADDRESS: '::1' }), undefined);
    assert.equal(warning({ LISTEN_ADDRESS: 'localhost' }), undefined);
    assert.equal(warning({ AUTH_ADMIN_TOKENS: ADMIN_TOKEN }), undefined);
  });

  test('locked writes without PEER_TOKEN are warned about where replicas follow a change feed', () => {
    const warning = (env: Record<string, string>, followsFeed = true) =>
      peerTokenWarning(loadConfig({ BACKEND_STORAGE: 'InMemory', ...env }), followsFeed);
    assert.match(warning({ AUTH_REGISTER_TOKENS: ADMIN_TOKEN }) ?? '', /PEER_TOKEN is not set/);
    assert.equal(warning({ AUTH_REGISTER_TOKENS: ADMIN_TOKEN, PEER_TOKEN: ADMIN_TOKEN }), undefined);
    assert.equal(warning({}), undefined, 'open writes take hints without a token');
    assert.equal(warning({ AUTH_REGISTER_TOKENS: ADMIN_TOKEN }, false), undefined, 'no feed, no hints');
  });

  test('the warning is loud at any level: with LOG_LEVEL=ERROR it is one stderr line', async () => {
    // At ERROR nothing says "listening", so the process is watched until the line or a bound.
    const child = spawn(process.execPath, ['dist/src/main.js'], {
      env: childEnv({ BACKEND_STORAGE: 'InMemory', LISTEN_ADDRESS: '0.0.0.0', LOG_LEVEL: 'ERROR' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    try {
      const deadline = Date.now() + 30_000;
      while (!stderr.includes('\n') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      const warned = stderr.split('\n').filter((line) => line.includes('writes are not authenticated'));
      assert.equal(warned.length, 1, stderr);
    } finally {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  });
});
