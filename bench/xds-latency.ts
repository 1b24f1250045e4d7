import { pathToFileURL } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { TYPE_URL, xdsProtos } from '../src/xds/protos.js';
import { RawXdsStream, type WireResponse } from '../test/helpers/ads-client.js';
import { hostAt, registerOrThrow, startRegistry, type RunningRegistry } from '../test/helpers/registry.js';
import { summarise, type Summary } from './lib/latency-summary.js';

/**
 * How fast registrations reach xDS clients, and how many ADS streams one process holds.
 *
 *   npm run bench:xds                      # the documented run (docs/xds.md)
 *   node dist/bench/xds-latency.js --changes 200 --streams 1000 --services 100 --fanout-changes 20
 *
 * Everything runs in this one process on loopback (registry, HTTP, gRPC server and the clients),
 * so client-side decoding competes with the server for the CPU: the figures are pessimistic.
 */
export interface BenchOptions {
  /** Sequential registrations timed one by one (latency part). */
  readonly changes: number;
  /** Concurrent ADS streams (fan-out part). */
  readonly streams: number;
  /** Services every stream watches over EDS. */
  readonly services: number;
  /** Registrations pushed to every stream, timed to the last stream. */
  readonly fanoutChanges: number;
  /** Streams per gRPC connection, as a proxy fleet would spread them over many. */
  readonly streamsPerChannel: number;
  /** Hard bound on the whole run. */
  readonly timeoutMs: number;
}

export interface BenchResult {
  readonly latency: Summary;
  readonly latencyFromPost: Summary;
  readonly fanout: Summary;
  readonly fanoutFromPost: Summary;
  readonly streams: number;
  readonly services: number;
  readonly setupMs: number;
}

export type { Summary } from './lib/latency-summary.js';

const DEFAULTS: BenchOptions = {
  changes: 200,
  streams: 1000,
  services: 100,
  fanoutChanges: 50,
  streamsPerChannel: 100,
  timeoutMs: 300_000,
};

/** `ip:port` of every endpoint in the ClusterLoadAssignments of a response. */
function endpointsIn(response: WireResponse): Set<string> {
  const type = xdsProtos().typeOf(TYPE_URL.clusterLoadAssignment);
  const out = new Set<string>();
  for (const resource of response.resources) {
    const cla = type!.decode(resource.value) as unknown as {
      endpoints: {
        lb_endpoints: { endpoint: { address: { socket_address: { address: string; port_value: number } } } }[];
      }[];
    };
    for (const locality of cla.endpoints) {
      for (const lb of locality.lb_endpoints)
        out.add(`${lb.endpoint.address.socket_address.address}:${lb.endpoint.address.socket_address.port_value}`);
    }
  }
  return out;
}

