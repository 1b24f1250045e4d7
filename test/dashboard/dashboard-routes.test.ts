import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import { ManualClock } from '../../src/clock.js';
import { TYPE_URL } from '../../src/xds/protos.js';
import { RawXdsStream } from '../helpers/ads-client.js';
import { eventually } from '../helpers/browser.js';
import { register, startRegistry, TAGS, type RunningRegistry } from '../helpers/registry.js';

describe('dashboard files and settings over HTTP', () => {
  let server: RunningRegistry;
  before(async () => {
    server = await startRegistry({ env: { HOST_TTL: '45', APPLICATION_ENV: 'staging' } });
  });
  after(async () => server.close());

  test('/ui redirects to /ui/, which serves the page with a strict content security policy', async () => {
    const redirect = await fetch(`${server.url}/ui`, { redirect: 'manual' });
    assert.equal(redirect.status, 301);
    assert.equal(redirect.headers.get('location'), 'ui/');
    const page = await fetch(`${server.url}/ui/`);
    assert.equal(page.status, 200);
    assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self'/);
    assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
    assert.match(await page.text(), /<script type="module" src="app.js">/);
  });

  test('scripts and styles are served with their types and revalidate to 304', async () => {
    for (const [file, type] of [
      ['app.js', 'text/javascript; charset=utf-8'],
      ['style.css', 'text/css; charset=utf-8'],
    ]) {
      const response = await fetch(`${server.url}/ui/${file}`);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('content-type'), type);
      assert.equal(response.headers.get('cache-control'), 'no-cache');
      const etag = response.headers.get('etag') ?? '';
      assert.equal((await fetch(`${server.url}/ui/${file}`, { headers: { 'if-none-match': etag } })).status, 304);
    }
  });

  test('anything else under /ui/ is a JSON 404, and no path leaves the folder', async () => {
    for (const path of [
      '/ui/missing.js',
      '/ui/..%2fpackage.json',
      '/ui/%2e%2e%2f%2e%2e%2fpackage.json',
      '/ui/sub/app.js',
    ]) {
      const response = await fetch(`${server.url}${path}`);
      assert.equal(response.status, 404, path);
      assert.match(((await response.json()) as { error: string }).error, /^Not found/);
    }
  });

  test('GET /v1/ui/config gives what the page needs: env, HOST_TTL and whether writes need credentials', async () => {
    const response = await fetch(`${server.url}/v1/ui/config`);
    assert.deepEqual(await response.json(), { env: 'staging', host_ttl_seconds: 45, writes_protected: false });
  });

  test('with read credentials the page asks for them, so the browser reuses them for the API', async () => {
    const locked = await startRegistry({ env: { AUTH_READ_PASSWORD: 'readers-only-please' } });
    try {
      const response = await fetch(`${locked.url}/ui/`);
      assert.equal(response.status, 401);
      assert.match(response.headers.get('www-authenticate') ?? '', /Basic/);
      const authorization = `Basic ${Buffer.from('read:readers-only-please').toString('base64')}`;
      assert.equal((await fetch(`${locked.url}/ui/`, { headers: { authorization } })).status, 200);
    } finally {
      await locked.close();
    }
  });
});

