import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { composeRegistry, type Registry } from '../../src/compose.js';
import { loadConfig } from '../../src/config.js';
import { RecordingStats } from './stats.js';

/** Counts events under their statsd names instead of sending them. */
export class CountingStats extends RecordingStats {}

export interface RunningRegistry {
  readonly registry: Registry;
  readonly stats: CountingStats;
  /** `http://127.0.0.1:<port>` */
  readonly httpUrl: string;
  readonly xdsPort: number;
  close(): Promise<void>;
}

/**
 * A real discovery process in this one: InMemory storage, the HTTP app on a random loopback
 * port and the xDS gRPC server on another. `env` adds or overrides settings.
 */
export async function startRegistry(env: Record<string, string> = {}): Promise<RunningRegistry> {
  const config = loadConfig({
    BACKEND_STORAGE: 'InMemory',
    LOG_LEVEL: 'error',
    XDS_PORT: '0',
    XDS_LISTEN_ADDRESS: '127.0.0.1',
    XDS_POLL_INTERVAL_MS: '1000',
    ...env,
  });
  const stats = new CountingStats();
  const registry = await composeRegistry(config, pino({ level: 'silent' }), { stats });
  const address = await registry.app.listen({ host: '127.0.0.1', port: 0 });
  const xdsPort = await registry.startXds();
  if (xdsPort === undefined) throw new Error('xDS server not started');
  return { registry, stats, httpUrl: address, xdsPort, close: () => registry.close() };
}

/** Registers (heartbeats) a host through the v1 HTTP API; throws unless the answer is 200. */
export async function register(
  httpUrl: string,
  service: string,
  ip: string,
  port: number,
  tags: Record<string, unknown> = {},
): Promise<void> {
  const response = await fetch(`${httpUrl}/v1/registration/${encodeURIComponent(service)}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      ip,
      port,
      revision: 'r1',
      tags: { az: 'az-1', region: 'region-1', instance_id: `i-${ip}`, ...tags },
    }),
  });
  if (response.status !== 200) throw new Error(`registration answered ${response.status}: ${await response.text()}`);
}

export async function deregister(httpUrl: string, service: string, ip: string): Promise<void> {
  const response = await fetch(`${httpUrl}/v1/registration/${encodeURIComponent(service)}/${ip}`, { method: 'DELETE' });
  if (response.status !== 200) throw new Error(`delete answered ${response.status}: ${await response.text()}`);
}

export const WHO_METHOD = '/discovery.test.Backend/Who';

/** A tiny gRPC backend on `ip` (any 127/8 address) answering WHO_METHOD with its own name. */
export async function startBackend(
  ip: string,
  name: string = ip,
): Promise<{ port: number; calls: () => number; close(): Promise<void> }> {
  const server = new grpc.Server();
  let calls = 0;
  const identity = (value: Buffer) => value;
  server.addService(
    {
      Who: {
        path: WHO_METHOD,
        requestStream: false,
        responseStream: false,
        requestSerialize: identity,
        requestDeserialize: identity,
        responseSerialize: identity,
        responseDeserialize: identity,
      },
    },
    {
      Who: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        calls++;
        callback(null, Buffer.from(name));
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${ip}:0`, grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );
  return {
    port,
    calls: () => calls,
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 1000).unref();
      }),
  };
}

/** One WHO_METHOD call through `client`; resolves with the backend's name or the error's message. */
export function who(client: grpc.Client, deadlineMs = 2000): Promise<{ name?: string; error?: string }> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      WHO_METHOD,
      (value: Buffer) => value,
      (value: Buffer) => value,
      Buffer.alloc(0),
      { deadline: Date.now() + deadlineMs },
      (error, value) => resolve(error ? { error: error.message } : { name: value?.toString() }),
    );
  });
}

/** Polls `check` every `intervalMs` until it returns true; fails after `timeoutMs` naming `what`. */
export async function waitFor(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 10_000,
  intervalMs = 50,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
