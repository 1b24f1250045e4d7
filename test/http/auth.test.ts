import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { composeRegistry } from '../../src/compose.js';
import { ConfigError, loadConfig } from '../../src/config.js';
import { form, listHosts, register, startRegistry, TAGS, type RunningRegistry } from '../helpers/registry.js';
import { NO_STATS } from '../../src/stats.js';

const REGISTER_PASSWORD = 'hosts-may-register';
const ADMIN_PASSWORD = 'operators-only-please';
const REGISTER_TOKEN = 'tok-register-0123456789';
const ADMIN_TOKEN = 'tok-admin-0123456789abcdef';

const basic = (user: string, password: string) => ({
  authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
});
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe('authorisation of writes', () => {
  let server: RunningRegistry;
  before(async () => {
    server = await startRegistry({
      env: {
        AUTH_REGISTER_PASSWORD: REGISTER_PASSWORD,
        AUTH_ADMIN_PASSWORD: ADMIN_PASSWORD,
        AUTH_REGISTER_TOKENS: REGISTER_TOKEN,
        AUTH_ADMIN_TOKENS: ADMIN_TOKEN,
      },
    });
  });
  after(async () => server.close());

  const weight = (path: string, headers: Record<string, string> = {}) =>
    fetch(`${server.url}/v1/loadbalancing/${path}`, {
      method: 'POST',
      body: form({ load_balancing_weight: 5 }),
      headers,
    });
  const remove = (path: string, headers: Record<string, string> = {}) =>
    fetch(`${server.url}/v1/registration/${path}`, { method: 'DELETE', headers });

  test('a registration without a credential is 401 with a WWW-Authenticate challenge, and writes nothing', async () => {
    const response = await register(server.url, 'locked');
    assert.equal(response.status, 401);
    assert.match(response.headers.get('www-authenticate') ?? '', /Basic realm="discovery"/);
    assert.match(((await response.json()) as { error: string }).error, /register/);
    assert.deepEqual((await listHosts(server.url, 'locked')).hosts, []);
  });

  test('a wrong password or token is 401', async () => {
    assert.equal((await register(server.url, 'locked', {}, basic('register', 'not-the-password'))).status, 401);
    assert.equal((await register(server.url, 'locked', {}, bearer('tok-guess-0000000000'))).status, 401);
    assert.equal((await register(server.url, 'locked', {}, { authorization: 'Digest whatever' })).status, 401);
    assert.equal(
      (await register(server.url, 'locked', {}, basic('admin', REGISTER_PASSWORD))).status,
      401,
      'a password only proves its own role',
    );
  });

  test('the register role registers, by basic auth or bearer token', async () => {
    assert.equal(
      (await register(server.url, 'locked', { ip: '10.0.0.1' }, basic('register', REGISTER_PASSWORD))).status,
      200,
    );
    assert.equal((await register(server.url, 'locked', { ip: '10.0.0.2' }, bearer(REGISTER_TOKEN))).status, 200);
    assert.equal((await listHosts(server.url, 'locked')).hosts.length, 2);
  });

  test('the register role may not change weights or delete: 403, and nothing changes', async () => {
    assert.equal((await weight('locked/10.0.0.1', bearer(REGISTER_TOKEN))).status, 403);
    assert.equal((await weight('locked', basic('register', REGISTER_PASSWORD))).status, 403);
    assert.equal((await remove('locked/10.0.0.1', bearer(REGISTER_TOKEN))).status, 403);
    const hosts = (await listHosts(server.url, 'locked')).hosts;
    assert.equal(hosts.length, 2);
    assert.equal(hosts[0]!.tags.load_balancing_weight, undefined);
  });

  test('weights and deletes without a credential are 401', async () => {
    assert.equal((await weight('locked/10.0.0.1')).status, 401);
    assert.equal((await remove('locked/10.0.0.1')).status, 401);
  });

  test('the admin role changes weights and deletes, and may register too', async () => {
    assert.equal((await weight('locked/10.0.0.1', basic('admin', ADMIN_PASSWORD))).status, 204);
    assert.equal((await weight('locked', bearer(ADMIN_TOKEN))).status, 204);
    assert.equal((await remove('locked/10.0.0.2', bearer(ADMIN_TOKEN))).status, 200);
    assert.equal((await register(server.url, 'locked', { ip: '10.0.0.3' }, bearer(ADMIN_TOKEN))).status, 200);
    assert.deepEqual(
      (await listHosts(server.url, 'locked')).hosts.map((host) => [host.ip_address, host.tags.load_balancing_weight]),
      [
        ['10.0.0.1', 5],
        ['10.0.0.3', undefined],
      ],
    );
  });

  test('reads stay open', async () => {
    assert.equal((await fetch(`${server.url}/v1/registration/locked`)).status, 200);
    assert.equal((await fetch(`${server.url}/v1/registration/repo/users-repo`)).status, 200);
    assert.equal((await fetch(`${server.url}/healthcheck`)).status, 200);
  });
});

