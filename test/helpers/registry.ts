import { pino } from 'pino';
import type { Clock } from '../../src/clock.js';
import { composeRegistry, type ComposeOverrides, type Registry } from '../../src/compose.js';
import { loadConfig, type Config } from '../../src/config.js';
import type { HostStore } from '../../src/hosts/host-store.js';
import { RecordingStats } from './stats.js';

/**
 * The one test harness: a whole registry composed by `composeRegistry` (the production
 * composition root) in this process, listening on loopback ports. Tests that need a separate
 * process use `startDiscovery` (helpers/discovery-process.ts), which runs the built main.
 */
export interface RunningRegistry {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly config: Config;
  readonly registry: Registry;
  /** What the registry counted: the `stats` option, or a fresh RecordingStats. */
  readonly stats: RecordingStats;
  /** The xDS gRPC port; throws unless started with `xds: true`. */
  readonly xdsPort: number;
  close(): Promise<void>;
}

export interface StartOptions {
  /** Settings as the environment gives them; over InMemory storage and ERROR logging. */
  readonly env?: Record<string, string>;
  readonly clock?: Clock;
  readonly store?: HostStore;
  readonly stats?: RecordingStats;
  readonly serviceRefreshIntervalMs?: number;
  /** false: every request through the Fastify routes (the reference the fast paths are compared with). */
  readonly fastPaths?: boolean;
  /** Readiness's storage probe interval in ms. */
  readonly readinessProbeIntervalMs?: number;
  /** Also bind the xDS gRPC server, on a random loopback port (`xdsPort`). */
  readonly xds?: boolean;
  /** Run on the app's root before its routes. */
  readonly beforeRoutes?: ComposeOverrides['beforeRoutes'];
  /** The registry's log level (pino's names; default silent). */
  readonly logLevel?: string;
}

export interface ComposedRegistry {
  readonly config: Config;
  readonly registry: Registry;
  readonly stats: RecordingStats;
}

/**
 * The registry as `composeRegistry` wires it for production, with the test's settings and
 * overrides, not yet listening (its app not yet ready: routes and hooks may still be added).
 */
export async function composeTestRegistry(options: StartOptions = {}): Promise<ComposedRegistry> {
  const xdsDefaults = options.xds ? { XDS_PORT: '0', XDS_LISTEN_ADDRESS: '127.0.0.1' } : {};
  const config = loadConfig({ BACKEND_STORAGE: 'InMemory', LOG_LEVEL: 'ERROR', ...xdsDefaults, ...options.env });
  const stats = options.stats ?? new RecordingStats();
  const registry = await composeRegistry(config, pino({ level: options.logLevel ?? 'silent' }), {
    clock: options.clock,
    store: options.store,
    stats,
    serviceRefreshIntervalMs: options.serviceRefreshIntervalMs,
    fastPaths: options.fastPaths,
    readinessProbeIntervalMs: options.readinessProbeIntervalMs,
    beforeRoutes: options.beforeRoutes,
  });
  return { config, registry, stats };
}

export { RecordingStats } from './stats.js';

/** A whole registry listening on a random loopback port, InMemory unless told otherwise. */
export async function startRegistry(options: StartOptions = {}): Promise<RunningRegistry> {
  const { config, registry, stats } = await composeTestRegistry(options);
  const xdsPort = options.xds ? await registry.startXds() : undefined;
  await registry.app.listen({ port: 0, host: '127.0.0.1' });
  // As main does once every listener is up.
  registry.readiness.markStarted();
  const address = registry.app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  return {
    url: `http://127.0.0.1:${address.port}`,
    config,
    registry,
    stats,
    get xdsPort(): number {
      if (xdsPort === undefined) throw new Error('the xDS server was not started: pass `xds: true`');
      return xdsPort;
    },
    close: () => registry.close(),
  };
}

export const TAGS = { az: 'us-east-1a', region: 'us-east-1', instance_id: 'i-0a1b2c' };

type Fields = Record<string, string | number | object | undefined>;

/** A heartbeat as the original's clients send it: form-encoded, tags a JSON string. */
export function form(fields: Fields): URLSearchParams {
  const body = new URLSearchParams();
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    body.append(key, typeof value === 'object' ? JSON.stringify(value) : String(value));
  }
  return body;
}

/**
 * One heartbeat through the v1 HTTP API, form-encoded; `fields` override a default host
 * (10.0.3.17:9211 with TAGS). Resolves with the answer, whatever its status.
 */
export async function register(
  url: string,
  service: string,
  fields: Fields = {},
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(`${url}/v1/registration/${encodeURIComponent(service)}`, {
    method: 'POST',
    body: form({
      ip: '10.0.3.17',
      port: 9211,
      revision: '2f1c0e9',
      service_repo_name: 'users-repo',
      tags: TAGS,
      ...fields,
    }),
    headers,
  });
}

/**
 * The fields of a host at `ip:port` in locality region-1/az-1 (`tags` add or override), for
 * tests that register many hosts and read them back by address (xDS endpoints, localities).
 */
export function hostAt(ip: string, port: number, tags: Record<string, unknown> = {}): Fields {
  return { ip, port, revision: 'r1', tags: { az: 'az-1', region: 'region-1', instance_id: `i-${ip}`, ...tags } };
}

/** `register`, for a set-up step: throws unless the answer is 200. */
export async function registerOrThrow(url: string, service: string, fields: Fields = {}): Promise<void> {
  const response = await register(url, service, fields);
  if (response.status !== 200) throw new Error(`registration answered ${response.status}: ${await response.text()}`);
}

/** Deletes the host at `ip`; throws unless the answer is 200. */
export async function deregister(url: string, service: string, ip: string): Promise<void> {
  const response = await fetch(`${url}/v1/registration/${encodeURIComponent(service)}/${ip}`, { method: 'DELETE' });
  if (response.status !== 200) throw new Error(`delete answered ${response.status}: ${await response.text()}`);
}

export interface HostListBody {
  service?: string;
  service_repo_name?: string;
  env: string;
  hosts: Array<Record<string, unknown> & { ip_address: string; tags: Record<string, unknown> }>;
}

export async function listHosts(url: string, service: string): Promise<HostListBody> {
  const response = await fetch(`${url}/v1/registration/${encodeURIComponent(service)}`);
  if (response.status !== 200) throw new Error(`GET answered ${response.status}`);
  return (await response.json()) as HostListBody;
}

/**
 * Polls `check` every `everyMs` until it returns a value other than undefined and false, and
 * resolves with it; fails after `timeoutMs` naming `what`. The one wait on an observable outcome.
 */
export async function waitFor<T>(
  what: string | (() => string),
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 10_000,
  everyMs = 25,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
