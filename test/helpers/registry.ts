import { pino } from 'pino';
import type { Clock } from '../../src/clock.js';
import { composeRegistry, type Registry } from '../../src/compose.js';
import { loadConfig, type Config } from '../../src/config.js';
import type { RegistryStats } from '../../src/stats.js';
import { RecordingStats } from './stats.js';
import type { HostStore } from '../../src/hosts/host-store.js';

export interface RunningRegistry {
  readonly url: string;
  readonly config: Config;
  readonly registry: Registry;
  close(): Promise<void>;
}

export interface StartOptions {
  readonly env?: Record<string, string>;
  readonly clock?: Clock;
  readonly store?: HostStore;
  readonly stats?: RegistryStats;
  readonly serviceRefreshIntervalMs?: number;
  /** false: every request through the Fastify routes (the reference the fast paths are compared with). */
  readonly fastPaths?: boolean;
  /** Readiness's storage probe interval in ms. */
  readonly readinessProbeIntervalMs?: number;
}

export { RecordingStats } from './stats.js';

/** A whole registry listening on a random loopback port, InMemory unless told otherwise. */
export async function startRegistry(options: StartOptions = {}): Promise<RunningRegistry> {
  const config = loadConfig({ BACKEND_STORAGE: 'InMemory', LOG_LEVEL: 'ERROR', ...options.env });
  const registry = await composeRegistry(config, pino({ level: 'silent' }), {
    clock: options.clock,
    store: options.store,
    stats: options.stats ?? new RecordingStats(),
    serviceRefreshIntervalMs: options.serviceRefreshIntervalMs,
    fastPaths: options.fastPaths,
    readinessProbeIntervalMs: options.readinessProbeIntervalMs,
  });
  await registry.app.listen({ port: 0, host: '127.0.0.1' });
  // As main does once every listener is up (this registry runs no xDS gRPC server).
  registry.readiness.markStarted();
  const address = registry.app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  return { url: `http://127.0.0.1:${address.port}`, config, registry, close: () => registry.close() };
}

export const TAGS = { az: 'us-east-1a', region: 'us-east-1', instance_id: 'i-0a1b2c' };

/** A heartbeat as the original's clients send it: form-encoded, tags a JSON string. */
export function form(fields: Record<string, string | number | object | undefined>): URLSearchParams {
  const body = new URLSearchParams();
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    body.append(key, typeof value === 'object' ? JSON.stringify(value) : String(value));
  }
  return body;
}

export async function register(
  url: string,
  service: string,
  fields: Record<string, string | number | object | undefined> = {},
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
