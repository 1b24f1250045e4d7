import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { listHosts, register, startRegistry, type RunningRegistry } from '../helpers/registry.js';

describe('auto_ip', () => {
  const servers: RunningRegistry[] = [];
  after(async () => Promise.all(servers.map((server) => server.close())));
  async function start(env: Record<string, string> = {}) {
    const server = await startRegistry({ env });
    servers.push(server);
    return server;
  }

  test('registers the last X-Forwarded-For address when it is inside 192.168.0.0/16', async () => {
    const server = await start();
    const response = await register(
      server.url,
      'auto',
      { ip: undefined, auto_ip: 'true' },
      { 'x-forwarded-for': '203.0.113.9, 192.168.4.20' },
    );
    assert.equal(response.status, 200);
    assert.deepEqual(
      (await listHosts(server.url, 'auto')).hosts.map((host) => host.ip_address),
      ['192.168.4.20'],
    );
  });

  test('refuses an address outside the accepted ranges with 400 naming auto_ip', async () => {
    const server = await start();
    const response = await register(
      server.url,
      'auto',
      { ip: undefined, auto_ip: 'true' },
      { 'x-forwarded-for': '10.1.2.3' },
    );
    assert.equal(response.status, 400);
    assert.match(((await response.json()) as { error: string }).error, /auto_ip/);
    assert.deepEqual((await listHosts(server.url, 'auto')).hosts, []);
  });

  test('without X-Forwarded-For the socket address is used (loopback here, so refused by default)', async () => {
    const server = await start();
    const response = await register(server.url, 'auto', { ip: undefined, auto_ip: '1' });
    assert.equal(response.status, 400);
    assert.match(((await response.json()) as { error: string }).error, /127\.0\.0\.1/);
  });

  test('accepted ranges are a setting', async () => {
    const server = await start({ AUTO_IP_ALLOWED_RANGES: '127.0.0.0/8,fd00::/8' });
    const response = await register(server.url, 'auto', { ip: undefined, auto_ip: 'yes' });
    assert.equal(response.status, 200);
    assert.deepEqual(
      (await listHosts(server.url, 'auto')).hosts.map((host) => host.ip_address),
      ['127.0.0.1'],
    );
  });

  test('trusted proxy hops pick the client address further back in X-Forwarded-For', async () => {
    const server = await start({ TRUSTED_PROXY_HOPS: '2' });
    const response = await register(
      server.url,
      'auto',
      { ip: undefined, auto_ip: 'true' },
      { 'x-forwarded-for': '192.168.7.7, 192.168.1.1' },
    );
    assert.equal(response.status, 200);
    assert.deepEqual(
      (await listHosts(server.url, 'auto')).hosts.map((host) => host.ip_address),
      ['192.168.7.7'],
    );
  });

  test('zero trusted hops ignores X-Forwarded-For entirely', async () => {
    const server = await start({ TRUSTED_PROXY_HOPS: '0' });
    const response = await register(
      server.url,
      'auto',
      { ip: undefined, auto_ip: 'true' },
      { 'x-forwarded-for': '192.168.7.7' },
    );
    assert.equal(response.status, 400);
  });

  test('an explicit ip wins over auto_ip', async () => {
    const server = await start();
    const response = await register(
      server.url,
      'auto',
      { ip: '10.5.5.5', auto_ip: 'true' },
      { 'x-forwarded-for': '192.168.1.1' },
    );
    assert.equal(response.status, 200);
    assert.deepEqual(
      (await listHosts(server.url, 'auto')).hosts.map((host) => host.ip_address),
      ['10.5.5.5'],
    );
  });

  test('auto_ip=false with no ip is a missing ip', async () => {
    const server = await start();
    const response = await register(
      server.url,
      'auto',
      { ip: undefined, auto_ip: 'false' },
      { 'x-forwarded-for': '192.168.1.1' },
    );
    assert.equal(response.status, 400);
    assert.match(((await response.json()) as { error: string }).error, /'ip' is missing/);
  });
});