describe("the dashboard's JSON: compressed, its own, and the v1 routes untouched", () => {
  let server: RunningRegistry;
  before(async () => {
    server = await startRegistry({ env: { HOST_TTL: '600' } });
    for (let index = 1; index <= 40; index++) {
      const tags = { ...TAGS, az: `az-${index % 2}`, instance_id: `i-${index}` };
      assert.equal((await register(server.url, 'web', { ip: `10.0.0.${index}`, tags })).status, 200);
    }
  });
  after(async () => server.close());

  /** A raw GET (node:http, which does not decode), so the bytes on the wire can be looked at. */
  function rawGet(path: string, headers: Record<string, string> = {}) {
    return new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }>(
      (resolve, reject) => {
        const request = httpGet(`${server.url}${path}`, { headers }, (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () =>
            resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) }),
          );
          response.on('error', reject);
        });
        request.on('error', reject);
      },
    );
  }

  test('the host list is every live host with its check-in in epoch ms, and 304 while nothing changed', async () => {
    const response = await rawGet('/v1/ui/services/web/hosts');
    assert.equal(response.status, 200);
    const body = JSON.parse(response.body.toString()) as {
      service: string;
      now: number;
      hosts: Array<{ ip_address: string; port: number; v: string; check_in_ms: number; tags: Record<string, unknown> }>;
    };
    assert.equal(body.service, 'web');
    assert.equal(body.hosts.length, 40);
    const first = body.hosts[0];
    assert.equal(first?.ip_address, '10.0.0.1');
    assert.equal(first?.port, 9211);
    assert.deepEqual(first?.tags, { az: 'az-1', instance_id: 'i-1', region: 'us-east-1' });
    assert.ok(Math.abs(body.now - (first?.check_in_ms ?? 0)) < 60_000);
    const etag = String(response.headers.etag);
    assert.equal((await rawGet('/v1/ui/services/web/hosts', { 'if-none-match': etag })).status, 304);

    // A heartbeat that changes only the check-in keeps the host's v; one that changes a tag moves it.
    assert.equal(
      (await register(server.url, 'web', { ip: '10.0.0.1', tags: { ...TAGS, az: 'az-1', instance_id: 'i-1' } })).status,
      200,
    );
    const again = await rawGet('/v1/ui/services/web/hosts', { 'if-none-match': etag });
    assert.equal(again.status, 200, 'a new check-in is a new list');
    const same = (JSON.parse(again.body.toString()) as typeof body).hosts[0];
    assert.equal(same?.v, first?.v);
    assert.ok((same?.check_in_ms ?? 0) >= (first?.check_in_ms ?? 0));
    assert.equal(
      (
        await register(server.url, 'web', {
          ip: '10.0.0.1',
          tags: { ...TAGS, az: 'az-1', instance_id: 'i-1', team: 'x' },
        })
      ).status,
      200,
    );
    const moved = (JSON.parse((await rawGet('/v1/ui/services/web/hosts')).body.toString()) as typeof body).hosts[0];
    assert.notEqual(moved?.v, first?.v);
  });

  test('the host list and the service list are compressed with br or gzip, as the client asks', async () => {
    // Enough services that their list is worth compressing (below 1 KiB answers go as they are).
    for (let index = 0; index < 30; index++)
      assert.equal((await register(server.url, `svc-${index}`, { ip: '10.8.0.1' })).status, 200);
    assert.equal((await rawGet('/v1/ui/config', { 'accept-encoding': 'gzip' })).headers['content-encoding'], undefined);
    for (const path of ['/v1/ui/services/web/hosts', '/v1/ui/services?limit=10000']) {
      const plain = await rawGet(path);
      assert.equal(plain.headers['content-encoding'], undefined, `${path} without accept-encoding`);
      const gzip = await rawGet(path, { 'accept-encoding': 'gzip' });
      assert.equal(gzip.headers['content-encoding'], 'gzip', path);
      const br = await rawGet(path, { 'accept-encoding': 'gzip, deflate, br' });
      assert.equal(br.headers['content-encoding'], 'br', path);
      // The same JSON either way, apart from "now", which moves between two requests.
      const unstamped = (bytes: Buffer) => bytes.toString().replace(/"now":\d+/, '');
      assert.equal(unstamped(gunzipSync(gzip.body)), unstamped(plain.body), path);
      assert.equal(unstamped(brotliDecompressSync(br.body)), unstamped(plain.body), path);
    }
    const hosts = await rawGet('/v1/ui/services/web/hosts', { 'accept-encoding': 'br' });
    const plainHosts = await rawGet('/v1/ui/services/web/hosts');
    assert.ok(
      hosts.body.length * 4 < plainHosts.body.length,
      `${hosts.body.length} of ${plainHosts.body.length} bytes`,
    );
  });

  test('the v1 routes, fast paths included, are never compressed: the plugin is scoped to the dashboard', async () => {
    const accept = { 'accept-encoding': 'gzip, deflate, br' };
    for (const path of [
      '/v1/registration/web',
      '/v1/services?limit=10000',
      '/healthcheck',
      '/v1/registration/repo/users-repo',
    ]) {
      const response = await rawGet(path, accept);
      assert.equal(response.status, 200, path);
      assert.equal(response.headers['content-encoding'], undefined, path);
    }
    const heartbeat = await register(server.url, 'web', { ip: '10.0.0.1' }, accept);
    assert.equal(heartbeat.status, 200);
    assert.equal(heartbeat.headers.get('content-encoding'), null);
  });

  test('bad input to the dashboard JSON is a 400 naming the field', async () => {
    for (const [path, field] of [
      ['/v1/ui/services?limit=0', 'limit'],
      ['/v1/ui/services?limit=lots', 'limit'],
      [`/v1/ui/services?filter=${'x'.repeat(300)}`, 'filter'],
      [`/v1/ui/services/${'s'.repeat(300)}/hosts`, 'service'],
    ] as const) {
      const response = await fetch(`${server.url}${path}`);
      assert.equal(response.status, 400, path);
      assert.match(((await response.json()) as { error: string }).error, new RegExp(`'${field}'`), path);
    }
  });

  test('the service list filters and counts like /v1/services', async () => {
    assert.equal((await register(server.url, 'payments', { ip: '10.9.0.1' })).status, 200);
    const response = await fetch(`${server.url}/v1/ui/services?filter=PAY`);
    assert.deepEqual(await response.json(), {
      services: [
        {
          service: 'payments',
          hosts: 1,
          revisions: 1,
          service_repo_names: ['users-repo'],
          statuses: { DRAINING: 0, OUT_OF_SERVICE: 0, UP: 1 },
        },
      ],
      total: 1,
      more: false,
    });
    const etag = response.headers.get('etag') ?? '';
    assert.equal(
      (await fetch(`${server.url}/v1/ui/services?filter=PAY`, { headers: { 'if-none-match': etag } })).status,
      304,
    );
    const limited = (await (await fetch(`${server.url}/v1/ui/services?limit=1`)).json()) as {
      total: number;
      more: boolean;
    };
    const all = (await (await fetch(`${server.url}/v1/services`)).json()) as { total: number };
    assert.deepEqual({ total: limited.total, more: limited.more }, { total: all.total, more: true });
  });
});

