import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  Buildah,
  commandLine,
  containerfileBase,
  descendants,
  ensureStandInBase,
  killGroup,
  run,
  userId,
} from '../helpers/buildah.js';
import { heartbeatForm } from '../helpers/discovery-process.js';
import { freePort } from '../helpers/network.js';
import { waitFor } from '../helpers/registry.js';

/**
 * The Containerfile, built and run as an operator would: no registry is reachable here, so its
 * Node base image is a stand-in built from Debian packages (cached between runs, see
 * test/helpers/buildah.ts); the project's image is built from the working tree with
 * `buildah bud`, started with `buildah run` (chroot isolation: the host's network, so the
 * server listens on a loopback port chosen now), sent a heartbeat and a read, and stopped
 * with SIGTERM, which must end it with exit code 0 after a clean shutdown.
 *
 * Needs root, buildah and debootstrap (npm test's scripts/system-tools.mjs installs them); without them this fails, it
 * never skips. Cold (debootstrap included) it takes a few minutes; warm, the image build only.
 * That is past the 2 minutes `npm test` gives each *.test.js file, so it is named apart and run
 * after the other test files by `npm run test:container` with a bound of its own.
 */

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BUILD_BOUND_MS = 15 * 60_000;
const START_BOUND_MS = 120_000;
const STOP_BOUND_MS = 30_000;

async function preconditions(): Promise<void> {
  assert.equal(
    process.getuid?.(),
    0,
    'the container test needs root (buildah with chroot isolation, debootstrap, chroot): run it as root, as CI does',
  );
  for (const tool of ['buildah', 'debootstrap']) {
    const found = await run('sh', ['-c', `command -v ${tool}`], { timeoutMs: 10_000, allowFailure: true });
    assert.equal(
      found.code,
      0,
      `the container test needs ${tool}: apt-get install -y buildah debootstrap (npm test's first step, scripts/system-tools.mjs, installs both)`,
    );
  }
}

interface LogLine {
  level?: number;
  msg?: string;
  signal?: string;
}

function parseLines(text: string): LogLine[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogLine);
}

