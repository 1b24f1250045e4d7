import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { HeartbeatAgent, type AgentLogEntry } from '../../src/agent/agent.js';
import { DiscoveryClient, DiscoveryError, type Registration } from '../../src/client/index.js';
import { FlakyHostStore, freePort } from '../helpers/network.js';
import { listHosts, startRegistry, TAGS, type RunningRegistry } from '../helpers/registry.js';

const HOST: Registration = { ip: '10.0.3.17', port: 9211, revision: '2f1c0e9', tags: TAGS };

/**
 * The agent's core with a real client and a real registry; only waiting is replaced: each
 * `sleep` is recorded and handed to `onSleep`, which may change the world or stop the run.
 */
function harness(
  baseUrl: string,
  options: {
    registration?: Registration;
    intervalMs?: number;
    initialBackoffMs?: number;
    maxBackoffMs?: number;
    random?: () => number;
  },
) {
  const sleeps: number[] = [];
  const logs: AgentLogEntry[] = [];
  const stop = new AbortController();
  let onSleep: (count: number) => Promise<void> | void = () => undefined;
  const agent = new HeartbeatAgent({
    client: new DiscoveryClient({ baseUrl, timeoutMs: 2_000 }),
    service: 'users',
    registration: options.registration ?? HOST,
    intervalMs: options.intervalMs ?? 10_000,
    initialBackoffMs: options.initialBackoffMs,
    maxBackoffMs: options.maxBackoffMs,
    random: options.random ?? (() => 0.5),
    now: () => new Date(Date.UTC(2026, 10, 28)),
    log: (entry) => logs.push(entry),
    sleep: async (ms) => {
      sleeps.push(ms);
      await onSleep(sleeps.length);
    },
  });
  return {
    agent,
    sleeps,
    logs,
    stop,
    onSleep(handler: (count: number) => Promise<void> | void) {
      onSleep = handler;
    },
  };
}

