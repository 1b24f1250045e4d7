import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { PACKAGE_VERSION } from '../../src/version.js';
import { exitCode, spawnAgent, waitForLog, type AgentProcess } from '../helpers/agent-process.js';
import { startDiscovery, type DiscoveryProcess } from '../helpers/discovery-process.js';
import { waitFor } from '../helpers/registry.js';

const TAG_ARGS = ['--tag', 'az=us-east-1a', '--tag', 'region=us-east-1', '--tag', 'instance_id=i-0a1b2c'];

function agentArgs(url: string, extra: readonly string[] = []): string[] {
  return [
    '--url',
    url,
    '--service',
    'web',
    '--ip',
    '10.1.2.3',
    '--port',
    '8000',
    '--revision',
    'r1',
    ...TAG_ARGS,
    ...extra,
  ];
}

/** Every host of `web` with its status, as `?status=all` lists them. */
async function statuses(url: string): Promise<Array<[string, string]>> {
  const response = await fetch(`${url}/v1/registration/web?status=all`);
  assert.equal(response.status, 200);
  const body = (await response.json()) as { hosts: Array<{ ip_address: string; status: string }> };
  return body.hosts.map((host) => [host.ip_address, host.status]);
}

/** What the plain read lists: UP hosts only. */
async function plainIps(url: string): Promise<string[]> {
  const body = (await (await fetch(`${url}/v1/registration/web`)).json()) as { hosts: Array<{ ip_address: string }> };
  return body.hosts.map((host) => host.ip_address);
}