describe('authorisation of reads when configured', () => {
  let server: RunningRegistry;
  before(async () => {
    server = await startRegistry({
      env: { AUTH_READ_TOKENS: 'tok-read-0123456789', AUTH_REGISTER_TOKENS: REGISTER_TOKEN },
    });
  });
  after(async () => server.close());

  test('reads need the read role (or a higher one)', async () => {
    assert.equal((await fetch(`${server.url}/v1/registration/x`)).status, 401);
    assert.equal(
      (await fetch(`${server.url}/v1/registration/x`, { headers: bearer('tok-read-0123456789') })).status,
      200,
    );
    assert.equal((await fetch(`${server.url}/v1/registration/x`, { headers: bearer(REGISTER_TOKEN) })).status, 200);
    assert.equal((await register(server.url, 'x', {}, bearer('tok-read-0123456789'))).status, 403);
    assert.equal((await fetch(`${server.url}/healthcheck`)).status, 200, 'health checks stay open for load balancers');
  });
});

describe('auth settings', () => {
  test('off by default: the original clients need no credential', async () => {
    const server = await startRegistry();
    assert.equal((await register(server.url, 'open')).status, 200);
    assert.equal((await fetch(`${server.url}/v1/registration/open/10.0.3.17`, { method: 'DELETE' })).status, 200);
    await server.close();
  });

  test('a too-short secret stops start-up without echoing it', () => {
    assert.throws(
      () => loadConfig({ AUTH_ADMIN_PASSWORD: 'short' }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.match(error.message, /AUTH_ADMIN_PASSWORD/);
        assert.equal(error.message.includes('short'), false);
        return true;
      },
    );
  });

  test('credentials never reach the log, even at debug level', async () => {
    let logged = '';
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        logged += chunk.toString();
        callback();
      },
    });
    const config = loadConfig({
      BACKEND_STORAGE: 'InMemory',
      AUTH_REGISTER_TOKENS: REGISTER_TOKEN,
      AUTH_ADMIN_PASSWORD: ADMIN_PASSWORD,
      LOG_LEVEL: 'DEBUG',
    });
    const registry = await composeRegistry(config, pino({ level: 'debug' }, sink), { stats: NO_STATS });
    await registry.app.listen({ port: 0, host: '127.0.0.1' });
    const address = registry.app.server.address();
    const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    await register(url, 'logged', {}, bearer(REGISTER_TOKEN));
    await register(url, 'logged', {}, bearer('tok-wrong-but-secret-123'));
    await fetch(`${url}/v1/registration/logged/10.0.3.17`, {
      method: 'DELETE',
      headers: basic('admin', ADMIN_PASSWORD),
    });
    await registry.close();
    assert.ok(logged.length > 0, 'something was logged');
    for (const secret of [
      REGISTER_TOKEN,
      'tok-wrong-but-secret-123',
      ADMIN_PASSWORD,
      Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64'),
    ]) {
      assert.equal(logged.includes(secret), false, 'a secret was logged');
    }
    void TAGS;
  });
});
