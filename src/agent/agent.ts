import { setTimeout as delay } from 'node:timers/promises';
import {
  DiscoveryError,
  type InstanceStatus,
  type Registration,
  type ServiceHostList,
} from '../client/discovery-client.js';

/** First retry delay after a failed heartbeat: quick enough to ride out a blip or a registry restart. */
export const DEFAULT_INITIAL_BACKOFF_MS = 1_000;
/** Retry delays never grow past this (nor past the heartbeat interval), so a host re-registers soon after an outage ends. */
export const DEFAULT_MAX_BACKOFF_MS = 30_000;
/** Heartbeats start up to this fraction of the interval early, so a fleet restarted at once does not heartbeat in lockstep; never late, so the interval stays a promise against HOST_TTL. */
const INTERVAL_JITTER = 0.1;

/** What the agent needs of a client; `DiscoveryClient` has it. */
export interface AgentClient {
  register(service: string, registration: Registration): Promise<void>;
  deregister(service: string, ip: string, options?: { port?: number }): Promise<void>;
  list(service: string): Promise<ServiceHostList>;
}

/** One structured log line; `msg` is for people, the other fields for machines. */
export interface AgentLogEntry {
  readonly time: string;
  readonly level: 'info' | 'warn' | 'error';
  readonly msg: string;
  readonly [field: string]: unknown;
}

export interface HeartbeatAgentOptions {
  readonly client: AgentClient;
  readonly service: string;
  readonly registration: Registration;
  /** Milliseconds between heartbeats; must be below the registry's HOST_TTL (the caller checks, it alone may know the TTL). */
  readonly intervalMs: number;
  /** First retry delay after a retryable failure. Default 1 s (capped by `maxBackoffMs`). */
  readonly initialBackoffMs?: number;
  /** Largest retry delay. Default the smaller of 30 s and `intervalMs`. */
  readonly maxBackoffMs?: number;
  /** Waits `ms`, resolving early (not rejecting) when `signal` aborts. Injected so tests need not wait. */
  readonly sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** Uniform in [0, 1); drives the jitter. */
  readonly random?: () => number;
  readonly now?: () => Date;
  readonly log?: (entry: AgentLogEntry) => void;
  /**
   * The app's health check: polled while running; `failuresBeforeDown` failures in a row make
   * the host heartbeat OUT_OF_SERVICE at once, the first passing check makes it UP again. The
   * first heartbeat waits for the first check, so an app that is not up yet is never served.
   */
  readonly check?: HealthCheck;
  /** On stop: heartbeat DRAINING for this long (every interval) before deregistering. Default 0. */
  readonly drainMs?: number;
}

/** A health check of the app beside the agent. */
export interface HealthCheck {
  /** Resolves true when the app is healthy, false when not; never rejects. */
  probe(): Promise<boolean>;
  readonly intervalMs: number;
  readonly failuresBeforeDown: number;
  /** Names the check in logs (no credentials in it). */
  readonly description: string;
}

/**
 * A check of an http(s) URL: healthy when it answers 2xx or 3xx (redirects are not followed)
 * within `timeoutMs`; anything else (an error status, no answer, a refused connection) fails.
 */
export function httpHealthCheck(
  url: string,
  intervalMs: number,
  timeoutMs: number,
  failuresBeforeDown: number,
  description: string,
): HealthCheck {
  return {
    intervalMs,
    failuresBeforeDown,
    description,
    async probe() {
      try {
        const response = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
        await response.body?.cancel();
        return response.status >= 200 && response.status < 400;
      } catch {
        return false;
      }
    },
  };
}

/**
 * Keeps one host registered: heartbeats every `intervalMs` (up to 10% early), retries
 * retryable failures (network, timeout, 5xx, 408, 429) with jittered exponential backoff
 * forever, and stops on the first non-retryable one (a 4xx: the input is wrong and will stay
 * wrong). When the run's signal aborts it lets an in-flight heartbeat finish (bounded by the
 * client's timeout, so the delete cannot overtake it), deregisters once, and resolves.
 */
export class HeartbeatAgent {
  private readonly options: HeartbeatAgentOptions;
  private readonly initialBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  private readonly random: () => number;
  private readonly now: () => Date;
  private readonly log: (entry: AgentLogEntry) => void;
  /** The registered address: the given `ip`, or with `autoIp` the one found in the registry after registering. */
  private ip: string | undefined;
  private ipLookupSettled = false;
  /** What the next heartbeat says: UP, or OUT_OF_SERVICE while the health check fails. */
  private status: InstanceStatus = 'UP';
  private checkFailures = 0;
  /** Ends the current wait between heartbeats early: the status changed and must be told now. */
  private nudge = new AbortController();

