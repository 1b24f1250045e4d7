import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { ManualClock } from '../../src/clock.js';
import { HOST_STORE_METHODS } from '../../src/hosts/host-store.js';
import { listHosts, register, startRegistry, type RunningRegistry } from '../helpers/registry.js';

function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`);
  const line = text
    .split('\n')
    .find(
      (candidate) =>
        candidate.startsWith(name) &&
        !candidate.startsWith('#') &&
        wanted.every((label) => candidate.includes(label)) &&
        (wanted.length > 0 || /^[a-z_]+ /.test(candidate)),
    );
  return line ? Number(line.split(' ').at(-1)) : Number.NaN;
}

describe('Prometheus metrics at /metrics', () => {
  let server: RunningRegistry;
  const clock = new ManualClock();
  before(async () => {
    server = await startRegistry({ env: { HOST_TTL: '10', CACHE_TYPE: 'simple' }, clock });
  });
  after(async () => server.close());

  async function scrape(): Promise<string> {
    const response = await fetch(`${server.url}/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /text\/plain/);
    return response.text();
  }

  test('requests, registrations, deletes, sweeps, cache, storage calls and live totals are counted', async () => {
    await register(server.url, 'web', { ip: '10.0.0.1' });
    await register(server.url, 'web', { ip: '10.0.0.2' });
    await register(server.url, 'web', { port: 'bad' });
    await listHosts(server.url, 'web');
    await listHosts(server.url, 'web');
    await fetch(`${server.url}/v1/registration/web/10.0.0.2`, { method: 'DELETE' });
    await fetch(`${server.url}/v1/services`);
    clock.advance(11_000);
    await listHosts(server.url, 'web');

    const text = await scrape();
    assert.equal(sample(text, 'discovery_registrations_total', { outcome: 'success' }), 2);
    assert.equal(sample(text, 'discovery_registrations_total', { outcome: 'failure' }), 1);
    assert.equal(sample(text, 'discovery_host_events_total', { event: 'deleted' }), 1);
    assert.equal(sample(text, 'discovery_host_events_total', { event: 'swept' }), 1);
    assert.ok(sample(text, 'discovery_cache_lookups_total', { result: 'hit' }) >= 1);
    assert.ok(sample(text, 'discovery_cache_lookups_total', { result: 'miss' }) >= 1);
    assert.equal(
      sample(text, 'discovery_http_request_duration_seconds_count', {
        method: 'POST',
        route: '/v1/registration/:service',
        status: '200',
      }),
      2,
    );
    assert.equal(
      sample(text, 'discovery_http_request_duration_seconds_count', {
        method: 'POST',
        route: '/v1/registration/:service',
        status: '400',
      }),
      1,
    );
    assert.ok(
      sample(text, 'discovery_http_request_duration_seconds_count', {
        method: 'GET',
        route: '/v1/registration/:service',
        status: '200',
      }) >= 3,
    );
    assert.equal(
      sample(text, 'discovery_storage_call_duration_seconds_count', { operation: 'heartbeat', outcome: 'ok' }),
      2,
    );
    assert.equal(
      sample(text, 'discovery_storage_call_duration_seconds_count', { operation: 'deleteIfCheckInIs', outcome: 'ok' }),
      1,
    );
    assert.ok(sample(text, 'discovery_storage_call_duration_seconds_count', { operation: 'listByService' }) >= 1);
    const inf = sample(text, 'discovery_http_request_duration_seconds_bucket', {
      method: 'GET',
      route: '/v1/registration/:service',
      status: '200',
      le: '+Inf',
    });
    const count = sample(text, 'discovery_http_request_duration_seconds_count', {
      method: 'GET',
      route: '/v1/registration/:service',
      status: '200',
    });
    assert.equal(inf, count, 'the +Inf bucket holds every observation');
    assert.match(text, /^# TYPE discovery_http_request_duration_seconds histogram$/m);
    assert.match(text, /^discovery_live_hosts \d+$/m);
    assert.match(text, /^discovery_live_services \d+$/m);
    assert.match(text, /^discovery_xds_streams 0$/m);
    assert.match(text, /^# HELP discovery_xds_events_total /m);
    assert.match(text, /^process_cpu_user_seconds_total/m);
  });

  test('the live totals follow what the registry holds', async () => {
    await register(server.url, 'api', { ip: '10.1.0.1' });
    await register(server.url, 'api', { ip: '10.1.0.2' });
    await register(server.url, 'db', { ip: '10.2.0.1' });
    await fetch(`${server.url}/v1/services`);
    const text = await scrape();
    assert.equal(sample(text, 'discovery_live_hosts'), 3);
    assert.equal(sample(text, 'discovery_live_services'), 2);
  });

  test('live hosts are counted by status', async () => {
    await register(server.url, 'statuses', { ip: '10.3.0.1' });
    await register(server.url, 'statuses', { ip: '10.3.0.2', status: 'DRAINING' });
    await register(server.url, 'statuses', { ip: '10.3.0.3', status: 'OUT_OF_SERVICE' });
    await fetch(`${server.url}/v1/services`);
    const before = await scrape();
    const put = await fetch(`${server.url}/v1/registration/statuses/10.3.0.1/status`, {
      method: 'PUT',
      body: new URLSearchParams({ status: 'DRAINING' }),
    });
    assert.equal(put.status, 204);
    await fetch(`${server.url}/v1/services`);
    const after = await scrape();
    const count = (text: string, status: string) => sample(text, 'discovery_live_hosts_by_status', { status });
    assert.equal(count(after, 'DRAINING') - count(before, 'DRAINING'), 1);
    assert.equal(count(after, 'UP') - count(before, 'UP'), -1);
    assert.ok(count(after, 'OUT_OF_SERVICE') >= 1);
    assert.equal(
      count(after, 'UP') + count(after, 'DRAINING') + count(after, 'OUT_OF_SERVICE'),
      sample(after, 'discovery_live_hosts'),
    );
  });

  test('an unmatched URL is one route label, not one per URL', async () => {
    for (let index = 0; index < 5; index++) await fetch(`${server.url}/nope/${index}`);
    const text = await scrape();
    assert.equal(
      sample(text, 'discovery_http_request_duration_seconds_count', { route: 'unmatched', status: '404' }),
      5,
    );
    assert.doesNotMatch(text, /nope\/3/);
  });
});

