import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

/**
 * Both bins of package.json, run as a user runs them (the file itself, through its
 * `#!/usr/bin/env node`), answer `--help` and `--version` and refuse any other argument the
 * same way: one helper, src/command-line.ts, serves both.
 */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const PACKAGE = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as {
  version: string;
  bin: Record<string, string>;
};
/** The shebang finds the Node.js running the tests first. */
const PATH = `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ''}`;
/** A bin that starts serving instead of answering is killed past this, and the test fails on its signal. */
const ANSWER_BOUND_MS = 20_000;

interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function runBin(name: string, args: readonly string[], env: Record<string, string> = {}): Promise<Ran> {
  const file = PACKAGE.bin[name];
  assert.ok(file, `package.json has a bin named ${name}`);
  // The server's default settings would serve on 8080: a run that wrongly starts serving binds
  // ports of its own choosing on loopback instead, and is killed at the bound.
  const child = spawn(path.join(ROOT, file), [...args], {
    env: { PATH, PORT: '0', XDS_PORT: '0', LISTEN_ADDRESS: '127.0.0.1', BACKEND_STORAGE: 'InMemory', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), ANSWER_BOUND_MS);
  return new Promise((resolve) =>
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    }),
  );
}

for (const name of ['discovery-server', 'discovery-agent']) {
  describe(name, () => {
    test('--help prints the usage on stdout and exits 0', async () => {
      for (const flag of ['--help', '-h']) {
        const ran = await runBin(name, [flag]);
        assert.equal(ran.code, 0, `${flag}: ${ran.stderr}`);
        assert.equal(ran.stderr, '');
        assert.match(ran.stdout, new RegExp(`^Usage: ${name}\\b`));
        assert.match(ran.stdout, new RegExp(`${name} --version \\| --help`));
      }
    });

    test("--version prints the package's version and exits 0", async () => {
      const ran = await runBin(name, ['--version']);
      assert.equal(ran.code, 0, ran.stderr);
      assert.equal(ran.stdout, `${name} ${PACKAGE.version}\n`);
      assert.equal(ran.stderr, '');
    });

    test('an unknown option exits 2 with one line naming it on stderr, nothing on stdout', async () => {
      const ran = await runBin(name, ['--bogus']);
      assert.equal(ran.code, 2, `${ran.signal ?? ''} ${ran.stdout}`);
      assert.equal(ran.stdout, '');
      assert.match(ran.stderr.split('\n')[0] ?? '', new RegExp(`^${name}: .*--bogus`));
    });
  });
}

describe('discovery-server', () => {
  test('the usage says what it serves, that settings are environment variables, and where their table is', async () => {
    const { stdout } = await runBin('discovery-server', ['--help']);
    assert.match(stdout, /v1 SDS REST API/);
    assert.match(stdout, /xDS/);
    assert.match(stdout, /Every setting is an environment variable/);
    assert.match(stdout, /"Settings" section of README\.md/);
    // That section is there, and is the table of settings.
    const readme = await readFile(path.join(ROOT, 'README.md'), 'utf8');
    const section = readme.split(/^## Settings$/m)[1]?.split(/^## /m)[0] ?? '';
    assert.match(section, /^\| `PORT` \| `8080` \|/m, 'README.md has a Settings section with the table');
    assert.ok(stdout.split('\n').length <= 20, `a short usage, not ${stdout.split('\n').length} lines`);
  });

  test('any argument but --help or --version exits 2 with the usage on stderr, and serves nothing', async () => {
    for (const args of [['PORT=9090'], ['--port', '9090'], ['serve'], ['--help', 'extra'], ['--version', '--debug']]) {
      const ran = await runBin('discovery-server', args);
      assert.equal(ran.code, 2, `${args.join(' ')}: ${ran.signal ?? ''} ${ran.stdout}`);
      assert.equal(ran.stdout, '', `${args.join(' ')} logs nothing: no server started`);
      const [first, ...rest] = ran.stderr.split('\n');
      assert.match(first ?? '', /^discovery-server: unexpected argument '.+': settings are environment variables/);
      assert.match(rest.join('\n'), /^\nUsage: discovery-server\n/);
    }
  });

  test('--help and --version answer before any setting is read: a wrong one does not stop them', async () => {
    const env = { PORT: 'not-a-port', BACKEND_STORAGE: 'Nowhere' };
    const version = await runBin('discovery-server', ['--version'], env);
    assert.equal(version.code, 0, version.stderr);
    assert.equal(version.stdout, `discovery-server ${PACKAGE.version}\n`);
    const help = await runBin('discovery-server', ['--help'], env);
    assert.equal(help.code, 0, help.stderr);
    // And with no argument the same settings do stop it, so this is not a server that ignores them.
    const started = await runBin('discovery-server', [], env);
    assert.equal(started.code, 1);
    assert.match(started.stderr, /^discovery: .*PORT/);
  });
});

describe('discovery-agent', () => {
  test('a bad command line points to --help rather than burying the error under the long usage', async () => {
    const ran = await runBin('discovery-agent', ['--bogus']);
    assert.equal(ran.code, 2);
    assert.equal(ran.stderr.split('\n')[1], 'Run discovery-agent --help for usage.');
  });
});
