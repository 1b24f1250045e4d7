import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { ManualClock } from '../../src/clock.js';
import { composeRegistry } from '../../src/compose.js';
import { loadConfig } from '../../src/config.js';
import { pino } from 'pino';
import { Metrics } from '../../src/metrics.js';
import { fanOut, StatsdStats } from '../../src/stats.js';
import { register, waitFor } from '../helpers/registry.js';

describe('statsd counters over UDP', () => {
  const socket = createSocket('udp4');
  const received: string[] = [];
  let url: string;
  let close: () => Promise<void>;
  const clock = new ManualClock();

  before(async () => {
    socket.on('message', (message) => received.push(...message.toString().split('\n').filter(Boolean)));
    socket.bind(0, '127.0.0.1');
    await once(socket, 'listening');
    const config = loadConfig({
      BACKEND_STORAGE: 'InMemory',
      HOST_TTL: '10',
      STATSD_HOST: '127.0.0.1',
      STATSD_PORT: String(socket.address().port),
    });
    const registry = await composeRegistry(config, pino({ level: 'silent' }), { clock });
    await registry.app.listen({ port: 0, host: '127.0.0.1' });
    const address = registry.app.server.address();
    url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    close = () => registry.close();
  });
  after(async () => {
    await close();
    socket.close();
  });

  const untilReceived = (metric: string) =>
    waitFor(
      () => `statsd to receive ${metric}; got ${received.join(' ')}`,
      () => received.includes(metric),
      5000,
      20,
    );

  test('registration success and failure, delete and sweep are counted', async () => {
    assert.equal((await register(url, 'users', { ip: '10.0.0.1' })).status, 200);
    await untilReceived('registration.users.success:1|c');
    assert.equal((await register(url, 'users', { port: 'nope' })).status, 400);
    await untilReceived('registration.users.failure:1|c');
    assert.equal((await fetch(`${url}/v1/registration/users/10.0.0.1`, { method: 'DELETE' })).status, 200);
    await untilReceived('service.host.delete.users:1|c');
    await register(url, 'users', { ip: '10.0.0.2' });
    clock.advance(11_000);
    await fetch(`${url}/v1/registration/users`);
    await untilReceived('service.host.sweep.users:1|c');
  });

  test('a burst of heartbeats is summed, none lost', async () => {
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, index) => register(url, 'burst', { ip: `10.0.1.${index}` })),
    );
    assert.deepEqual(new Set(answers.map((answer) => answer.status)), new Set([200]));
    const sum = () =>
      received
        .filter((line) => line.startsWith('registration.burst.success:'))
        .reduce((total, line) => total + Number(line.split(':')[1]?.split('|')[0]), 0);
    await waitFor(
      () => `all 40 heartbeats counted; got ${sum()}`,
      () => sum() >= 40,
      5000,
      20,
    );
    assert.equal(sum(), 40);
    // Summed, not one message per heartbeat.
    assert.ok(received.filter((line) => line.startsWith('registration.burst.success:')).length < 40);
  });
});

describe('typed events: one call, statsd names on the wire, Prometheus from the same events', () => {
  test('each event goes out under the original name (or none), and Prometheus tallies the same calls', async () => {
    const socket = createSocket('udp4');
    const received: string[] = [];
    socket.on('message', (message) => received.push(...message.toString().split('\n').filter(Boolean)));
    socket.bind(0, '127.0.0.1');
    await once(socket, 'listening');
    const statsd = new StatsdStats({
      host: '127.0.0.1',
      port: socket.address().port,
      prefix: '',
      log: pino({ level: 'silent' }),
    });
    const metrics = new Metrics();
    const stats = fanOut(statsd, metrics);
    try {
      stats.heartbeat('users', 'success');
      stats.heartbeat('users', 'success');
      stats.heartbeat('my svc:1', 'failure');
      stats.hostRemoved('users', 'expired');
      stats.hostRemoved('users', 'deleted');
      stats.expiryProtected('web');
      stats.cacheLookup('hit');
      stats.xds('push');
      stats.xds('nack');
      await statsd.close();
      await waitFor(
        () => `six statsd lines; got ${received.join(' ')}`,
        () => received.length >= 6,
        5000,
        20,
      );
      assert.deepEqual([...received].sort(), [
        'registration.my_svc_1.failure:1|c',
        'registration.users.success:2|c',
        'service.host.delete.users:1|c',
        'service.host.protected.web:1|c',
        'service.host.sweep.users:1|c',
        'xds.nack:1|c',
      ]);
      const text = await metrics.registry.metrics();
      for (const line of [
        'discovery_registrations_total{outcome="success"} 2',
        'discovery_registrations_total{outcome="failure"} 1',
        'discovery_host_events_total{event="swept"} 1',
        'discovery_host_events_total{event="deleted"} 1',
        'discovery_host_events_total{event="protected"} 1',
        'discovery_cache_lookups_total{result="hit"} 1',
        'discovery_xds_events_total{event="push"} 1',
        'discovery_xds_events_total{event="nack"} 1',
      ])
        assert.ok(text.includes(line), `${line} in /metrics`);
    } finally {
      socket.close();
    }
  });
});
