import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { test } from 'node:test';
import { spawn } from 'node:child_process';
import { runDiscoveryToExit, startDiscovery } from '../helpers/discovery-process.js';
import { listHosts, register, waitFor } from '../helpers/registry.js';
import { tempDir } from '../helpers/temp-dir.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** The bins' `#!/usr/bin/env node` finds the Node.js running the tests first. */
const PATH = `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ''}`;
const NPM_BOUND_MS = 240_000;

/** npm as a user runs it: none of the `npm_*` settings of the `npm test` around this test. */
function npmEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH };
  for (const [key, value] of Object.entries(process.env)) if (!/^npm_/i.test(key)) env[key] ??= value;
  return env;
}

function npm(args: readonly string[], cwd: string) {
  return run('npm', [...args], { cwd, env: npmEnv(), timeout: NPM_BOUND_MS, maxBuffer: 16 * 1024 * 1024 });
}

interface PackResult {
  name: string;
  filename: string;
  files: Array<{ path: string }>;
}

test(
  'the packed package installs in an empty folder; its server, dashboard, agent and client run from there',
  { timeout: 600_000 },
  async () => {
    const work = await tempDir('discovery-package-');
    try {
      // npm pack runs prepack (the build); the tests run from a fresh build, so it changes nothing.
      const { stdout: packed } = await npm(['pack', '--json', '--pack-destination', work.path], ROOT);
      const [info] = JSON.parse(packed) as PackResult[];
      assert.ok(info);
      const own = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as {
        name: string;
        version: string;
      };
      assert.equal(info.name, own.name);
      const files = info.files.map((file) => file.path);
      for (const needed of [
        'package.json',
        'README.md',
        'dist/src/main.js',
        'dist/src/agent/cli.js',
        'dist/src/index.js',
        'dist/src/index.d.ts',
        'dist/src/dashboard/static/index.html',
        'dist/src/dashboard/static/app.js',
      ])
        assert.ok(files.includes(needed), `${needed} is not in the package`);
      const stray = files.filter(
        (file) => /^(src|test|bench|dist\/test|dist\/bench)\//.test(file) || /\.map$/.test(file),
      );
      assert.deepEqual(stray, [], 'sources, tests, benchmarks and source maps stay out of the package');

      // An empty project, the package installed into it from the tarball (dependencies from npm's cache when there).
      const app = path.join(work.path, 'app');
      await mkdir(app);
      await writeFile(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true }));
      await npm(['install', '--prefer-offline', '--no-audit', '--no-fund', path.join(work.path, info.filename)], app);
      const bin = path.join(app, 'node_modules', '.bin');
      const data = path.join(work.path, 'data');

      // The server, with its development default: the embedded store, dynalite loaded from the install.
      const server = await startDiscovery(
        { APPLICATION_DIR: data, PATH },
        { command: [path.join(bin, 'discovery-server')], cwd: app, startTimeoutMs: 60_000 },
      );
      try {
        assert.equal((await register(server.url, 'users')).status, 200);
        assert.deepEqual(
          (await listHosts(server.url, 'users')).hosts.map((host) => host.ip_address),
          ['10.0.3.17'],
        );

        // The dashboard, served from the package's dist/ (there is no src/ in it).
        const page = await fetch(`${server.url}/ui/`);
        assert.equal(page.status, 200);
        assert.equal(await page.text(), await readFile(path.join(ROOT, 'src/dashboard/static/index.html'), 'utf8'));

        // The client library and the embeddable agent, through the package's name.
        const { stdout: seen } = await run(
          process.execPath,
          [
            '--input-type=module',
            '-e',
            `import { DiscoveryClient, HeartbeatAgent } from '${own.name}';
             if (typeof HeartbeatAgent !== 'function') throw new Error('HeartbeatAgent is not exported');
             const { hosts } = await new DiscoveryClient({ baseUrl: process.argv[1] }).list('users');
             process.stdout.write(hosts.map((host) => host.ip_address).join(','));`,
            server.url,
          ],
          { cwd: app, env: { PATH }, timeout: 30_000 },
        );
        assert.equal(seen, '10.0.3.17');

        // The agent: its help (and the server's version, from the installed bin), then a real heartbeat and the delete on SIGTERM.
        const { stdout: help } = await run(path.join(bin, 'discovery-agent'), ['--help'], {
          env: { PATH },
          timeout: 30_000,
        });
        assert.match(help, /--url/);
        const { stdout: serverVersion } = await run(path.join(bin, 'discovery-server'), ['--version'], {
          env: { PATH },
          timeout: 30_000,
        });
        assert.equal(serverVersion, `discovery-server ${own.version}\n`);
        const agent = spawn(
          path.join(bin, 'discovery-agent'),
          [
            ...['--url', server.url, '--service', 'web', '--ip', '10.1.2.3', '--port', '8000', '--revision', 'r1'],
            ...['--tag', 'az=a', '--tag', 'region=r', '--tag', 'instance_id=i-1'],
          ],
          { env: { PATH }, stdio: ['ignore', 'ignore', 'pipe'] },
        );
        let agentLog = '';
        agent.stderr.on('data', (chunk: Buffer) => (agentLog += chunk.toString()));
        const agentExit = once(agent, 'exit') as Promise<[number | null]>;
        const killer = setTimeout(() => agent.kill('SIGKILL'), 60_000);
        try {
          await waitFor(
            () => `the agent's host in web (agent said: ${agentLog})`,
            async () => (await listHosts(server.url, 'web')).hosts[0],
            30_000,
          );
          agent.kill('SIGTERM');
          assert.equal((await agentExit)[0], 0, agentLog);
        } finally {
          clearTimeout(killer);
        }
        assert.deepEqual((await listHosts(server.url, 'web')).hosts, []);
      } finally {
        assert.equal(await server.stop('SIGTERM'), 0, server.output());
      }

      // A production install without optional packages has no dynalite: the embedded store says
      // so in one line, and every other backend runs.
      await rm(path.join(app, 'node_modules', 'dynalite'), { recursive: true, force: true });
      const main = path.join(app, 'node_modules', ...own.name.split('/'), 'dist/src/main.js');
      const refused = await runDiscoveryToExit({ APPLICATION_DIR: data, PATH }, [process.execPath, main]);
      assert.equal(refused.code, 1);
      assert.equal(refused.stderr.length, 1, refused.stderr.join('\n'));
      assert.match(refused.stderr[0]!, /^discovery: .*dynalite.*not installed.*DYNAMODB_URL/);
      const inMemory = await startDiscovery(
        { BACKEND_STORAGE: 'InMemory', PATH },
        { command: [path.join(bin, 'discovery-server')], cwd: app },
      );
      assert.equal((await register(inMemory.url, 'users')).status, 200);
      assert.equal(await inMemory.stop('SIGTERM'), 0, inMemory.output());
    } finally {
      await work.remove();
    }
  },
);