describe('HeartbeatAgent', () => {
  const servers: RunningRegistry[] = [];
  after(async () => Promise.all(servers.map((server) => server.close())));
  async function start(options: Parameters<typeof startRegistry>[0] = {}) {
    const server = await startRegistry(options);
    servers.push(server);
    return server;
  }

  test('retries an unreachable registry with jittered exponential backoff, capped, logging each failure', async () => {
    const run = harness(`http://127.0.0.1:${await freePort()}`, {
      intervalMs: 1_000,
      initialBackoffMs: 100,
      maxBackoffMs: 800,
    });
    run.onSleep((count) => {
      if (count === 6) run.stop.abort();
    });
    await run.agent.run(run.stop.signal);
    // random() = 0.5: each delay is 3/4 of a base that doubles from 100 ms up to the 800 ms cap.
    assert.deepEqual(run.sleeps, [75, 150, 300, 600, 600, 600]);
    assert.deepEqual(
      run.logs.map((entry) => [entry.level, entry.attempt, entry.kind]),
      [1, 2, 3, 4, 5, 6].map((attempt) => ['warn', attempt, 'network']),
    );
    assert.ok(run.logs.every((entry) => entry.msg === 'heartbeat failed; retrying' && entry.service === 'users'));
  });

  test('the jitter keeps every retry between half and all of its base delay', () => {
    const low = harness('http://127.0.0.1:1', {
      initialBackoffMs: 1_000,
      maxBackoffMs: 30_000,
      intervalMs: 60_000,
      random: () => 0,
    });
    const high = harness('http://127.0.0.1:1', {
      initialBackoffMs: 1_000,
      maxBackoffMs: 30_000,
      intervalMs: 60_000,
      random: () => 0.999999,
    });
    for (const [attempt, base] of [
      [1, 1_000],
      [2, 2_000],
      [5, 16_000],
      [6, 30_000],
      [40, 30_000],
    ] as const) {
      assert.equal(low.agent.backoff(attempt), base / 2);
      assert.ok(Math.abs(high.agent.backoff(attempt) - base) < 1, `attempt ${attempt}`);
    }
  });

  test('the retry cap defaults to the heartbeat interval', () => {
    const run = harness('http://127.0.0.1:1', { intervalMs: 500, random: () => 0.999999 });
    assert.ok(Math.abs(run.agent.backoff(10) - 500) < 1);
  });

  test('keeps retrying through 503s, registers when storage recovers, and starts backoff afresh after success', async () => {
    const store = new FlakyHostStore();
    const server = await start({ store });
    store.down = true;
    const run = harness(server.url, { intervalMs: 10_000, initialBackoffMs: 100, random: () => 1 - 1e-9 });
    const presentAt: Record<number, string[]> = {};
    run.onSleep(async (count) => {
      presentAt[count] = (await listHosts(server.url, 'users')).hosts.map((host) => host.ip_address);
      if (count === 2) store.down = false; // two failures, then the third attempt succeeds
      if (count === 3) store.down = true; // the next heartbeat fails again
      if (count === 4) run.stop.abort();
    });
    await run.agent.run(run.stop.signal);

    assert.deepEqual(presentAt, { 1: [], 2: [], 3: ['10.0.3.17'], 4: ['10.0.3.17'] });
    assert.deepEqual(
      run.logs.map((entry) => [entry.msg, entry.attempt ?? null, entry.status ?? null]),
      [
        ['heartbeat failed; retrying', 1, 503],
        ['heartbeat failed; retrying', 2, 503],
        ['registered', null, null],
        ['heartbeat failed; retrying', 1, 503],
        ['deregistered', null, null],
      ],
    );
    // After success the wait is the interval, at most 10% early.
    const afterSuccess = run.sleeps[2]!;
    assert.ok(afterSuccess >= 9_000 && afterSuccess <= 10_000, `waited ${afterSuccess}`);
    assert.ok(run.sleeps[3]! <= 100, 'backoff restarted from the initial delay');
    assert.deepEqual((await listHosts(server.url, 'users')).hosts, [], 'deregistered on stop');
  });

  test('stops with the DiscoveryError of a 4xx and logs the server message', async () => {
    const server = await start();
    const run = harness(server.url, { registration: { ...HOST, port: 70000 } });
    await assert.rejects(
      run.agent.run(run.stop.signal),
      (error) => error instanceof DiscoveryError && error.status === 400,
    );
    assert.equal(run.sleeps.length, 0, 'no retry of bad input');
    assert.equal(run.logs.length, 1);
    assert.equal(run.logs[0]!.level, 'error');
    assert.match(run.logs[0]!.msg, /^discovery refused the registration \(400\): .*port/);
  });

  test('a host deleted meanwhile is re-created by the next heartbeat, and its stop is still clean', async () => {
    const server = await start();
    const run = harness(server.url, {});
    run.onSleep(async (count) => {
      if (count === 1) await fetch(`${server.url}/v1/registration/users/10.0.3.17`, { method: 'DELETE' });
      if (count === 2) {
        assert.equal((await listHosts(server.url, 'users')).hosts.length, 1);
        await fetch(`${server.url}/v1/registration/users/10.0.3.17`, { method: 'DELETE' });
        run.stop.abort();
      }
    });
    await run.agent.run(run.stop.signal);
    assert.equal(run.logs.at(-1)!.msg, 'already deregistered (expired or deleted)');
  });

  test('with autoIp it finds its own address by instance_id and port, and deregisters it on stop', async () => {
    const server = await start({ env: { AUTO_IP_ALLOWED_RANGES: '127.0.0.0/8' } });
    const neighbour = new DiscoveryClient({ baseUrl: server.url });
    await neighbour.register('users', {
      ip: '10.0.0.9',
      port: 9211,
      revision: 'x',
      tags: { ...TAGS, instance_id: 'i-other' },
    });
    const run = harness(server.url, { registration: { autoIp: true, port: 9211, revision: 'r1', tags: TAGS } });
    run.onSleep(() => run.stop.abort());
    await run.agent.run(run.stop.signal);
    assert.ok(run.logs.some((entry) => entry.msg === 'auto_ip address found' && entry.ip === '127.0.0.1'));
    assert.deepEqual(
      (await listHosts(server.url, 'users')).hosts.map((host) => host.ip_address),
      ['10.0.0.9'],
    );
  });

  test('refuses a registration with neither ip nor autoIp, and a non-positive interval', () => {
    const client = new DiscoveryClient({ baseUrl: 'http://127.0.0.1:1' });
    assert.throws(
      () =>
        new HeartbeatAgent({
          client,
          service: 's',
          registration: { port: 1, revision: 'r', tags: TAGS },
          intervalMs: 1_000,
        }),
      TypeError,
    );
    assert.throws(() => new HeartbeatAgent({ client, service: 's', registration: HOST, intervalMs: 0 }), RangeError);
  });
});