  constructor(options: HeartbeatAgentOptions) {
    if (!(options.intervalMs > 0)) throw new RangeError(`intervalMs must be positive: ${options.intervalMs}`);
    if (options.registration.ip === undefined && !options.registration.autoIp)
      throw new TypeError('registration needs ip or autoIp');
    this.options = options;
    this.maxBackoffMs = options.maxBackoffMs ?? Math.min(DEFAULT_MAX_BACKOFF_MS, options.intervalMs);
    this.initialBackoffMs = Math.min(options.initialBackoffMs ?? DEFAULT_INITIAL_BACKOFF_MS, this.maxBackoffMs);
    this.sleep = options.sleep ?? abortableSleep;
    this.random = options.random ?? Math.random;
    this.now = options.now ?? (() => new Date());
    this.log = options.log ?? (() => undefined);
    this.ip = options.registration.ip;
  }

  /**
   * Runs until `signal` aborts, then deregisters (when a heartbeat ever succeeded) and resolves.
   * Deregistration failing is logged, not thrown: the registry expires the host after HOST_TTL.
   * Rejects with the `DiscoveryError` of a non-retryable failure, after logging it.
   */
  async run(signal: AbortSignal): Promise<void> {
    let registered: boolean;
    // The checks stop with the run, however it ends.
    const checksStop = new AbortController();
    const checkSignal = AbortSignal.any([signal, checksStop.signal]);
    if (this.options.check) await this.checkOnce(this.options.check);
    const checking = this.options.check ? this.runChecks(this.options.check, checkSignal) : undefined;
    this.nudge = new AbortController();
    try {
      registered = await this.heartbeatUntil(signal);
    } finally {
      checksStop.abort();
      await checking;
    }
    if (registered && (this.options.drainMs ?? 0) > 0) await this.drain(this.options.drainMs ?? 0);
    if (registered) await this.deregister();
  }

  /** The heartbeat loop of `run`, until `signal` aborts (or a non-retryable failure throws); true when a heartbeat ever succeeded. */
  private async heartbeatUntil(signal: AbortSignal): Promise<boolean> {
    const { client, service } = this.options;
    let failures = 0;
    let registered = false;
    while (!signal.aborted) {
      let wait: number;
      const registration = this.registration();
      try {
        await client.register(service, registration);
        if (!registered)
          this.emit('info', 'registered', {
            ip: this.ip ?? 'auto',
            port: registration.port,
            intervalMs: this.options.intervalMs,
            // `status` is an HTTP status in these lines (see describe); this is the host's.
            hostStatus: this.status,
          });
        else if (failures > 0) this.emit('info', 'heartbeat recovered', { failures });
        registered = true;
        failures = 0;
        if (this.ip === undefined && !this.ipLookupSettled) await this.findOwnAddress();
        wait = this.options.intervalMs * (1 - INTERVAL_JITTER * this.random());
      } catch (error) {
        if (!(error instanceof DiscoveryError)) throw error;
        if (!error.retryable) {
          const reason = error.serverMessage ?? error.message;
          this.emit(
            'error',
            `discovery refused the registration (${error.status ?? error.kind}): ${reason}`,
            describe(error),
          );
          throw error;
        }
        failures += 1;
        wait = this.backoff(failures);
        this.emit('warn', 'heartbeat failed; retrying', {
          attempt: failures,
          retryInMs: Math.round(wait),
          ...describe(error),
        });
      }
      await this.sleep(wait, AbortSignal.any([signal, this.nudge.signal]));
      if (this.nudge.signal.aborted) this.nudge = new AbortController();
    }
    return registered;
  }

  /** The registration as the next heartbeat sends it, with the current status (UP sends none). */
  private registration(status: InstanceStatus = this.status): Registration {
    const { registration } = this.options;
    return status === 'UP' ? registration : { ...registration, status };
  }

  /**
   * Heartbeats DRAINING, then again every interval, for `drainMs`: proxies stop sending new
   * requests while open ones finish. Failures are logged, not retried faster: the stop goes on.
   */
  private async drain(drainMs: number): Promise<void> {
    const { client, service } = this.options;
    const until = Date.now() + drainMs;
    this.emit('info', 'draining', { drainMs });
    const never = new AbortController().signal;
    while (true) {
      try {
        await client.register(service, this.registration('DRAINING'));
      } catch (error) {
        if (!(error instanceof DiscoveryError)) throw error;
        this.emit('warn', 'draining heartbeat failed', describe(error));
      }
      const left = until - Date.now();
      if (left <= 0) return;
      await this.sleep(Math.min(left, this.options.intervalMs), never);
    }
  }