/** An app's health endpoint whose answer the test sets: 200 while `healthy`, else 503. */
async function startApp(): Promise<{ url: string; healthy: boolean; checks: number; close(): Promise<void> }> {
  const app = {
    url: '',
    healthy: true,
    checks: 0,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  const server: Server = createServer((request, response) => {
    app.checks++;
    response.writeHead(app.healthy ? 200 : 503, { 'content-type': 'text/plain' }).end(app.healthy ? 'ok' : 'down');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  app.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/healthz`;
  return app;
}

describe('discovery-agent checks its app and drains (real processes)', () => {
  const processes: Array<DiscoveryProcess | AgentProcess> = [];
  const apps: Array<{ close(): Promise<void> }> = [];
  after(async () => {
    await Promise.all(processes.map((child) => child.stop('SIGKILL').catch(() => undefined)));
    await Promise.all(apps.map((app) => app.close()));
  });
  function agent(args: readonly string[], env: Record<string, string> = {}) {
    const child = spawnAgent(args, env);
    processes.push(child);
    return child;
  }
  async function discovery(env: Record<string, string> = {}) {
    const child = await startDiscovery({ BACKEND_STORAGE: 'InMemory', ...env });
    processes.push(child);
    return child;
  }

  test('on SIGTERM it heartbeats DRAINING, is gone after about --drain-seconds, and exits 0', async () => {
    const drainSeconds = 2;
    const server = await discovery();
    const child = agent(agentArgs(server.url, ['--interval', '0.5', '--drain-seconds', String(drainSeconds)]));
    await waitFor('the host to be UP', async () => ((await plainIps(server.url)).length === 1 ? true : undefined));

    const signalledAt = Date.now();
    child.child.kill('SIGTERM');
    await waitFor(
      'the host to be DRAINING',
      async () => ((await statuses(server.url))[0]?.[1] === 'DRAINING' ? true : undefined),
      3_000,
    );
    const drainingSeenAfter = Date.now() - signalledAt;
    assert.deepEqual(await plainIps(server.url), [], 'a draining host is not in the plain list');
    await waitFor(
      'the host to be deregistered',
      async () => ((await statuses(server.url)).length === 0 ? true : undefined),
      drainSeconds * 1000 + 5_000,
    );
    const goneAfter = Date.now() - signalledAt;
    assert.ok(drainingSeenAfter < 1_500, `DRAINING seen ${drainingSeenAfter} ms after SIGTERM`);
    assert.ok(goneAfter >= drainSeconds * 1000 - 100, `deregistered after ${goneAfter} ms, before the drain ended`);
    assert.ok(goneAfter < drainSeconds * 1000 + 3_000, `deregistered only after ${goneAfter} ms`);
    assert.equal(await exitCode(child), 0);
    const messages = child.logLines().map((line) => line.msg);
    assert.ok(messages.includes('draining') && messages.includes('deregistered'), messages.join(' | '));
    await server.stop();
  });

  test('with INSTANCE_KEY=ip_port, an agent that stops removes its own instance, not its neighbours on the node', async () => {
    const server = await discovery({ INSTANCE_KEY: 'ip_port' });
    const first = agent(agentArgs(server.url, ['--interval', '0.5']));
    // The same node (10.1.2.3), another port.
    const second = agent(agentArgs(server.url, ['--interval', '0.5']).map((arg) => (arg === '8000' ? '8001' : arg)));
    const ports = async () => {
      const body = (await (await fetch(`${server.url}/v1/registration/web`)).json()) as {
        hosts: Array<{ port: number }>;
      };
      return body.hosts.map((host) => host.port).sort();
    };
    await waitFor('both instances to be UP', async () => ((await ports()).length === 2 ? true : undefined));
    first.child.kill('SIGTERM');
    assert.equal(await exitCode(first), 0);
    assert.deepEqual(await ports(), [8001], 'the other instance at 10.1.2.3 is still served');
    second.child.kill('SIGTERM');
    assert.equal(await exitCode(second), 0);
    assert.deepEqual(await ports(), []);
    await server.stop();
  });

  test('a failing check heartbeats OUT_OF_SERVICE after --check-failures, and a passing one brings it back UP', async () => {
    const server = await discovery();
    const app = await startApp();
    apps.push(app);
    // A long heartbeat interval: the status changes must be sent at once, not at the next heartbeat.
    const child = agent(
      agentArgs(server.url, [
        '--interval',
        '30',
        '--check-url',
        app.url,
        '--check-interval',
        '0.2',
        '--check-timeout',
        '0.2',
        '--check-failures',
        '3',
      ]),
    );
    await waitFor('the host to be UP', async () => ((await plainIps(server.url)).length === 1 ? true : undefined));
    assert.deepEqual(await statuses(server.url), [['10.1.2.3', 'UP']]);

    const checksBefore = app.checks;
    app.healthy = false;
    await waitFor(
      'the host to be OUT_OF_SERVICE',
      async () => ((await statuses(server.url))[0]?.[1] === 'OUT_OF_SERVICE' ? true : undefined),
      5_000,
    );
    assert.ok(app.checks - checksBefore >= 3, `down after ${app.checks - checksBefore} failed checks, not 3`);
    assert.deepEqual(await plainIps(server.url), []);

    app.healthy = true;
    await waitFor(
      'the host to be UP again',
      async () => ((await plainIps(server.url)).length === 1 ? true : undefined),
      5_000,
    );
    assert.deepEqual(await statuses(server.url), [['10.1.2.3', 'UP']]);
    await waitForLog(child, /^health check passed: heartbeating UP$/);

    assert.equal(await child.stop('SIGTERM'), 0);
    assert.deepEqual(await statuses(server.url), []);
    await server.stop();
  });

  test('an app that fails its first check is registered OUT_OF_SERVICE, never served', async () => {
    const server = await discovery();
    const app = await startApp();
    apps.push(app);
    app.healthy = false;
    const child = agent(
      agentArgs(server.url, [
        '--interval',
        '30',
        '--check-url',
        app.url,
        '--check-interval',
        '0.2',
        '--check-timeout',
        '0.2',
      ]),
    );
    await waitFor('the host to be registered', async () =>
      (await statuses(server.url)).length === 1 ? true : undefined,
    );
    assert.deepEqual(await statuses(server.url), [['10.1.2.3', 'OUT_OF_SERVICE']]);
    assert.deepEqual(await plainIps(server.url), []);
    assert.equal(await child.stop('SIGTERM'), 0);
    await server.stop();
  });

  test('with credentials required it sends the token from DISCOVERY_TOKEN and never prints it', async () => {
    const token = 'admin-token-0123456789abcdef';
    const server = await discovery({ AUTH_ADMIN_TOKENS: token });
    const refused = agent(agentArgs(server.url));
    assert.equal(await exitCode(refused), 1, 'without a token discovery refuses the heartbeat');
    assert.match(refused.stderr(), /\(401\)/);

    const child = agent(agentArgs(server.url, ['--interval', '0.3']), { DISCOVERY_TOKEN: token });
    await waitFor('the host to be UP', async () => ((await plainIps(server.url)).length === 1 ? true : undefined));
    assert.equal(await child.stop('SIGTERM'), 0);
    assert.deepEqual(await plainIps(server.url), [], 'deregistered with the admin token');
    assert.doesNotMatch(child.stderr(), new RegExp(token));

    const flagged = agent(agentArgs(server.url, ['--interval', '0.3', '--token', token]));
    await waitForLog(flagged, /^registered$/);
    assert.equal(await flagged.stop('SIGTERM'), 0);
    assert.doesNotMatch(flagged.stderr(), new RegExp(token));
    assert.match(flagged.stderr(), /prefer DISCOVERY_TOKEN/);
    await server.stop();
  });

  test('--version prints the version; an invalid check URL or option exits 2 at once', async () => {
    const version = spawnAgent(['--version']);
    let stdout = '';
    version.child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    assert.equal(await exitCode(version), 0);
    assert.equal(stdout, `discovery-agent ${PACKAGE_VERSION}\n`);
    for (const extra of [
      ['--check-url', 'not a url'],
      ['--check-url', 'http://127.0.0.1:1/h', '--check-failures', 'many'],
      ['--drain-seconds', 'later'],
    ]) {
      const child = agent(agentArgs('http://127.0.0.1:1', extra));
      assert.equal(await exitCode(child, 5_000), 2, extra.join(' '));
      assert.match(child.stderr(), /^discovery-agent: /);
    }
  });
});
