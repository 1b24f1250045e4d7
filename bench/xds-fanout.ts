import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { EDS_METHOD } from '../src/xds/grpc-server.js';
import { TYPE_URL, xdsProtos } from '../src/xds/protos.js';
import { summarise, type Summary } from './lib/latency-summary.js';

/**
 * Fan-out of one registration to many EDS streams held by one registry process, with the
 * clients in other processes (issue 15, item 4: 10,000 streams per process).
 *
 *   npm run bench:fanout                   # 10,000 streams, each watching 10 of 100 services
 *   node dist/bench/xds-fanout.js --services 10      # every change reaches all 10,000 streams
 *   node dist/bench/xds-fanout.js --streams 10000 --services 100 --watch 10 --changes 30 \
 *     --streams-per-channel 100 --clients 1 --bare 1 --timeout-ms 600000      # the defaults
 *
 * Processes: this one orchestrates (POSTs the registrations, reads the server's RSS); the
 * registry runs in a forked child (InMemory backend, HTTP and xDS on loopback); `--clients`
 * forked children open the streams, `--streams-per-channel` per HTTP/2 connection, each stream
 * watching `--watch` services over EDS (state of the world) and ACKing every response. Stream
 * i watches services i, i+1, ... i+watch-1 (mod services), so a change reaches
 * streams * watch / services streams, and only those are waited for.
 *
 * Clock: every process timestamps with `performance.timeOrigin + performance.now()` (the
 * wall clock at process start plus a monotonic offset), so times compare across processes.
 *
 * Figures: for each registration, POST sent (here) -> the last watching stream has a response
 * carrying the new endpoint (stamped in a client as the bytes arrive), and -> the first; the
 * server's VmRSS (and V8 heap) after the streams are open minus before, both read after a full
 * GC in the server, per stream; CPU milliseconds of the server and of the clients per change,
 * which say how much of the time is the clients' (the machine has two cores for all of them).
 * With `--bare 1` the same clients then run against a bare grpc-js server (the EDS method and
 * nothing else) that answers each stream once and holds it: the floor for RSS per stream; it
 * also writes one message to every stream per change, the floor for fan-out latency.
 *
 * Diagnosis: FANOUT_PROFILE=1 writes a CPU profile of the server during the changes (in the
 * working directory), FANOUT_HEAP_SNAPSHOTS=1 a heap snapshot with the streams open;
 * FANOUT_SERVER_NODE_ARGS / FANOUT_CLIENT_NODE_ARGS pass node flags to those children.
 */
export interface FanoutOptions {
  readonly streams: number;
  readonly services: number;
  /** Services each stream watches. */
  readonly watch: number;
  /** Registrations timed one at a time. */
  readonly changes: number;
  readonly streamsPerChannel: number;
  /** Client processes the streams are spread over. */
  readonly clients: number;
  /** 1: also measure a bare grpc-js server holding the same streams (RSS floor). */
  readonly bare: number;
  /** Hard bound on the whole run; children are killed past it. */
  readonly timeoutMs: number;
}

export interface FanoutResult {
  readonly streams: number;
  readonly services: number;
  readonly watch: number;
  readonly clients: number;
  /** Streams that receive each change. */
  readonly watchersPerChange: number;
  readonly last: Summary;
  readonly first: Summary;
  readonly rssBeforeKb: number;
  readonly rssAfterKb: number;
  readonly kbPerStream: number;
  /** The part of it in V8's heap (the rest: http2 sessions, buffers, the allocator). */
  readonly heapKbPerStream: number;
  readonly setupMs: number;
  /** CPU milliseconds per change during the timed phase. */
  readonly serverCpuMsPerChange: number;
  readonly clientCpuMsPerChange: number;
  readonly bare:
    | {
        readonly rssBeforeKb: number;
        readonly rssAfterKb: number;
        readonly kbPerStream: number;
        readonly heapKbPerStream: number;
        /** Message written (bare server) -> the last and the first stream has it: every stream gets every change. */
        readonly last: Summary;
        readonly first: Summary;
        readonly serverCpuMsPerChange: number;
      }
    | undefined;
}