test(
  'the Containerfile builds an image that serves heartbeats and reads and stops cleanly on SIGTERM',
  { timeout: 25 * 60_000 },
  async (t) => {
    await preconditions();
    const started = Date.now();
    const log = (line: string) => t.diagnostic(`${Math.round((Date.now() - started) / 1000)}s ${line}`);
    const buildah = new Buildah();
    await buildah.prepare();

    const containerfile = await readFile(new URL('Containerfile', `file://${REPO_ROOT}`), 'utf8');
    const base = containerfileBase(containerfile);
    await ensureStandInBase(buildah, base, log);

    const image = `localhost/discovery-test:${process.pid}-${Date.now()}`;
    const container = `discovery-test-${process.pid}-${Date.now()}`;
    let server: ReturnType<Buildah['spawn']> | undefined;
    try {
      log(`building ${image}`);
      await buildah.run(
        [
          'bud',
          '--isolation=chroot',
          '--pull=never',
          '--format=docker',
          '--layers=false',
          '-f',
          'Containerfile',
          '-t',
          image,
          REPO_ROOT,
        ],
        BUILD_BOUND_MS,
      );
      log('built');

      const inspected = await buildah.inspect('image', image);
      const config = inspected.OCIv1.config ?? {};
      assert.match(config.User ?? '', /^[1-9]\d*(:\d+)?$/, 'the image runs as a numeric, non-root user');
      assert.deepEqual(config.Cmd, ['node', 'dist/src/main.js']);
      assert.ok(!config.Entrypoint?.length, 'no entrypoint wraps node, so node is PID 1 and gets the signals');
      assert.ok(config.Env?.includes('NODE_ENV=production'), `NODE_ENV=production in ${config.Env?.join(' ')}`);
      const healthcheck = inspected.Docker.config?.Healthcheck?.Test ?? [];
      assert.equal(healthcheck[0], 'CMD', 'a HEALTHCHECK in exec form');
      assert.match(healthcheck.join(' '), /\/readyz/, 'the HEALTHCHECK asks /readyz');

      await buildah.run(['from', '--pull=never', '--name', container, image], 5 * 60_000);
      const port = await freePort();
      const xdsPort = await freePort();
      const env = ['--env', `PORT=${port}`, '--env', `XDS_PORT=${xdsPort}`, '--env', 'LISTEN_ADDRESS=127.0.0.1'];
      server = buildah.spawn(['run', '--isolation=chroot', ...env, container, '--', ...(config.Cmd ?? [])]);
      let stdout = '';
      let stderr = '';
      server.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
      server.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
      const exited = once(server, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
      const said = () => `stdout:\n${stdout.slice(-3000)}\nstderr:\n${stderr.slice(-3000)}`;
      const url = `http://127.0.0.1:${port}`;
      await waitFor(
        () => `the server in the container to listen on ${url}\n${said()}`,
        () => (stdout.includes(`discovery listening on ${url}`) ? true : server?.exitCode === null ? undefined : true),
        START_BOUND_MS,
        100,
      );
      assert.equal(server.exitCode, null, `the server ended during start-up\n${said()}`);
      log('listening');

      // chroot isolation has no PID namespace: the server is a descendant of buildah on this host.
      const serverPid = descendants(server.pid as number).find((pid) => {
        const argv = commandLine(pid);
        return argv[0]?.endsWith('/node') === true && argv.slice(1).join(' ') === 'dist/src/main.js';
      });
      assert.ok(serverPid, 'found the node process buildah started');
      assert.notEqual(userId(serverPid), 0, 'the server runs as a non-root user');

      const healthcheckResponse = await fetch(`${url}/healthcheck`);
      assert.equal(healthcheckResponse.status, 200);
      assert.equal(await healthcheckResponse.text(), 'OK');

      const posted = await fetch(`${url}/v1/registration/users`, {
        method: 'POST',
        body: heartbeatForm('10.0.3.17', { port: '9211', revision: '2f1c0e9' }),
      });
      assert.equal(posted.status, 200, await posted.clone().text());
      assert.deepEqual(await posted.json(), {});
      const listed = await fetch(`${url}/v1/registration/users`);
      assert.equal(listed.status, 200);
      const body = (await listed.json()) as { service: string; hosts: { ip_address: string; port: number }[] };
      assert.equal(body.service, 'users');
      assert.deepEqual(
        body.hosts.map((host) => [host.ip_address, host.port]),
        [['10.0.3.17', 9211]],
      );

      // The dashboard's static files made it into the image.
      const page = await fetch(`${url}/ui/`);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /<html/i);

      // The HEALTHCHECK command itself, run in the container, agrees with what /readyz answers.
      const ready = await fetch(`${url}/readyz`);
      await ready.arrayBuffer();
      const probe = await buildah.run(
        ['run', '--isolation=chroot', '--env', `PORT=${port}`, container, '--', ...healthcheck.slice(1)],
        60_000,
        true,
      );
      assert.equal(
        probe.code,
        ready.status === 200 ? 0 : 1,
        `HEALTHCHECK exit code with /readyz answering ${ready.status}: ${probe.stderr}`,
      );
      log(`round trip done; /readyz ${ready.status}, HEALTHCHECK exit ${probe.code}`);

      process.kill(serverPid, 'SIGTERM');
      const timer = setTimeout(() => server && killGroup(server), STOP_BOUND_MS);
      const [code, signal] = await exited;
      clearTimeout(timer);
      assert.equal(signal, null, `buildah run was killed (${signal}): no exit within ${STOP_BOUND_MS} ms\n${said()}`);
      assert.equal(code, 0, `exit code after SIGTERM\n${said()}`);
      const lines = parseLines(stdout);
      assert.ok(
        lines.some((line) => line.msg === 'shutting down' && line.signal === 'SIGTERM'),
        `a clean shutdown logged\n${said()}`,
      );
      const errors = lines.filter((line) => (line.level ?? 0) >= 50);
      assert.deepEqual(errors, [], 'no error logged on the way down');
      log('stopped with exit code 0');
    } finally {
      if (server) killGroup(server);
      await buildah.run(['rm', container], 120_000, true);
      // The stand-in base stays, for the next run.
      await buildah.run(['rmi', '--force', image], 120_000, true);
    }
  },
);
