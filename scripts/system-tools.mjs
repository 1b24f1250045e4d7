// The system tools the test suite runs, outside npm: checked by `npm test` before any test (and by
// .ci/run before anything else), so a missing one stops the run at once with what to do, rather
// than failing its tests after minutes. As root on Debian the missing ones are installed with
// apt-get; otherwise one line names the command to run, and the exit code is 1.
// `--check-only`: never install, just say what is missing (exit 1) or nothing (exit 0).
// This list is the only one: the README names these tools, .ci/run calls this script.
// Plain JavaScript, since it runs before anything is compiled, on any Node.js the README allows.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import { pathToFileURL } from 'node:url';

/**
 * Each tool as the tests run it (a command found on PATH, or an exact path), the Debian package
 * that brings it, and what the suite uses it for.
 */
export const SYSTEM_TOOLS = [
  { command: '/usr/bin/chromium', pkg: 'chromium', use: 'the dashboard tests drive it (test/helpers/browser.ts)' },
  { command: 'wrk', pkg: 'wrk', use: 'the benchmark smoke test' },
  { command: 'promtool', pkg: 'prometheus', use: 'checks the /metrics exposition (test/http/metrics.test.ts)' },
  { command: 'buildah', pkg: 'buildah', use: 'builds and runs the Containerfile (test/deploy/container.long-test.ts)' },
  {
    command: 'debootstrap',
    pkg: 'debootstrap',
    use: 'the Debian root filesystems of the container and fresh-machine tests',
  },
  { command: 'systemd-analyze', pkg: 'systemd', use: 'checks the unit in deploy/systemd' },
  { command: 'nginx', pkg: 'nginx', use: "docs/three-replicas.md's load balancer" },
  { command: 'ip', pkg: 'iproute2', use: "the walk-through's network namespace (test/deploy/three-replicas.test.ts)" },
  {
    command: 'unshare',
    pkg: 'util-linux',
    use: 'network and PID namespaces of the walk-through and fresh-machine tests',
  },
  { command: 'curl', pkg: 'curl', use: "the docs' shell examples (test/docs/examples.test.ts)" },
  { command: 'openssl', pkg: 'openssl', use: 'certificates for the TLS tests (test/helpers/certificates.ts)' },
  { command: 'git', pkg: 'git', use: 'the clean clone the fresh-machine test copies in' },
];

/**
 * Debian's folders of administration tools (debootstrap, nginx, ip), on root's PATH but often not
 * on a user's: an installed tool found there is not reported missing.
 */
const SBIN = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

/** Whether a command can be run: an absolute path as is, a name through PATH (as spawn finds it) or SBIN. */
function found(command) {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), ...SBIN];
  const candidates = path.isAbsolute(command) ? [command] : dirs.map((dir) => path.join(dir, command));
  return candidates.some((file) => {
    try {
      accessSync(file, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

function missingTools() {
  return SYSTEM_TOOLS.filter((tool) => !found(tool.command));
}

function say(line) {
  process.stderr.write(`system tools: ${line}\n`);
}

function names(tools) {
  return tools.map((tool) => path.basename(tool.command)).join(', ');
}

/** Runs apt-get; false, said in one line, when it fails. */
function aptGet(args) {
  const result = spawnSync('apt-get', args, {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  if (result.status !== 0) {
    say(`apt-get ${args.join(' ')} failed (exit ${result.status ?? result.signal})`);
    return false;
  }
  return true;
}

/** Checks, installs what it may; returns the exit code. */
function main(argv) {
  const checkOnly = argv.includes('--check-only');
  const missing = missingTools();
  if (missing.length === 0) return 0;

  const packages = [...new Set(missing.map((tool) => tool.pkg))];
  const install = `apt-get update && apt-get install -y ${packages.join(' ')}`;
  const isRoot = process.getuid?.() === 0;
  const onDebian = existsSync('/etc/debian_version') && existsSync('/usr/bin/apt-get');
  if (checkOnly || !isRoot || !onDebian) {
    const how = !onDebian
      ? `install them (the Debian packages: ${packages.join(' ')})`
      : isRoot
        ? `run: ${install}`
        : `run: sudo sh -c '${install}'`;
    say(`the tests need ${names(missing)}, not found; ${how}`);
    return 1;
  }

  say(`installing ${packages.join(' ')} for ${names(missing)}`);
  if (!aptGet(['update']) || !aptGet(['install', '-y', ...packages])) return 1;
  const stillMissing = missingTools();
  if (stillMissing.length > 0) {
    say(
      `${names(stillMissing)} still not found after installing ${packages.join(' ')}: is it on PATH (${process.env.PATH})?`,
    );
    return 1;
  }
  return 0;
}

// Run as a script (imported, it only lends its list, e.g. to the test that keeps the README true).
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href)
  process.exit(main(process.argv.slice(2)));