const DEFAULTS: FanoutOptions = {
  streams: 10_000,
  services: 100,
  watch: 10,
  changes: 30,
  streamsPerChannel: 100,
  clients: 1,
  bare: 1,
  timeoutMs: 600_000,
};

/** Streams opened at once per client; each waits for its first response before the next batch, so setup does not burst. */
const OPEN_BATCH = 500;
/** Pause after the streams are open before RSS is read: lets grpc-js and the GC settle. */
const SETTLE_MS = 1_000;
/** Streams the bare server writes to per event-loop turn (the registry's WATCHERS_PER_TURN). */
const PUSH_PER_TURN = 1_000;
/** How long a child may take to exit once told to before it is killed. */
const STOP_GRACE_MS = 5_000;

const now = () => performance.timeOrigin + performance.now();
const SELF = fileURLToPath(import.meta.url);

function serviceName(index: number): string {
  return `fanout-svc-${index}`;
}

/** The services stream `index` watches. */
function watchedBy(index: number, services: number, watch: number): number[] {
  return Array.from({ length: Math.min(watch, services) }, (_, k) => (index + k) % services);
}

function rssKb(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]);
}

type Message = { readonly type: string } & Record<string, unknown>;

/** A forked child of this script in `role`, with request/answer over IPC. */
class Child {
  readonly process: ChildProcess;
  private readonly waiting = new Map<string, ((message: Message) => void)[]>();
  private readonly inbox = new Map<string, Message[]>();
  private readonly exited: Promise<never>;