describe('the server panel', () => {
  test('version, uptime, heartbeats in the last minute, expiry protection and xDS clients, from the composed registry', async () => {
    const clock = new ManualClock(Date.UTC(2026, 11, 1, 12, 0, 0));
    const server = await startRegistry({
      clock,
      env: {
        HOST_TTL: '10',
        EXPIRY_PROTECTION: 'true',
        EXPIRY_PROTECTION_THRESHOLD: '0.5',
        EXPIRY_PROTECTION_MIN_HOSTS: '3',
        EXPIRY_PROTECTION_MAX_SECONDS: '120',
        XDS_ENABLED: 'false',
      },
    });
    try {
      const panel = async () =>
        (await (await fetch(`${server.url}/v1/ui/server`)).json()) as {
          version: string;
          uptime_seconds: number;
          started_at: string;
          heartbeats_last_minute: number;
          services: number;
          hosts: number;
          expiry_protection: { protected_services: string[] };
          xds: unknown;
        };
      for (const ip of ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4'])
        assert.equal((await register(server.url, 'web', { ip })).status, 200);
      clock.advance(5_000);
      let seen = await panel();
      assert.equal(seen.version, JSON.parse(readFileSync('package.json', 'utf8')).version);
      assert.equal(seen.uptime_seconds, 5);
      assert.equal(seen.started_at, '2026-12-01T12:00:00.000Z');
      assert.equal(seen.heartbeats_last_minute, 4);
      assert.equal(seen.services, 1);
      assert.equal(seen.hosts, 4);
      assert.deepEqual(seen.expiry_protection, {
        enabled: true,
        threshold: 0.5,
        min_hosts: 3,
        max_seconds: 120,
        protected_services: [],
      });
      assert.deepEqual(seen.xds, { enabled: false, clients: [] });

      // One host keeps heartbeating, three stop: protection holds the service.
      assert.equal((await register(server.url, 'web', { ip: '10.0.0.4' })).status, 200);
      clock.advance(6_000);
      await fetch(`${server.url}/v1/registration/web`);
      seen = await panel();
      assert.deepEqual(seen.expiry_protection.protected_services, ['web']);
      assert.equal(seen.heartbeats_last_minute, 5);
      clock.advance(60_000);
      seen = await panel();
      assert.equal(seen.heartbeats_last_minute, 0);
    } finally {
      await server.close();
    }
  });

  test('lists connected xDS clients by node, cluster and state', async () => {
    const server = await startRegistry({ env: { XDS_PORT: '0', XDS_LISTEN_ADDRESS: '127.0.0.1' } });
    const port = await server.registry.startXds();
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const stream = new RawXdsStream(client);
    try {
      stream.send({
        node: { id: 'envoy-1', cluster: 'edge' },
        type_url: TYPE_URL.clusterLoadAssignment,
        resource_names: ['web', 'users'],
      });
      const response = await stream.next();
      let seen = (await (await fetch(`${server.url}/v1/ui/server`)).json()) as {
        xds: { enabled: boolean; clients: Array<Record<string, unknown>> };
      };
      assert.equal(seen.xds.enabled, true);
      assert.equal(seen.xds.clients.length, 1);
      assert.deepEqual(
        { ...seen.xds.clients[0], stream_id: undefined, peer: undefined, connected_at: undefined },
        {
          stream_id: undefined,
          peer: undefined,
          connected_at: undefined,
          kind: 'ads',
          node_id: 'envoy-1',
          cluster: 'edge',
          user_agent: '',
          resources: 2,
          up_to_date: false,
          nack_count: 0,
        },
      );
      stream.ack(response, ['web', 'users']);
      await eventually(async () => {
        seen = (await (await fetch(`${server.url}/v1/ui/server`)).json()) as typeof seen;
        assert.equal(seen.xds.clients[0]?.up_to_date, true);
      });
    } finally {
      stream.close();
      client.close();
      await server.close();
    }
  });
});
