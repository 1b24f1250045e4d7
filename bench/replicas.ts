import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { TYPE_URL, xdsProtos } from '../src/xds/protos.js';
import { startEmbeddedDynamoDb } from '../src/store/dynamodb/embedded-dynalite.js';
import { RawXdsStream, type WireResponse } from '../test/helpers/ads-client.js';
import { startDiscovery, type DiscoveryProcess } from '../test/helpers/discovery-process.js';
import { CountingDynamoDbProxy } from '../test/helpers/dynamodb-proxy.js';
import { freshTableName } from '../test/helpers/dynamodb.js';
import { summarise, type Summary } from './lib/latency-summary.js';

/**
 * What replicas on one table cost and how fast they hear of each other (issue 15, item 1):
 *
 *   npm run bench:replicas
 *   node dist/bench/replicas.js --services 1000 --idle-seconds 30 --changes 100
 *
 * Two discovery processes (A and B) on one dynalite (in this process), each talking to it
 * through its own call-counting HTTP proxy, so the calls are counted from outside, as a bill
 * counts them. The xDS clients run in this process. Each run is done twice, side by side: with
 * the change feed (the default) and with `CHANGE_FEED=false` (every watched service re-read
 * every XDS_POLL_INTERVAL_MS, the behaviour before it).
 *
 * - Idle: `services` services with one host each, every one watched over ADS on both replicas;
 *   nothing is written for `idleSeconds`: DynamoDB calls per second of each replica.
 * - Cross-replica latency: a stream on B watches one service; `changes` hosts are registered on
 *   A one after another; time from the POST being sent until B's stream has the host.
 */
export interface ReplicaBenchOptions {
  readonly services: number;
  readonly idleSeconds: number;
  readonly changes: number;
  readonly timeoutMs: number;
}

export interface ReplicaRun {
  readonly changeFeed: boolean;
  /** DynamoDB calls per second of each replica while nothing changed. */
  readonly idleCallsPerSecond: readonly [number, number];
  /** Calls while idle by replica and operation, `A Query` and so on. */
  readonly idleByOperation: Record<string, number>;
  readonly crossReplica: Summary;
}

export type { Summary } from './lib/latency-summary.js';

const DEFAULTS: ReplicaBenchOptions = { services: 1000, idleSeconds: 30, changes: 100, timeoutMs: 600_000 };

function prefixed(replica: string, counts: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(counts).map(([operation, count]) => [`${replica} ${operation}`, count]));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function ipOf(index: number): string {
  return `10.${Math.floor(index / 65536) % 250}.${Math.floor(index / 256) % 256}.${index % 256}`;
}

async function register(url: string, service: string, ip: string): Promise<void> {
  const response = await fetch(`${url}/v1/registration/${service}`, {
    method: 'POST',
    body: new URLSearchParams({
      ip,
      port: '8080',
      revision: 'r1',
      tags: JSON.stringify({ az: 'a', region: 'r', instance_id: `i-${ip}` }),
    }),
  });
  if (response.status !== 200) throw new Error(`registration answered ${response.status}: ${await response.text()}`);
}

function xdsPortOf(discovery: DiscoveryProcess): number {
  for (const line of discovery.stdout) {
    const match = /xDS control plane listening on port (\d+)/.exec(line);
    if (match) return Number(match[1]);
  }
  throw new Error(`no xDS port in the log:\n${discovery.output()}`);
}

/** An ADS stream watching `names` over EDS that tracks each cluster's endpoints; every response ACKed. */
class Watch {
  private readonly client: grpc.Client;
  private readonly stream: RawXdsStream;
  readonly endpoints = new Map<string, Set<string>>();
  private readonly waiters = new Set<() => void>();

