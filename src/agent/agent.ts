import { setTimeout as delay } from 'node:timers/promises';
import { DiscoveryError, type Registration, type ServiceHostList } from '../client/discovery-client.js';

/** First retry delay after a failed heartbeat: quick enough to ride out a blip or a registry restart. */
export const DEFAULT_INITIAL_BACKOFF_MS = 1_000;
/** Retry delays never grow past this (nor past the heartbeat interval), so a host re-registers soon after an outage ends. */
export const DEFAULT_MAX_BACKOFF_MS = 30_000;
/** Heartbeats start up to this fraction of the interval early, so a fleet restarted at once does not heartbeat in lockstep; never late, so the interval stays a promise against HOST_TTL. */
const INTERVAL_JITTER = 0.1;

/** What the agent needs of a client; `DiscoveryClient` has it. */
export interface AgentClient {
  register(service: string, registration: Registration): Promise<void>;
  deregister(service: string, ip: string): Promise<void>;
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
    const { client, service, registration } = this.options;
    let failures = 0;
    let registered = false;
    while (!signal.aborted) {
      let wait: number;
      try {
        await client.register(service, registration);
        if (!registered)
          this.emit('info', 'registered', {
            ip: this.ip ?? 'auto',
            port: registration.port,
            intervalMs: this.options.intervalMs,
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
      await this.sleep(wait, signal);
    }
    if (registered) await this.deregister();
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
      await client.deregister(service, this.ip);
      this.emit('info', 'deregistered', { ip: this.ip });
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
