import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ManualClock } from '../../src/clock.js';
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
    assert.match(text, /^discovery_process_cpu_user_seconds_total/m);
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