/** Resolves when `predicate` holds, checked on every response of `stream`; rejects after `timeoutMs`. */
function awaitResponse(
  stream: RawXdsStream,
  names: string[],
  predicate: (response: WireResponse) => boolean,
  timeoutMs: number,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no matching response within ${timeoutMs} ms`)), timeoutMs);
    const previous = stream.onResponse;
    // Every response is ACKed with the same names, as a client that keeps its subscription.
    stream.onResponse = (response) => {
      stream.ack(response, names);
      if (predicate(response)) {
        clearTimeout(timer);
        stream.onResponse = previous;
        resolve(performance.now());
      }
    };
  });
}

export async function runXdsBench(overrides: Partial<BenchOptions> = {}): Promise<BenchResult> {
  const options = { ...DEFAULTS, ...overrides };
  const deadline = Date.now() + options.timeoutMs;
  const remaining = () => Math.max(1, deadline - Date.now());
  const running: RunningRegistry = await startRegistry({ xds: true, env: { LOG_LEVEL: 'error' } });
  const channels: grpc.Client[] = [];
  const newChannel = () => {
    // Distinct channel options keep grpc-js from sharing one connection between the clients.
    const channel = new grpc.Client(`127.0.0.1:${running.xdsPort}`, grpc.credentials.createInsecure(), {
      'bench.channel': channels.length,
    });
    channels.push(channel);
    return channel;
  };
  const streams: RawXdsStream[] = [];
  try {
    // Latency: one client watching one service; each registration adds a host it must see.
    const watcher = new RawXdsStream(newChannel());
    streams.push(watcher);
    const names = ['bench-latency'];
    watcher.send({ type_url: TYPE_URL.clusterLoadAssignment, resource_names: names, node: { id: 'bench-latency' } });
    watcher.ack(await watcher.next(remaining()), names);
    const latency: number[] = [];
    const fromPost: number[] = [];
    for (let i = 0; i < options.changes; i++) {
      const ip = `10.${200 + Math.floor(i / 65536)}.${Math.floor(i / 256) % 256}.${i % 256}`;
      const seen = awaitResponse(watcher, names, (response) => endpointsIn(response).has(`${ip}:8080`), remaining());
      const posted = performance.now();
      await registerOrThrow(running.url, 'bench-latency', hostAt(ip, 8080));
      const answered = performance.now();
      const at = await seen;
      // The push can beat the HTTP answer to the client; that counts as 0, not negative.
      latency.push(Math.max(0, at - answered));
      fromPost.push(at - posted);
    }

    // Fan-out: many streams, each watching every service over EDS, as an Envoy with that many clusters.
    const setupStarted = performance.now();
    const services = Array.from({ length: options.services }, (_, index) => `bench-svc-${index}`);
    for (const [index, service] of services.entries())
      await registerOrThrow(running.url, service, hostAt(`10.100.${Math.floor(index / 256)}.${index % 256}`, 8080));
    let channel = newChannel();
    const ready: Promise<unknown>[] = [];
    for (let index = 0; index < options.streams; index++) {
      if (index > 0 && index % options.streamsPerChannel === 0) channel = newChannel();
      const stream = new RawXdsStream(channel);
      streams.push(stream);
      stream.onResponse = (response) => stream.ack(response, services);
      stream.send({
        type_url: TYPE_URL.clusterLoadAssignment,
        resource_names: services,
        node: { id: `bench-${index}` },
      });
      ready.push(stream.next(remaining()));
    }
    await Promise.all(ready);
    const setupMs = performance.now() - setupStarted;
    const fanout: number[] = [];
    const fanoutFromPost: number[] = [];
    for (let change = 0; change < options.fanoutChanges; change++) {
      const service = services[change % services.length]!;
      const ip = `10.150.${Math.floor(change / 256)}.${change % 256}`;
      const fanoutStreams = streams.slice(1);
      const seen = fanoutStreams.map((stream) =>
        awaitResponse(stream, services, (response) => endpointsIn(response).has(`${ip}:8080`), remaining()),
      );
      const posted = performance.now();
      await registerOrThrow(running.url, service, hostAt(ip, 8080));
      const answered = performance.now();
      const times = await Promise.all(seen);
      // Time until the last of the streams had it: what "every subscriber within 1 s" means.
      fanout.push(Math.max(0, Math.max(...times) - answered));
      fanoutFromPost.push(Math.max(...times) - posted);
    }
    return {
      latency: summarise(latency),
      latencyFromPost: summarise(fromPost),
      fanout: summarise(fanout),
      fanoutFromPost: summarise(fanoutFromPost),
      streams: options.streams,
      services: options.services,
      setupMs,
    };
  } finally {
    for (const stream of streams) stream.close();
    for (const channel of channels) channel.close();
    await running.close();
  }
}

function format(summary: Summary): string {
  return `${summary.medianMs.toFixed(1)} ms | ${summary.p99Ms.toFixed(1)} ms | ${summary.maxMs.toFixed(1)} ms | ${summary.count}`;
}

/** The result as the markdown table docs/xds.md shows. */
export function resultTable(result: BenchResult): string {
  return [
    '| measure | median | p99 | max | samples |',
    '|---|---|---|---|---|',
    `| registration 200 -> client has the endpoint | ${format(result.latency)} |`,
    `| registration POST sent -> client has the endpoint | ${format(result.latencyFromPost)} |`,
    `| registration 200 -> last of ${result.streams} ADS streams (each watching ${result.services} services) has it | ${format(result.fanout)} |`,
    `| registration POST sent -> last of ${result.streams} ADS streams has it | ${format(result.fanoutFromPost)} |`,
    '',
    `${result.streams} streams connected and received ${result.services} ClusterLoadAssignments each in ${(result.setupMs / 1000).toFixed(1)} s.`,
  ].join('\n');
}

function parseArgs(argv: readonly string[]): Partial<BenchOptions> {
  const names: Record<string, keyof BenchOptions> = {
    '--changes': 'changes',
    '--streams': 'streams',
    '--services': 'services',
    '--fanout-changes': 'fanoutChanges',
    '--streams-per-channel': 'streamsPerChannel',
    '--timeout-ms': 'timeoutMs',
  };
  const out: Partial<Record<keyof BenchOptions, number>> = {};
  for (let index = 0; index < argv.length; index += 2) {
    const key = names[argv[index] ?? ''];
    const value = Number(argv[index + 1]);
    if (!key || !Number.isInteger(value) || value <= 0)
      throw new Error(`usage: xds-latency [${Object.keys(names).join(' N] [')} N]`);
    out[key] = value;
  }
  return out;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const options = parseArgs(process.argv.slice(2));
  runXdsBench(options).then(
    (result) => {
      process.stdout.write(`${resultTable(result)}\n`);
      process.exit(0);
    },
    (error: unknown) => {
      process.stderr.write(`xds bench failed: ${error instanceof Error ? error.stack : String(error)}\n`);
      process.exit(1);
    },
  );
}