  /** Runs the health check every interval until `signal` aborts. */
  private async runChecks(check: HealthCheck, signal: AbortSignal): Promise<void> {
    // The first check is run by `run` before the first heartbeat.
    while (!signal.aborted) {
      await this.sleep(check.intervalMs, signal);
      if (signal.aborted) return;
      await this.checkOnce(check);
    }
  }

  /**
   * One check: counts failures in a row, and changes the status (heartbeating at once) when it
   * flips. The very first check decides alone: an app failing it was never served, so it starts
   * OUT_OF_SERVICE without waiting for more failures.
   */
  private async checkOnce(check: HealthCheck): Promise<void> {
    const healthy = await check.probe();
    const first = this.firstCheck;
    this.firstCheck = false;
    if (healthy) {
      this.checkFailures = 0;
      if (this.status !== 'UP') this.setStatus('UP', 'health check passed');
      return;
    }
    this.checkFailures++;
    if (this.status === 'UP' && (first || this.checkFailures >= check.failuresBeforeDown))
      this.setStatus('OUT_OF_SERVICE', 'health check failing', {
        check: check.description,
        failures: this.checkFailures,
      });
    else if (this.status === 'UP')
      this.emit('warn', 'health check failed', { check: check.description, failures: this.checkFailures });
  }

  /** True until the first check has run. */
  private firstCheck = true;

  private setStatus(status: InstanceStatus, why: string, fields: Record<string, unknown> = {}): void {
    this.status = status;
    this.emit(status === 'UP' ? 'info' : 'warn', `${why}: heartbeating ${status}`, { hostStatus: status, ...fields });
    this.nudge.abort();
  }

  /** Delay before retry number `attempt` (1-based): doubling from the initial delay up to the cap, then "equal jitter" (half fixed, half random) so retries never bunch near zero. */
  backoff(attempt: number): number {
    const base = Math.min(this.maxBackoffMs, this.initialBackoffMs * 2 ** (attempt - 1));
    return base / 2 + (base / 2) * this.random();
  }

  private async deregister(): Promise<void> {
    const { client, service } = this.options;
    if (this.ip === undefined) {
      this.emit('warn', 'not deregistering: the auto_ip address is unknown; the host expires after HOST_TTL', {});
      return;
    }
    try {
      // Its own instance only: with INSTANCE_KEY=ip_port other instances on this node stay.
      const port = this.options.registration.port;
      await client.deregister(service, this.ip, { port });
      this.emit('info', 'deregistered', { ip: this.ip, port });
    } catch (error) {
      if (!(error instanceof DiscoveryError)) throw error;
      if (error.status === 400)
        this.emit('info', 'already deregistered (expired or deleted)', { ip: this.ip, ...describe(error) });
      else
        this.emit('warn', 'deregistration failed; the host expires after HOST_TTL', {
          ip: this.ip,
          ...describe(error),
        });
    }
  }

  /**
   * With `auto_ip` the registry picks the address and answers only `{}`, so the agent finds
   * its own record (same `instance_id` and port) to know what to delete on stop. Retried after
   * later heartbeats while the registry cannot be asked; given up when no single record matches.
   */
  private async findOwnAddress(): Promise<void> {
    const { client, service, registration } = this.options;
    let list: ServiceHostList;
    try {
      list = await client.list(service);
    } catch (error) {
      if (!(error instanceof DiscoveryError)) throw error;
      this.emit('warn', 'could not look up the auto_ip address; will retry', describe(error));
      return;
    }
    const mine = list.hosts.filter(
      (host) => host.tags.instance_id === registration.tags.instance_id && host.port === registration.port,
    );
    this.ipLookupSettled = true;
    if (mine.length === 1) {
      this.ip = mine[0]!.ip_address;
      this.emit('info', 'auto_ip address found', { ip: this.ip });
    } else {
      this.emit(
        'warn',
        'auto_ip address not identified (no single host with this instance_id and port); will not deregister on stop',
        { matches: mine.length },
      );
    }
  }

  private emit(level: AgentLogEntry['level'], msg: string, fields: Record<string, unknown>): void {
    this.log({ time: this.now().toISOString(), level, msg, service: this.options.service, ...fields });
  }
}

function describe(error: DiscoveryError): Record<string, unknown> {
  return { kind: error.kind, status: error.status, error: error.serverMessage ?? error.message };
}

async function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  try {
    await delay(ms, undefined, { signal });
  } catch (error) {
    if (!signal.aborted) throw error;
  }
}