  constructor(port: number, names: string[]) {
    this.client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
    });
    this.stream = new RawXdsStream(this.client);
    const type = xdsProtos().typeOf(TYPE_URL.clusterLoadAssignment)!;
    this.stream.onResponse = (response: WireResponse) => {
      this.stream.ack(response, names);
      for (const resource of response.resources) {
        const cla = type.decode(resource.value) as unknown as {
          cluster_name: string;
          endpoints: { lb_endpoints: { endpoint: { address: { socket_address: { address: string } } } }[] }[];
        };
        const ips = new Set<string>();
        for (const locality of cla.endpoints)
          for (const lb of locality.lb_endpoints) ips.add(lb.endpoint.address.socket_address.address);
        this.endpoints.set(cla.cluster_name, ips);
      }
      for (const waiter of [...this.waiters]) waiter();
    };
    this.stream.send({ type_url: TYPE_URL.clusterLoadAssignment, resource_names: names, node: { id: 'bench' } });
  }

  /** Resolves at performance.now() when `check` first holds after a response. */
  until(check: () => boolean, timeoutMs: number, what: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const done = () => {
        if (!check()) return;
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve(performance.now());
      };
      const timer = setTimeout(() => {
        this.waiters.delete(done);
        reject(new Error(`${what}: not within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.add(done);
      done();
    });
  }

  close(): void {
    this.stream.close();
    this.client.close();
  }
}

async function runPair(
  dynamoEndpoint: string,
  changeFeed: boolean,
  options: ReplicaBenchOptions,
  remaining: () => number,
): Promise<ReplicaRun> {
  const proxies = await Promise.all([
    CountingDynamoDbProxy.start(dynamoEndpoint),
    CountingDynamoDbProxy.start(dynamoEndpoint),
  ]);
  const table = freshTableName();
  const replicas: DiscoveryProcess[] = [];
  const watches: Watch[] = [];
  try {
    for (const proxy of proxies) {
      replicas.push(
        await startDiscovery({
          BACKEND_STORAGE: 'DynamoDB',
          DYNAMODB_URL: proxy.endpoint,
          DYNAMODB_TABLE_HOSTS: table,
          DYNAMODB_CREATE_TABLES_IN_APP: 'true',
          // Nothing expires during the run: the idle window is idle.
          HOST_TTL: '3600',
          CHANGE_FEED: String(changeFeed),
          APPLICATION_ENV: 'production',
        }),
      );
    }
    const [a, b] = replicas as [DiscoveryProcess, DiscoveryProcess];
    const names = Array.from({ length: options.services }, (_, index) => `bench-${index}`);
    for (let start = 0; start < names.length; start += 20)
      await Promise.all(
        names.slice(start, start + 20).map((name, offset) => register(a.url, name, ipOf(start + offset))),
      );
    for (const replica of replicas) {
      const watch = new Watch(xdsPortOf(replica), names);
      watches.push(watch);
      await watch.until(() => watch.endpoints.size === names.length, remaining(), 'every service watched');
    }
    // Let the registrations' records, hints and re-reads settle before counting.
    await sleep(5000);
    for (const proxy of proxies) proxy.take();
    await sleep(options.idleSeconds * 1000);
    const taken = proxies.map((proxy) => proxy.take());
    const idleCallsPerSecond = taken.map((calls) => calls.total / options.idleSeconds) as [number, number];

    const cross = new Watch(xdsPortOf(b), ['bench-cross']);
    watches.push(cross);
    await cross.until(() => cross.endpoints.has('bench-cross'), remaining(), 'first response');
    const samples: number[] = [];
    for (let change = 0; change < options.changes; change++) {
      const ip = ipOf(100_000 + change);
      const seen = cross.until(() => cross.endpoints.get('bench-cross')?.has(ip) ?? false, 10_000, `change ${change}`);
      const posted = performance.now();
      await register(a.url, 'bench-cross', ip);
      samples.push((await seen) - posted);
      // Changes spread out, as a fleet makes them, not batched by arriving together.
      await sleep(50 + Math.random() * 150);
    }
    return {
      changeFeed,
      idleCallsPerSecond,
      idleByOperation: {
        ...prefixed('A', taken[0]!.byOperation),
        ...prefixed('B', taken[1]!.byOperation),
      },
      crossReplica: summarise(samples),
    };
  } finally {
    for (const watch of watches) watch.close();
    await Promise.all(replicas.map((replica) => replica.stop()));
    await Promise.all(proxies.map((proxy) => proxy.close()));
  }
}

export async function runReplicaBench(overrides: Partial<ReplicaBenchOptions> = {}): Promise<ReplicaRun[]> {
  const options = { ...DEFAULTS, ...overrides };
  const deadline = Date.now() + options.timeoutMs;
  const remaining = () => Math.max(1, deadline - Date.now());
  const dynamo = await startEmbeddedDynamoDb({});
  try {
    const runs: ReplicaRun[] = [];
    for (const changeFeed of [true, false]) runs.push(await runPair(dynamo.endpoint, changeFeed, options, remaining));
    return runs;
  } finally {
    await dynamo.close();
  }
}

/** The runs as the Markdown table bench/speed-notes.md records. */
export function replicaTable(runs: readonly ReplicaRun[], options: ReplicaBenchOptions): string {
  const format = (s: Summary) => `${s.medianMs.toFixed(0)} ms | ${s.p99Ms.toFixed(0)} ms | ${s.maxMs.toFixed(0)} ms`;
  return [
    `| | DynamoDB calls/s while idle, A / B (${options.services} services watched on each, ${options.idleSeconds} s) | idle calls by operation (A, then B) | write on A -> stream on B: median | p99 | max (${options.changes} changes) |`,
    '|---|---:|---|---:|---:|---:|',
    ...runs.map(
      (run) =>
        `| ${run.changeFeed ? 'change feed (default)' : 'CHANGE_FEED=false (poll every 1 s)'} | ${run.idleCallsPerSecond.map((n) => n.toFixed(2)).join(' / ')} | ${Object.entries(
          run.idleByOperation,
        )
          .map(([operation, count]) => `${operation} ${count}`)
          .join(', ')} | ${format(run.crossReplica)} |`,
    ),
  ].join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values } = parseArgs({
    options: {
      services: { type: 'string' },
      'idle-seconds': { type: 'string' },
      changes: { type: 'string' },
    },
  });
  const options: ReplicaBenchOptions = {
    ...DEFAULTS,
    ...(values.services ? { services: Number(values.services) } : {}),
    ...(values['idle-seconds'] ? { idleSeconds: Number(values['idle-seconds']) } : {}),
    ...(values.changes ? { changes: Number(values.changes) } : {}),
  };
  runReplicaBench(options).then(
    (runs) => {
      process.stdout.write(`${replicaTable(runs, options)}\n`);
      process.exit(0);
    },
    (error: unknown) => {
      process.stderr.write(`replica bench failed: ${error instanceof Error ? error.stack : String(error)}\n`);
      process.exit(1);
    },
  );
}
