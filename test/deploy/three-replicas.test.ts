import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../helpers/temp-dir.js';

/**
 * docs/three-replicas.md, "On one machine", run as written: dynalite, three replicas on one
 * table and nginx in front, a host registered through the load balancer and read from each
 * replica, then one replica stopped while the load balancer keeps answering. The page's blocks
 * are pasted in order into one shell (they share its background jobs), so the page cannot drift
 * from what works. The page uses fixed ports (8080-8083, 4567, 18001-18003), so the shell runs
 * in a network namespace of its own (`unshare --net`, its loopback brought up), where nothing
 * else listens, and a PID namespace of its own, so nothing it starts can outlive it. The page's first line (`npm ci && npm run
 * build`) is what `npm test` has already done, so it is left out.
 *
 * Needs root (unshare), nginx and iproute2 (npm test's scripts/system-tools.mjs installs them); without them this fails,
 * it never skips.
 */

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const PAGE = 'docs/three-replicas.md';
const RUN_BOUND_MS = 240_000;

/** The `sh` blocks between `## On one machine` and the next `## ` heading, each as its lines. */
function oneMachineBlocks(page: string): string[][] {
  const section = page.split('\n## On one machine\n')[1]?.split('\n## ')[0];
  assert.ok(section, `${PAGE} has a section "On one machine"`);
  return [...section.matchAll(/```sh\n([\s\S]*?)\n```/g)].map((match) => (match[1] as string).split('\n'));
}

test('docs/three-replicas.md on one machine: three replicas on one table behind nginx, as written', async () => {
  assert.equal(process.getuid?.(), 0, 'this test needs root for unshare --net: run it as root, as CI does');
  const blocks = oneMachineBlocks(await readFile(path.join(REPO_ROOT, PAGE), 'utf8'));
  assert.equal(blocks.length, 3, 'start everything; register and read; stop a replica');
  const [start, readEach, stopOne] = blocks as [string[], string[], string[]];
  assert.equal(start[0], 'npm ci && npm run build', 'the page starts by building');

  const dir = await tempDir('discovery-three-replicas-');
  try {
    for (const entry of ['dist', 'node_modules', 'package.json'])
      await symlink(path.join(REPO_ROOT, entry), path.join(dir.path, entry));
    const script = [
      'set -e',
      // Whatever happens, every job the page started stops with the shell.
      "trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT",
      ...start.slice(1),
      'echo; echo "@@read-each"',
      ...readEach,
      'echo; echo "@@stop-one"',
      ...stopOne,
      'echo; echo "@@done"',
    ].join('\n');
    await writeFile(path.join(dir.path, 'walk-through.sh'), script);
    const result = await runIsolated(dir.path, 'ip link set lo up && exec bash walk-through.sh');
    const said = `exit ${result.code}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr.slice(-4000)}`;
    assert.equal(result.code, 0, said);

    const [, afterRegister = '', afterStop = ''] = result.stdout.split(/@@read-each\n|@@stop-one\n/);
    const bodies = afterRegister
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { hosts?: Array<{ ip_address: string }> });
    // The heartbeat's `{}`, each replica's list, then the repo list.
    assert.equal(bodies.length, 5, said);
    for (const body of bodies.slice(1)) {
      assert.deepEqual(
        body.hosts?.map((host) => host.ip_address),
        ['10.0.3.17'],
        `every replica lists the host: ${said}`,
      );
    }
    assert.match(afterStop, /replica 1 exited with 0/, said);
    const [listed] = afterStop
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { hosts: Array<{ ip_address: string }> });
    assert.deepEqual(
      listed?.hosts.map((host) => host.ip_address),
      ['10.0.3.17'],
      `the load balancer still answers, from the two left: ${said}`,
    );
    assert.match(afterStop, /@@done/, said);
  } finally {
    await dir.remove();
  }
});

/** `command` in a shell of its own network and PID namespaces, in `cwd`; killed with its group past the bound. */
function runIsolated(cwd: string, command: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // A PID namespace too (the shell is its init): when the shell ends, the kernel ends every
    // process it started, including children the page's jobs left behind (npx's dynalite).
    const child = spawn('unshare', ['--net', '--pid', '--fork', 'bash', '-c', command], {
      cwd,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    }, RUN_BOUND_MS);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
