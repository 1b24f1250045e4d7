import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, copyFile, readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../helpers/temp-dir.js';

/**
 * scripts/system-tools.mjs, the first step of `npm test` and of .ci/run: it finds the system tools
 * the suite runs, and says in one line what to run when it may not install them itself. The
 * install itself (root on Debian) is what test/deploy/fresh-machine.long-test.ts proves, on a
 * machine that has none of them; here nothing is ever installed.
 */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SCRIPT = path.join(ROOT, 'scripts', 'system-tools.mjs');
const { SYSTEM_TOOLS } = (await import(SCRIPT)) as {
  SYSTEM_TOOLS: { command: string; pkg: string; use: string }[];
};

function runScript(
  args: readonly string[],
  options: { PATH: string; uid?: number; script?: string; node?: string },
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(options.node ?? process.execPath, [options.script ?? SCRIPT, ...args], {
    env: { PATH: options.PATH },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.uid === undefined ? {} : { uid: options.uid, gid: options.uid }),
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  return new Promise((resolve) =>
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
}

test('with every tool there (npm test ran this step first), it says nothing and exits 0', async () => {
  const ran = await runScript([], { PATH: process.env.PATH ?? '' });
  assert.equal(ran.code, 0, ran.stderr);
  assert.equal(ran.stdout + ran.stderr, '');
});

test('a missing tool stops it with one line naming the tools and the exact command, and installs nothing', async () => {
  // No PATH: only tools named by their absolute path (chromium) or in Debian's sbin folders
  // (debootstrap, nginx, ip) are still found.
  const ran = await runScript(['--check-only'], { PATH: '/nonexistent' });
  assert.equal(ran.code, 1);
  assert.equal(ran.stdout, '');
  const lines = ran.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, ran.stderr);
  const [line] = lines as [string];
  assert.match(
    line,
    /^system tools: the tests need wrk, promtool, buildah, .*, not found; run: apt-get update && apt-get install -y /,
  );
  const command = line.split('run: ')[1] ?? '';
  for (const pkg of ['wrk', 'prometheus', 'buildah', 'systemd', 'curl', 'openssl', 'git'])
    assert.ok(command.split(' ').includes(pkg), `${pkg} in: ${command}`);
  for (const found of ['chromium', 'debootstrap', 'nginx', 'iproute2'])
    assert.ok(!command.split(' ').includes(found), `${found} is installed, yet in: ${command}`);
});

test('run by a user other than root, it names the command to run with sudo rather than trying apt-get', async () => {
  assert.equal(process.getuid?.(), 0, 'this test switches to the nobody user, which needs root (as npm test runs)');
  // Copies the nobody user can read wherever the checkout and Node.js are (under /root, or in
  // CI's private temporary folder of Node.js binaries, it could not).
  const dir = await tempDir('discovery-system-tools-');
  try {
    await chmod(dir.path, 0o755);
    const copy = path.join(dir.path, 'system-tools.mjs');
    await copyFile(SCRIPT, copy);
    await chmod(copy, 0o644);
    const node = path.join(dir.path, 'node');
    await copyFile(process.execPath, node);
    await chmod(node, 0o755);
    const ran = await runScript([], { PATH: '/nonexistent', uid: 65534, script: copy, node });
    assert.equal(ran.code, 1, ran.stderr);
    const lines = ran.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, ran.stderr);
    assert.match(lines[0] ?? '', /; run: sudo sh -c 'apt-get update && apt-get install -y [a-z0-9 -]+'$/);
    assert.doesNotMatch(ran.stderr, /installing/);
  } finally {
    await dir.remove();
  }
});

test('the README names each tool, with its package and use, next to the test command; CI and npm test run this step', async () => {
  const readme = await readFile(path.join(ROOT, 'README.md'), 'utf8');
  const quickStart = readme.split(/^## Quick start$/m)[1]?.split(/^## /m)[0] ?? '';
  assert.match(quickStart, /npm ci && npm test/);
  for (const tool of SYSTEM_TOOLS) {
    const name = path.basename(tool.command);
    const row = quickStart.split('\n').find((line) => line.startsWith('|') && line.includes(`\`${name}\``));
    assert.ok(row, `README's quick start has a row for ${name}`);
    if (tool.pkg !== name)
      assert.ok(row.includes(`\`${tool.pkg}\``), `the row of ${name} names its package ${tool.pkg}`);
  }
  const { scripts } = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>;
  };
  assert.match(scripts.test ?? '', /^node scripts\/system-tools\.mjs && /, 'npm test starts with it');
  const ci = await readFile(path.join(ROOT, '.ci', 'run'), 'utf8');
  assert.match(ci, /^node scripts\/system-tools\.mjs$/m, '.ci/run runs it');
  assert.doesNotMatch(ci, /apt-get install/, '.ci/run keeps no list of its own');
});
