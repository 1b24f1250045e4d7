import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { AGENT_CLI, exitCode, spawnAgent, waitForLog, type AgentProcess } from '../helpers/agent-process.js';
import { freePort } from '../helpers/network.js';
import { startDiscovery, type DiscoveryProcess } from '../helpers/discovery-process.js';
import { listHosts, waitFor } from '../helpers/registry.js';

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
    '--repo',
    'web-repo',
    ...TAG_ARGS,
    ...extra,
  ];
}

/** The one host of `web`, once it is there. */
function hostAppears(url: string, timeoutMs = 10_000) {
  return waitFor(
    `host of web at ${url}`,
    async () => (await listHosts(url, 'web').catch(() => ({ hosts: [] }))).hosts[0],
    timeoutMs,
  );
}

describe('discovery-agent as a process', () => {
  const processes: Array<DiscoveryProcess | AgentProcess> = [];
  after(async () => {
    // Whatever a failed test left running; SIGKILL, as a clean stop is not what is being tested here.
    await Promise.all(processes.map((child) => child.stop('SIGKILL').catch(() => undefined)));
  });
  function agent(args: readonly string[]) {
    const child = spawnAgent(args);
    processes.push(child);
    return child;
  }
  async function discovery(env: Record<string, string> = {}) {
    const child = await startDiscovery({ BACKEND_STORAGE: 'InMemory', ...env });
    processes.push(child);
    return child;
  }

  test('registers the host, keeps heartbeating, and on SIGTERM deregisters and exits 0', async () => {
    const server = await discovery();
    const child = agent(agentArgs(server.url, ['--interval', '0.2']));
    const first = await hostAppears(server.url);
    assert.equal(first.port, 8000);
    assert.equal(first.revision, 'r1');
    assert.equal(first.service_repo_name, 'web-repo');
    assert.deepEqual(first.tags, { az: 'us-east-1a', region: 'us-east-1', instance_id: 'i-0a1b2c' });
    // A later heartbeat moves last_check_in forward.
    await waitFor('last_check_in to advance', async () => {
      const host = (await listHosts(server.url, 'web')).hosts[0];
      return host && String(host.last_check_in) > String(first.last_check_in) ? host : undefined;
    });

    const started = Date.now();
    assert.equal(await child.stop('SIGTERM'), 0);
    assert.ok(Date.now() - started < 5_000, 'stopped promptly');
    assert.deepEqual((await listHosts(server.url, 'web')).hosts, []);
    assert.ok(child.logLines().some((line) => line.msg === 'deregistered'));
    await server.stop();
  });

  test('SIGINT deregisters too', async () => {
    const server = await discovery();
    const child = agent(agentArgs(server.url, ['--interval', '5']));
    await hostAppears(server.url);
    assert.equal(await child.stop('SIGINT'), 0);
    assert.deepEqual((await listHosts(server.url, 'web')).hosts, []);
    await server.stop();
  });

  test('retries with backoff while discovery is down, registers once it is up, and re-registers after a restart', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    // interval 0.5 s caps every retry delay at 0.5 s, so the test waits little.
    const child = agent(agentArgs(url, ['--interval', '0.5', '--timeout', '0.4']));
    const failures = await waitForLog(child, /^heartbeat failed; retrying$/, 2);
    assert.deepEqual(
      failures.slice(0, 2).map((line) => [line.attempt, line.kind, line.level]),
      [
        [1, 'network', 'warn'],
        [2, 'network', 'warn'],
      ],
    );
    assert.equal(child.child.exitCode, null, 'still running');

    let server = await discovery({ PORT: String(port) });
    await hostAppears(url);
    await waitForLog(child, /^registered$/);

    // Discovery goes away (InMemory: its hosts with it) and comes back on the same port.
    assert.equal(await server.stop(), 0);
    const failedBefore = child.logLines().filter((line) => line.msg === 'heartbeat failed; retrying').length;
    await waitForLog(child, /^heartbeat failed; retrying$/, failedBefore + 1);
    server = await discovery({ PORT: String(port) });
    await hostAppears(url);
    await waitForLog(child, /^heartbeat recovered$/);

    assert.equal(await child.stop('SIGTERM'), 0);
    assert.deepEqual((await listHosts(url, 'web')).hosts, []);
    await server.stop();
  });

  test('SIGTERM before it ever registered exits 0 at once, with nothing to deregister', async () => {
    const child = agent(agentArgs(`http://127.0.0.1:${await freePort()}`, ['--interval', '30']));
    await waitForLog(child, /^heartbeat failed; retrying$/);
    const started = Date.now();
    assert.equal(await child.stop('SIGTERM'), 0);
    assert.ok(Date.now() - started < 2_000, `took ${Date.now() - started} ms`);
  });

  test('a 4xx from discovery (port out of range) exits 1 with the server message', async () => {
    const server = await discovery();
    const child = agent(agentArgs(server.url).map((arg) => (arg === '8000' ? '70000' : arg)));
    assert.equal(await exitCode(child), 1);
    const [line] = child.logLines().filter((entry) => entry.level === 'error');
    assert.ok(line, child.stderr());
    assert.equal(line.status, 400);
    assert.match(String(line.msg), /^discovery refused the registration \(400\): .*'port'/);
    assert.deepEqual((await listHosts(server.url, 'web')).hosts, []);
    await server.stop();
  });

  test('a missing required tag is refused by discovery and named', async () => {
    const server = await discovery();
    const child = agent([
      '--url',
      server.url,
      '--service',
      'web',
      '--ip',
      '10.1.2.3',
      '--port',
      '8000',
      '--revision',
      'r1',
      '--tag',
      'az=a',
      '--tag',
      'region=r',
    ]);
    assert.equal(await exitCode(child), 1);
    assert.match(child.stderr(), /instance_id/);
    await server.stop();
  });

  test('a bad command line exits 2 with a plain message and registers nothing', async () => {
    const noUrl = agent(['--service', 'web']);
    assert.equal(await exitCode(noUrl), 2);
    assert.match(noUrl.stderr(), /^discovery-agent: --url \(or DISCOVERY_URL\) is required\n/);

    const slow = agent(agentArgs('http://127.0.0.1:1', ['--interval', '700', '--host-ttl', '600']));
    assert.equal(await exitCode(slow), 2);
    assert.match(slow.stderr(), /--interval 700 must be below --host-ttl 600/);
  });

  test('package.json ships it as the discovery-agent command: a shebang, and executable so npx runs it in a checkout', async () => {
    const root = path.resolve(path.dirname(AGENT_CLI), '../../..');
    const pkg = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    assert.equal(path.resolve(root, pkg.bin['discovery-agent']!), AGENT_CLI);
    assert.match(await readFile(AGENT_CLI, 'utf8'), /^#!\/usr\/bin\/env node\n/);
    assert.notEqual((await stat(AGENT_CLI)).mode & 0o111, 0);
  });
});