  constructor(role: string, execArgv: string[] = []) {
    this.process = fork(SELF, ['--role', role], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.process.on('message', (message: Message) => {
      const waiter = this.waiting.get(message.type)?.shift();
      if (waiter) waiter(message);
      else this.inbox.set(message.type, [...(this.inbox.get(message.type) ?? []), message]);
    });
    this.exited = new Promise((_, reject) =>
      this.process.on('exit', (code, signal) => reject(new Error(`${role} child exited (${code ?? signal})`))),
    );
    this.exited.catch(() => undefined);
  }

  get pid(): number {
    return this.process.pid!;
  }

  send(message: Message): void {
    this.process.send(message);
  }

  /** The next message of `type` from the child; rejects if the child exits first. */
  next(type: string): Promise<Message> {
    const queued = this.inbox.get(type)?.shift();
    if (queued) return Promise.resolve(queued);
    return Promise.race([
      new Promise<Message>((resolve) => this.waiting.set(type, [...(this.waiting.get(type) ?? []), resolve])),
      this.exited,
    ]);
  }

  async ask(message: Message, answer: string): Promise<Message> {
    const reply = this.next(answer);
    this.send(message);
    return reply;
  }

  /** Ends the child: it exits when its IPC channel closes (writing any --cpu-prof), or is killed after STOP_GRACE_MS. */
  async stop(): Promise<void> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return;
    const exited = new Promise((resolve) => this.process.once('exit', resolve));
    if (this.process.connected) this.process.disconnect();
    const timer = setTimeout(() => this.process.kill('SIGKILL'), STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
  }
}

async function register(httpUrl: string, service: string, ip: string): Promise<void> {
  const response = await fetch(`${httpUrl}/v1/registration/${encodeURIComponent(service)}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      ip,
      port: 8080,
      revision: 'r1',
      tags: { az: 'az-1', region: 'region-1', instance_id: `i-${ip}` },
    }),
  });
  if (response.status !== 200) throw new Error(`registration answered ${response.status}: ${await response.text()}`);
}

/** Opens every client's share of the streams against `port`; resolves with the setup time. */
async function openStreams(clients: Child[], port: number, options: FanoutOptions): Promise<number> {
  const started = now();
  const share = Math.ceil(options.streams / clients.length);
  await Promise.all(
    clients.map((client, index) =>
      client.ask(
        {
          type: 'open',
          port,
          from: index * share,
          to: Math.min(options.streams, (index + 1) * share),
          services: options.services,
          watch: options.watch,
          streamsPerChannel: options.streamsPerChannel,
        },
        'opened',
      ),
    ),
  );
  return now() - started;
}

/** The server's VmRSS and V8 heap in use, after a full GC. */
async function serverMemory(server: Child): Promise<{ rssKb: number; heapKb: number }> {
  const { heapUsed } = (await server.ask({ type: 'gc' }, 'gced')) as unknown as { heapUsed: number };
  return { rssKb: rssKb(server.pid), heapKb: heapUsed / 1024 };
}

async function cpuMs(child: Child): Promise<number> {
  const usage = (await child.ask({ type: 'cpu' }, 'cpu')) as unknown as { user: number; system: number };
  return (usage.user + usage.system) / 1000;
}

async function measureBare(options: FanoutOptions): Promise<FanoutResult['bare']> {
  const server = new Child('bare-server', ['--expose-gc']);
  const clients = Array.from({ length: options.clients }, () => new Child('client'));
  try {
    const { port } = (await server.next('ready')) as unknown as { port: number };
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    const before = await serverMemory(server);
    await openStreams(clients, port, options);
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    const after = await serverMemory(server);
    // The same changes, each a message the bare server writes to every stream it holds.
    const last: number[] = [];
    const first: number[] = [];
    const serverCpuBefore = await cpuMs(server);
    for (let change = 0; change < options.changes; change++) {
      const ip = `10.160.${Math.floor(change / 256)}.${change % 256}`;
      await Promise.all(clients.map((client) => client.ask({ type: 'arm', change, service: -1, ip }, 'armed')));
      const seen = Promise.all(clients.map((client) => client.next('seen')));
      const sent = now();
      server.send({ type: 'push', ip });
      const reports = (await seen) as unknown as { first: number; last: number; count: number }[];
      last.push(Math.max(...reports.map((report) => report.last)) - sent);
      first.push(Math.min(...reports.map((report) => report.first)) - sent);
    }
    return {
      rssBeforeKb: before.rssKb,
      rssAfterKb: after.rssKb,
      kbPerStream: (after.rssKb - before.rssKb) / options.streams,
      heapKbPerStream: (after.heapKb - before.heapKb) / options.streams,
      last: summarise(last),
      first: summarise(first),
      serverCpuMsPerChange: ((await cpuMs(server)) - serverCpuBefore) / Math.max(1, options.changes),
    };
  } finally {
    await Promise.all([server, ...clients].map((child) => child.stop()));
  }
}

/** Runs the benchmark with the registry and the clients in child processes. */
export async function runFanoutBench(overrides: Partial<FanoutOptions> = {}): Promise<FanoutResult> {
  const options = { ...DEFAULTS, ...overrides };
  const children: Child[] = [];
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`fan-out bench did not finish within ${options.timeoutMs} ms`)),
      options.timeoutMs,
    );
  });
  const run = async (): Promise<FanoutResult> => {
    const server = new Child('server', [
      '--expose-gc',
      ...(process.env.FANOUT_SERVER_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
    ]);
    children.push(server);
    const clientArgs = process.env.FANOUT_CLIENT_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
    const clients = Array.from({ length: options.clients }, () => new Child('client', clientArgs));
    children.push(...clients);
    const { httpUrl, xdsPort } = (await server.next('ready')) as unknown as { httpUrl: string; xdsPort: number };
    for (let index = 0; index < options.services; index++) {
      await register(httpUrl, serviceName(index), `10.100.${Math.floor(index / 256)}.${index % 256}`);
    }
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    const before = await serverMemory(server);
    const setupMs = await openStreams(clients, xdsPort, options);
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    const after = await serverMemory(server);
    if (process.env.FANOUT_HEAP_SNAPSHOTS) {
      process.stderr.write(
        `heap snapshot: ${String((await server.ask({ type: 'heap-snapshot' }, 'heap-snapshot')).file)}\n`,
      );
    }

    if (process.env.FANOUT_PROFILE) await server.ask({ type: 'profile', action: 'start' }, 'profile');
    const serverCpuBefore = await cpuMs(server);
    const clientCpuBefore = await Promise.all(clients.map(cpuMs));
    const last: number[] = [];
    const first: number[] = [];
    for (let change = 0; change < options.changes; change++) {
      const service = change % options.services;
      const ip = `10.150.${Math.floor(change / 256)}.${change % 256}`;
      await Promise.all(clients.map((client) => client.ask({ type: 'arm', change, service, ip }, 'armed')));
      const seen = Promise.all(clients.map((client) => client.next('seen')));
      const posted = now();
      await register(httpUrl, serviceName(service), ip);
      const reports = (await seen) as unknown as { change: number; first: number; last: number; count: number }[];
      const withStreams = reports.filter((report) => report.count > 0);
      if (withStreams.length === 0) continue;
      last.push(Math.max(...withStreams.map((report) => report.last)) - posted);
      first.push(Math.min(...withStreams.map((report) => report.first)) - posted);
    }
    const serverCpu = (await cpuMs(server)) - serverCpuBefore;
    if (process.env.FANOUT_PROFILE) {
      const { file } = await server.ask({ type: 'profile', action: 'stop' }, 'profile');
      process.stderr.write(`server profile of the changes: ${String(file)}\n`);
    }
    const clientCpu = (await Promise.all(clients.map(cpuMs))).reduce(
      (sum, ms, index) => sum + ms - clientCpuBefore[index]!,
      0,
    );
    await Promise.all(children.map((child) => child.stop()));
    children.length = 0;

    const bare = options.bare ? await measureBare(options) : undefined;
    return {
      streams: options.streams,
      services: options.services,
      watch: options.watch,
      clients: options.clients,
      watchersPerChange: Math.round((options.streams * Math.min(options.watch, options.services)) / options.services),
      last: summarise(last),
      first: summarise(first),
      rssBeforeKb: before.rssKb,
      rssAfterKb: after.rssKb,
      kbPerStream: (after.rssKb - before.rssKb) / options.streams,
      heapKbPerStream: (after.heapKb - before.heapKb) / options.streams,
      setupMs,
      serverCpuMsPerChange: serverCpu / Math.max(1, options.changes),
      clientCpuMsPerChange: clientCpu / Math.max(1, options.changes),
      bare,
    };
  };
  try {
    return await Promise.race([run(), timeout]);
  } finally {
    clearTimeout(timer);
    await Promise.all(children.map((child) => child.stop()));
  }
}

function format(summary: Summary): string {
  return `${summary.medianMs.toFixed(1)} ms | ${summary.p99Ms.toFixed(1)} ms | ${summary.maxMs.toFixed(1)} ms | ${summary.count}`;
}

/** The result as a markdown table, then plain lines (`fanout p99:` and `server RSS per stream:` are what the smoke test reads). */
export function fanoutReport(result: FanoutResult): string {
  const bare = result.bare;
  const mb = (kb: number) => (kb / 1024).toFixed(1);
  return [
    `${result.streams} EDS streams (${result.clients} client process${result.clients === 1 ? '' : 'es'}), each watching ${result.watch} of ${result.services} services; each change reaches ${result.watchersPerChange} streams.`,
    '',
    '| measure | median | p99 | max | samples |',
    '|---|---|---|---|---|',
    `| POST sent -> last watching stream has the endpoint | ${format(result.last)} |`,
    `| POST sent -> first watching stream has it | ${format(result.first)} |`,
    ...(bare
      ? [
          `| bare grpc-js server: message written -> last of ${result.streams} streams has it | ${format(bare.last)} |`,
          `| bare grpc-js server: message written -> first stream has it | ${format(bare.first)} |`,
        ]
      : []),
    '',
    `fanout p99: ${result.last.p99Ms.toFixed(1)} ms`,
    `server RSS per stream: ${result.kbPerStream.toFixed(2)} KB (${mb(result.rssBeforeKb)} MB before the streams, ${mb(result.rssAfterKb)} MB after; V8 heap ${result.heapKbPerStream.toFixed(2)} KB of it)`,
    ...(bare
      ? [
          `bare grpc-js server RSS per stream: ${bare.kbPerStream.toFixed(2)} KB (${mb(bare.rssBeforeKb)} MB before, ${mb(bare.rssAfterKb)} MB after; V8 heap ${bare.heapKbPerStream.toFixed(2)} KB of it)`,
        ]
      : []),
    `CPU per change: server ${result.serverCpuMsPerChange.toFixed(1)} ms${bare ? ` (bare grpc-js server ${bare.serverCpuMsPerChange.toFixed(1)} ms)` : ''}, clients ${result.clientCpuMsPerChange.toFixed(1)} ms; streams opened in ${(result.setupMs / 1000).toFixed(1)} s`,
  ].join('\n');
}

function parseArgs(argv: readonly string[]): Partial<FanoutOptions> {
  const names: Record<string, keyof FanoutOptions> = {
    '--streams': 'streams',
    '--services': 'services',
    '--watch': 'watch',
    '--changes': 'changes',
    '--streams-per-channel': 'streamsPerChannel',
    '--clients': 'clients',
    '--bare': 'bare',
    '--timeout-ms': 'timeoutMs',
  };
  const out: Partial<Record<keyof FanoutOptions, number>> = {};
  for (let index = 0; index < argv.length; index += 2) {
    const key = names[argv[index] ?? ''];
    const value = Number(argv[index + 1]);
    if (!key || !Number.isInteger(value) || value < 0 || (value === 0 && key !== 'bare'))
      throw new Error(`usage: xds-fanout [${Object.keys(names).join(' N] [')} N]`);
    out[key] = value;
  }
  return out;
}

// ---- children ----

let profiler: import('node:inspector').Session | undefined;

/** Starts the inspector's CPU profiler, or stops it and writes the profile; resolves with the file written. */
async function profile(start: boolean): Promise<string> {
  const inspector = await import('node:inspector');
  const post = (method: string) =>
    new Promise<unknown>((resolve, reject) =>
      profiler!.post(method, (error, result) => (error ? reject(error) : resolve(result))),
    );
  if (start) {
    profiler = new inspector.Session();
    profiler.connect();
    await post('Profiler.enable');
    await post('Profiler.start');
    return '';
  }
  const { profile: data } = (await post('Profiler.stop')) as { profile: unknown };
  const file = `fanout-${process.pid}.cpuprofile`;
  const { writeFileSync } = await import('node:fs');
  writeFileSync(file, JSON.stringify(data));
  return file;
}

/** Every child ends with its parent. */
function childBasics(): void {
  process.on('disconnect', () => process.exit(0));
  process.on('message', (message: Message) => {
    if (message.type === 'cpu') process.send!({ type: 'cpu', ...process.cpuUsage(), split: process.cpuUsage() });
    if (message.type === 'profile') {
      // Diagnosis only (FANOUT_PROFILE=1): a CPU profile of the timed changes alone.
      void profile(message.action === 'start').then((file) => process.send!({ type: 'profile', file }));
    }
    if (message.type === 'heap-snapshot') {
      // Diagnosis only (FANOUT_HEAP_SNAPSHOTS=1): where the memory of the streams is.
      void import('node:v8').then((v8) => process.send!({ type: 'heap-snapshot', file: v8.writeHeapSnapshot() }));
    }
    if (message.type === 'gc') {
      (globalThis as { gc?: () => void }).gc?.();
      process.send!({ type: 'gced', heapUsed: process.memoryUsage().heapUsed });
    }
  });
}

async function serverRole(): Promise<void> {
  childBasics();
  const { startRegistry } = await import('../test/helpers/registry.js');
  const running = await startRegistry({ xds: true, env: { LOG_LEVEL: 'error', XDS_POLL_INTERVAL_MS: '60000' } });
  process.send!({ type: 'ready', httpUrl: running.url, xdsPort: running.xdsPort });
}

/** A grpc-js server with the EDS method and nothing else: answers each stream's first request with a small message and holds the stream. */
async function bareServerRole(): Promise<void> {
  childBasics();
  const server = new grpc.Server();
  const identity = (value: Buffer) => value;
  const held = new Set<grpc.ServerDuplexStream<Buffer, Buffer>>();
  const answer = Buffer.from(
    xdsProtos()
      .discoveryResponse.encode({ version_info: 'v', type_url: TYPE_URL.clusterLoadAssignment, nonce: '1' })
      .finish(),
  );
  server.addService(
    {
      StreamEndpoints: {
        path: EDS_METHOD,
        requestStream: true,
        responseStream: true,
        requestSerialize: identity,
        requestDeserialize: identity,
        responseSerialize: identity,
        responseDeserialize: identity,
      },
    },
    {
      StreamEndpoints: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
        held.add(call);
        let answered = false;
        call.on('data', () => {
          if (!answered) call.write(answer);
          answered = true;
        });
        call.on('error', () => held.delete(call));
        call.on('close', () => held.delete(call));
      },
    },
  );
  process.on('message', (message: Message) => {
    if (message.type !== 'push') return;
    const protos = xdsProtos();
    const assignment = protos.typeOf(TYPE_URL.clusterLoadAssignment)!;
    const value = assignment
      .encode(
        assignment.fromObject({
          cluster_name: 'bare',
          endpoints: [
            {
              lb_endpoints: [
                { endpoint: { address: { socket_address: { address: message.ip as string, port_value: 8080 } } } },
              ],
            },
          ],
        }),
      )
      .finish();
    const bytes = Buffer.from(
      protos.discoveryResponse
        .encode({
          version_info: String(message.ip),
          resources: [{ type_url: TYPE_URL.clusterLoadAssignment, value }],
          type_url: TYPE_URL.clusterLoadAssignment,
          nonce: String(message.ip),
        })
        .finish(),
    );
    // One message for every stream, written PUSH_PER_TURN per event-loop turn as the registry does.
    const calls = [...held];
    const write = (from: number) => {
      const to = Math.min(calls.length, from + PUSH_PER_TURN);
      for (let index = from; index < to; index++) calls[index]!.write(bytes);
      if (to < calls.length) setImmediate(() => write(to));
    };
    write(0);
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );
  process.send!({ type: 'ready', port });
}

/** A protobuf varint. */
function varint(value: number): number[] {
  const bytes: number[] = [];
  while (value > 0x7f) {
    bytes.push((value & 0x7f) | 0x80);
    value >>>= 7;
  }
  bytes.push(value);
  return bytes;
}

/** A length-delimited protobuf field: tag, length, bytes. */
function lengthDelimited(field: number, bytes: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([(field << 3) | 2, ...varint(bytes.length)]), bytes]);
}

/** A gRPC message frame: uncompressed flag, 4-byte big-endian length, the message. */
function grpcFrame(message: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt32BE(message.length, 1);
  return Buffer.concat([header, message]);
}

/** `version_info` (field 1) and `nonce` (field 5) of an encoded DiscoveryResponse, as raw bytes; nothing else is decoded. */
function versionAndNonce(message: Buffer): { version: Buffer; nonce: Buffer } {
  let version: Buffer = Buffer.alloc(0);
  let nonce: Buffer = Buffer.alloc(0);
  let offset = 0;
  const read = () => {
    let value = 0;
    let shift = 0;
    for (;;) {
      const byte = message[offset++]!;
      value += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return value;
      shift += 7;
    }
  };
  while (offset < message.length) {
    const tag = read();
    const wire = tag & 7;
    if (wire === 0) read();
    else if (wire === 2) {
      const length = read();
      const field = tag >>> 3;
      if (field === 1) version = message.subarray(offset, offset + length);
      else if (field === 5) nonce = message.subarray(offset, offset + length);
      offset += length;
    } else if (wire === 5) offset += 4;
    else if (wire === 1) offset += 8;
    else throw new Error(`unexpected wire type ${wire}`);
  }
  return { version, nonce };
}

interface ClientStream {
  readonly services: ReadonlySet<number>;
  /** The change this stream last counted, so a change counts once per stream. */
  seenChange: number;
}

/**
 * Holds streams and reports, per armed change, when the first and the last of its streams that
 * watch the changed service had a response carrying the new endpoint. It speaks gRPC over
 * node:http2 directly (a grpc-js client costs several times the CPU per message, which on this
 * two-core machine is taken from the server under test). Responses are matched on their raw
 * bytes (the address as a length-prefixed protobuf string) and ACKed with their version and
 * nonce copied into a request whose other fields are encoded once per stream.
 */
function clientRole(): void {
  childBasics();
  const protos = xdsProtos();
  const sessions: http2.ClientHttp2Session[] = [];
  const streams: ClientStream[] = [];
  let armed:
    { change: number; pattern: Buffer; expected: number; count: number; first: number; last: number } | undefined;
  const finish = () => {
    if (!armed) return;
    process.send!({ type: 'seen', change: armed.change, first: armed.first, last: armed.last, count: armed.count });
    armed = undefined;
  };
  const open = (index: number, port: number, services: number, watch: number, perChannel: number, local: number) => {
    if (local % perChannel === 0) {
      const session = http2.connect(`http://127.0.0.1:${port}`);
      session.on('error', () => undefined);
      sessions.push(session);
    }
    const watched = watchedBy(index, services, watch);
    const names = watched.map(serviceName);
    const stream: ClientStream = { services: new Set(watched), seenChange: -1 };
    const base = Buffer.from(
      protos.discoveryRequest.encode({ type_url: TYPE_URL.clusterLoadAssignment, resource_names: names }).finish(),
    );
    const call = sessions.at(-1)!.request({
      ':method': 'POST',
      ':path': EDS_METHOD,
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    call.on('error', () => undefined);
    let firstResponse: (() => void) | undefined;
    const opened = new Promise<void>((resolve) => (firstResponse = resolve));
    let pending: Buffer = Buffer.alloc(0);
    const onMessage = (message: Buffer, at: number) => {
      if (armed && stream.seenChange !== armed.change && message.indexOf(armed.pattern) >= 0) {
        stream.seenChange = armed.change;
        armed.count++;
        armed.first = Math.min(armed.first, at);
        armed.last = Math.max(armed.last, at);
      }
      const { version, nonce } = versionAndNonce(message);
      // DiscoveryRequest: version_info is field 1, response_nonce field 5.
      call.write(grpcFrame(Buffer.concat([base, lengthDelimited(1, version), lengthDelimited(5, nonce)])));
      firstResponse?.();
      firstResponse = undefined;
      if (armed && armed.count === armed.expected) finish();
    };
    call.on('data', (chunk: Buffer) => {
      const at = now();
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      while (pending.length >= 5) {
        const length = pending.readUInt32BE(1);
        if (pending.length < 5 + length) break;
        const message = pending.subarray(5, 5 + length);
        pending = pending.subarray(5 + length);
        onMessage(message, at);
      }
    });
    const node = lengthDelimited(
      2,
      protos.root
        .lookupType('envoy.config.core.v3.Node')
        .encode({ id: `fanout-${index}` })
        .finish(),
    );
    call.write(grpcFrame(Buffer.concat([base, node])));
    streams.push(stream);
    return opened;
  };
  process.on('message', (message: Message) => {
    if (message.type === 'open') {
      const { port, from, to, services, watch, streamsPerChannel } = message as unknown as Record<string, number>;
      void (async () => {
        for (let start = from!; start < to!; start += OPEN_BATCH) {
          const batch: Promise<void>[] = [];
          for (let index = start; index < Math.min(to!, start + OPEN_BATCH); index++) {
            batch.push(open(index, port!, services!, watch!, streamsPerChannel!, index - from!));
          }
          await Promise.all(batch);
        }
        process.send!({ type: 'opened', count: to! - from! });
      })();
    } else if (message.type === 'arm') {
      const { change, service, ip } = message as unknown as { change: number; service: number; ip: string };
      const address = Buffer.from(ip);
      // SocketAddress.address is field 2 (tag 0x12), then its length; port_value (0x18) follows.
      const pattern = Buffer.concat([Buffer.from([0x12, address.length]), address, Buffer.from([0x18])]);
      // Service -1: every stream (the bare server writes to all).
      const expected = service < 0 ? streams.length : streams.filter((stream) => stream.services.has(service)).length;
      armed = { change, pattern, expected, count: 0, first: Number.POSITIVE_INFINITY, last: 0 };
      process.send!({ type: 'armed', change });
      if (expected === 0) finish();
    }
  });
}

const roleIndex = process.argv.indexOf('--role');
if (roleIndex >= 0) {
  const role = process.argv[roleIndex + 1];
  if (role === 'server') void serverRole();
  else if (role === 'bare-server') void bareServerRole();
  else clientRole();
} else if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runFanoutBench(parseArgs(process.argv.slice(2))).then(
    (result) => {
      process.stdout.write(`${fanoutReport(result)}\n`);
      process.exit(0);
    },
    (error: unknown) => {
      process.stderr.write(`fan-out bench failed: ${error instanceof Error ? error.stack : String(error)}\n`);
      process.exit(1);
    },
  );
}
