import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../../src/main.js', import.meta.url));
/** Start-up includes opening LevelDB and creating a table; far more than that means it is stuck. */
const START_BOUND_MS = 30_000;
const STOP_BOUND_MS = 15_000;

export interface DiscoveryProcess {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly child: ChildProcess;
  /** Every stdout line so far (pino JSON lines). */
  readonly stdout: string[];
  readonly stderr: string[];
  /** Everything written so far, stdout then stderr. */
  output(): string;
  /** Sends `signal` (SIGTERM by default; SIGKILL after a bound), waits for the exit; the exit code, null when killed by a signal. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * The settings a child gets: nothing inherited but PATH, so neither a developer's AWS settings
 * nor DYNAMODB_URL leak in; the instance metadata service is off so no credential lookup ever
 * leaves the machine.
 */
export function childEnv(settings: Record<string, string>): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    AWS_EC2_METADATA_DISABLED: 'true',
    LISTEN_ADDRESS: '127.0.0.1',
    PORT: '0',
    XDS_PORT: '0',
    LOG_LEVEL: 'info',
    STATSD_HOST: '127.0.0.1',
    ...settings,
  };
}

function collect(stream: NodeJS.ReadableStream | null, into: string[], onLine?: (line: string) => void): void {
  let pending = '';
  stream?.setEncoding('utf8');
  stream?.on('data', (chunk: string) => {
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      into.push(line);
      onLine?.(line);
    }
  });
  // A last line without a newline still counts.
  stream?.on('end', () => {
    if (pending !== '') into.push(pending);
  });
}

export interface StartOptions {
  readonly cwd?: string;
  readonly startTimeoutMs?: number;
  /** What to run instead of `node dist/src/main.js`: an installed bin, or `npm start`. */
  readonly command?: readonly [string, ...string[]];
}

/** Runs `node dist/src/main.js` (or `options.command`) with `settings` (PORT=0) and resolves once it listens. */
export function startDiscovery(
  settings: Record<string, string>,
  options: StartOptions = {},
): Promise<DiscoveryProcess> {
  const startBoundMs = options.startTimeoutMs ?? START_BOUND_MS;
  const [file, ...args] = options.command ?? [process.execPath, MAIN];
  const child = spawn(file, args, {
    env: childEnv(settings),
    cwd: options.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stdout: string[] = [];
  const stderr: string[] = [];
  let stopping = false;
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code, signal) => {
      // A child that ends without being told to is a failure to explain: show how it ended and what it said.
      if (!stopping) {
        const said = [...stdout.slice(-20), ...stderr.slice(-20)].join('\n');
        process.stderr.write(
          `discovery child ${child.pid} exited unexpectedly (code ${code}, signal ${signal}):\n${said}\n`,
        );
      }
      resolve(code);
    }),
  );
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    stopping = true;
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_BOUND_MS);
    const code = await exited;
    clearTimeout(timer);
    return code;
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop();
      reject(
        new Error(`discovery did not start within ${startBoundMs} ms:\n${stderr.join('\n')}\n${stdout.join('\n')}`),
      );
    }, startBoundMs);
    collect(child.stderr, stderr);
    collect(child.stdout, stdout, (line) => {
      const match = /discovery listening on (https?:\/\/[^"\s]+)/.exec(line);
      if (!match?.[1]) return;
      clearTimeout(timer);
      resolve({ url: match[1], child, stdout, stderr, output: () => [...stdout, ...stderr].join('\n'), stop });
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`discovery exited with ${code} before listening:\n${stderr.join('\n')}`));
    });
  });
}

/** Runs main.ts to its exit (a start-up that must fail); bounded. */
export function runDiscoveryToExit(
  settings: Record<string, string>,
  command: readonly [string, ...string[]] = [process.execPath, MAIN],
): Promise<{ code: number | null; stdout: string[]; stderr: string[] }> {
  const [file, ...args] = command;
  const child = spawn(file, args, { env: childEnv(settings), stdio: ['ignore', 'pipe', 'pipe'] });
  const stdout: string[] = [];
  const stderr: string[] = [];
  collect(child.stdout, stdout);
  collect(child.stderr, stderr);
  const timer = setTimeout(() => child.kill('SIGKILL'), START_BOUND_MS);
  return new Promise((resolve) =>
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
}

/** A form-encoded heartbeat, as hosts send it. */
export function heartbeatForm(ip: string, extra: Record<string, string> = {}): URLSearchParams {
  return new URLSearchParams({
    ip,
    port: '8080',
    revision: 'r1',
    service_repo_name: 'users-repo',
    tags: JSON.stringify({ az: 'a', region: 'r', instance_id: 'i' }),
    ...extra,
  });
}