/** What `promtool check metrics` says of an exposition: its exit code and everything it printed. */
async function promtoolCheck(exposition: string): Promise<{ code: number | null; output: string }> {
  const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  child.stdin.end(exposition);
  return { code: await exited, output };
}

describe('/metrics as Prometheus tooling reads it', () => {
  let server: RunningRegistry;
  let atStart: string;
  const clock = new ManualClock();
  before(async () => {
    server = await startRegistry({ env: { HOST_TTL: '10', CACHE_TYPE: 'simple' }, clock });
    // The very first request: nothing has happened yet.
    atStart = await (await fetch(`${server.url}/metrics`)).text();
  });
  after(async () => server.close());

  test('promtool check metrics passes right after start, with no complaint', async () => {
    const { code, output } = await promtoolCheck(atStart);
    assert.equal(output, '');
    assert.equal(code, 0);
  });

  test('promtool check metrics passes after traffic of every kind, with no complaint', async () => {
    await register(server.url, 'web', { ip: '10.0.0.1' });
    await register(server.url, 'web', { port: 'bad' });
    await register(server.url, 'web', { ip: '10.0.0.2', status: 'DRAINING' });
    await listHosts(server.url, 'web');
    await fetch(`${server.url}/v1/registration/web/10.0.0.1`, { method: 'DELETE' });
    await fetch(`${server.url}/v1/services?limit=0`);
    await fetch(`${server.url}/nope`);
    await fetch(`${server.url}/v3/discovery:endpoints`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ resource_names: ['web'] }),
    });
    clock.advance(11_000);
    await listHosts(server.url, 'web');
    const { code, output } = await promtoolCheck(await (await fetch(`${server.url}/metrics`)).text());
    assert.equal(output, '');
    assert.equal(code, 0);
  });

  test('the standard process and Node.js metrics keep their standard names', () => {
    for (const name of [
      'process_cpu_user_seconds_total',
      'process_resident_memory_bytes',
      'process_start_time_seconds',
      'nodejs_eventloop_lag_seconds',
      'nodejs_heap_size_used_bytes',
      'nodejs_active_handles',
    ])
      assert.match(atStart, new RegExp(`^# TYPE ${name} `, 'm'), name);
    assert.doesNotMatch(atStart, /^discovery_(process|nodejs)_/m);
    // Gauges named _total, which promtool rejects; their unsuffixed twins hold the same counts.
    assert.doesNotMatch(atStart, /^nodejs_active_\w+_total/m);
  });

  test('discovery_build_info names this build and runtime', () => {
    const { version } = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    assert.match(atStart, /^# TYPE discovery_build_info gauge$/m);
    assert.equal(sample(atStart, 'discovery_build_info', { version, nodejs_version: process.version }), 1);
  });

  test('every labelled series with a known set of values is there at 0 before its first event', () => {
    for (const outcome of ['success', 'failure'])
      assert.equal(sample(atStart, 'discovery_registrations_total', { outcome }), 0, outcome);
    for (const event of ['swept', 'deleted', 'protected'])
      assert.equal(sample(atStart, 'discovery_host_events_total', { event }), 0, event);
    for (const result of ['hit', 'miss'])
      assert.equal(sample(atStart, 'discovery_cache_lookups_total', { result }), 0, result);
    for (const event of ['push', 'nack'])
      assert.equal(sample(atStart, 'discovery_xds_events_total', { event }), 0, event);
    for (const operation of HOST_STORE_METHODS)
      for (const outcome of ['ok', 'error'])
        assert.equal(
          sample(atStart, 'discovery_storage_call_duration_seconds_count', { operation, outcome }),
          0,
          `${operation} ${outcome}`,
        );
    // Each described route with each status it documents.
    const documented: Array<[string, string, string]> = [
      ['POST', '/v1/registration/:service', '200'],
      ['POST', '/v1/registration/:service', '400'],
      ['POST', '/v1/registration/:service', '503'],
      ['GET', '/v1/registration/:service', '200'],
      ['GET', '/v1/registration/:service', '304'],
      ['DELETE', '/v1/registration/:service/:ip_address', '200'],
      ['POST', '/v1/loadbalancing/:service', '204'],
      ['GET', '/v1/services', '200'],
      ['GET', '/healthcheck', '200'],
    ];
    for (const [method, route, status] of documented)
      assert.equal(
        sample(atStart, 'discovery_http_request_duration_seconds_count', { method, route, status }),
        0,
        `${method} ${route} ${status}`,
      );
    // Apart from the first scrape itself, which is counted once it is answered.
    assert.doesNotMatch(atStart, /^discovery_http_request_duration_seconds_count\{[^}]*\} [1-9]/m);
  });

  test('the 401 and 403 series are made where a credential is enforced, and only there', async () => {
    const locked = await startRegistry({
      env: { AUTH_READ_TOKENS: 'read-token-0123456789', AUTH_ADMIN_TOKENS: 'admin-token-0123456789' },
    });
    try {
      const text = await (
        await fetch(`${locked.url}/metrics`, { headers: { authorization: 'Bearer read-token-0123456789' } })
      ).text();
      const count = (method: string, route: string, status: string) =>
        sample(text, 'discovery_http_request_duration_seconds_count', { method, route, status });
      assert.equal(count('DELETE', '/v1/registration/:service/:ip_address', '401'), 0);
      assert.equal(count('DELETE', '/v1/registration/:service/:ip_address', '403'), 0);
      assert.equal(count('GET', '/v1/services', '401'), 0);
      // No credential weaker than read exists, so a read route never answers 403.
      assert.ok(Number.isNaN(count('GET', '/v1/services', '403')));
      assert.ok(Number.isNaN(count('GET', '/healthcheck', '401')));
    } finally {
      await locked.close();
    }
  });
});
