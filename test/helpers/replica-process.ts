import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { childEnv } from './discovery-process.js';

const MAIN = fileURLToPath(new URL('../../src/main.js', import.meta.url));
/** Start-up opens a DynamoDB client and binds two ports; far more than this means it is stuck. */
const START_BOUND_MS = 30_000;
const STOP_BOUND_MS = 10_000;
/** Lines of output kept for a failure message. */
const OUTPUT_KEPT = 200;

/**
 * A discovery process on ports chosen up front (PORT and XDS_PORT), so it can be killed and
 * started again at the same addresses, behind proxies that were pointed at them before it ran.
 * It is ready once `/livez` answers, so it needs no log line and runs at any LOG_LEVEL.
 */
export class ReplicaProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private expectingExit = false;
  private paused = false;
  /** The last lines it wrote (stdout and stderr interleaved), across restarts. */
  readonly output: string[] = [];

  constructor(
    /** A name for messages (`A`, `B`, …). */
    readonly name: string,
    readonly httpPort: number,
    readonly xdsPort: number,
    private readonly settings: Record<string, string>,
  ) {}

  /** `http://127.0.0.1:<httpPort>`, the replica itself (not a proxy in front of it). */
  get url(): string {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts the process and resolves once its HTTP port answers `/livez`. */
  async start(): Promise<void> {
    if (this.running) throw new Error(`replica ${this.name} is already running`);
    this.expectingExit = false;
    this.paused = false;
    const child = spawn(process.execPath, [MAIN], {
      env: childEnv({ ...this.settings, PORT: String(this.httpPort), XDS_PORT: String(this.xdsPort) }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    for (const stream of [child.stdout, child.stderr]) {
      let pending = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        pending += chunk;
        const lines = pending.split('\n');
        pending = lines.pop() ?? '';
        this.output.push(...lines.map((line) => `${this.name}[${child.pid}] ${line}`));
        if (this.output.length > OUTPUT_KEPT) this.output.splice(0, this.output.length - OUTPUT_KEPT);
      });
    }
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        if (!this.expectingExit)
          process.stderr.write(
            `replica ${this.name} (pid ${child.pid}) exited unexpectedly (code ${code}, signal ${signal}):\n` +
              `${this.output.slice(-20).join('\n')}\n`,
          );
        resolve();
      }),
    );
    const deadline = Date.now() + START_BOUND_MS;
    for (;;) {
      if (!this.running) throw new Error(`replica ${this.name} exited while starting:\n${this.output.join('\n')}`);
      try {
        const response = await fetch(`${this.url}/livez`, { signal: AbortSignal.timeout(1000) });
        if (response.ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        await this.stop('SIGKILL');
        throw new Error(
          `replica ${this.name} did not answer /livez within ${START_BOUND_MS} ms:\n${this.output.join('\n')}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Sends `signal` and waits for the exit (SIGKILL after a bound). A paused process is continued first, so SIGTERM is heard. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    this.expectingExit = true;
    child.kill(signal);
    if (this.paused && signal !== 'SIGKILL') child.kill('SIGCONT');
    this.paused = false;
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_BOUND_MS);
    await this.exited;
    clearTimeout(timer);
  }

  /** SIGSTOP: the process holds every socket open and answers nothing, as a stalled VM does. */
  pause(): void {
    if (!this.running) throw new Error(`replica ${this.name} is not running`);
    this.child?.kill('SIGSTOP');
    this.paused = true;
  }

  /** SIGCONT after `pause()`. */
  resume(): void {
    this.child?.kill('SIGCONT');
    this.paused = false;
  }
}
