import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startDiscovery as startDiscoveryProcess, type DiscoveryProcess } from '../test/helpers/discovery-process.js';
import { tempDir } from '../test/helpers/temp-dir.js';
import { wrk, type WrkOptions, type WrkResult } from './lib/wrk.js';
import { renderResults, type GrowthRow, type ScaleResult, type ScenarioResult } from './lib/report.js';

/**
 * `npm run bench`: every scenario runs discovery and a bare node:http baseline in the same run,
 * alternating A-B-B-A so drift on a shared machine cancels, and reports the ratio.
 * Load comes from wrk (one thread, 50 connections) in its own process on loopback.
 */

const here = path.dirname(fileURLToPath(import.meta.url));
const projectRoot = path.resolve(here, '../..');
const BASELINE = path.join(here, 'baseline-server.js');
const TAGS = { az: 'us-east-1a', region: 'us-east-1', instance_id: 'i-0a1b2c3d4e5f' };
/** Production-like: INFO logs start-up and faults only; per-request lines are DEBUG and would measure the logger. */
const SERVER_ENV = { LOG_LEVEL: 'INFO', STATSD_HOST: '127.0.0.1' };

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    seconds: { type: 'string' },
    rounds: { type: 'string' },
    only: { type: 'string' },
    out: { type: 'string' },
  },
});
const quick = flags.quick ?? false;
const seconds = Number(flags.seconds ?? (quick ? 1 : 3));
// Two identical bare servers measured A-B-B-A here differed by up to 25% in one round; five rounds steady the median.
const rounds = Number(flags.rounds ?? (quick ? 1 : 5));

interface Server {
  readonly url: string;
  stop(): Promise<void>;
}

function ip(index: number): string {
  return `10.${Math.floor(index / 62500) % 250}.${Math.floor(index / 250) % 250}.${index % 250}`;
}

function heartbeatBody(service: string, index: number): string {
  return new URLSearchParams({
    ip: ip(index),
    port: '8080',
    revision: '2f1c0e9d',
    service_repo_name: `${service}-repo`,
    tags: JSON.stringify(TAGS),
  }).toString();
}

async function startDiscovery(env: Record<string, string>): Promise<Server & { process: DiscoveryProcess }> {
  const child = await startDiscoveryProcess({ ...SERVER_ENV, ...env });
  return { url: child.url, process: child, stop: async () => void (await child.stop('SIGTERM')) };
}

/** Discovery with APPLICATION_DIR in a fresh temporary folder, removed when it stops (InFile, embedded dynalite). */
async function startDiscoveryInTempDir(env: Record<string, string>): Promise<Server> {
  const dir = await tempDir('discovery-bench-');
  const started = await startDiscovery({ APPLICATION_DIR: dir.path, ...env });
  return {
    url: started.url,
    stop: async () => {
      await started.stop();
      await dir.remove();
    },
  };
}

/** The development default: dynalite inside the discovery process, its LevelDB in a temporary folder. */
function startDiscoveryOnEmbeddedDynalite(env: Record<string, string>): Promise<Server> {
  return startDiscoveryInTempDir({ BACKEND_STORAGE: 'DynamoDB', ...env });
}

/**
 * Discovery on a DynamoDB-compatible table served by dynalite in a process of its own, as a
 * production replica talks to a remote DynamoDB: the table's work is not the server's CPU.
 */
async function startDiscoveryOnDynalite(env: Record<string, string>): Promise<Server> {
  const dynalite = await startDynaliteProcess();
  try {
    const started = await startDiscovery({
      BACKEND_STORAGE: 'DynamoDB',
      DYNAMODB_URL: dynalite.url,
      DYNAMODB_CREATE_TABLES_IN_APP: 'true',
      ...env,
    });
    return {
      url: started.url,
      stop: async () => {
        await started.stop();
        await dynalite.stop();
      },
    };
  } catch (error) {
    await dynalite.stop();
    throw error;
  }
}

/** dynalite (in memory) in its own Node.js process, through the module the server embeds. */
async function startDynaliteProcess(): Promise<Server> {
  const module = path.join(here, '../src/store/dynamodb/embedded-dynalite.js');
  const source = `const { startEmbeddedDynamoDb } = await import(${JSON.stringify(module)}); const db = await startEmbeddedDynamoDb(); process.stdout.write('listening on ' + db.endpoint + '\\n'); process.on('SIGTERM', () => db.close().then(() => process.exit(0)));`;
  return startListeningChild(['--input-type=module', '-e', source], {});
}

/** Spawns `node args…` and resolves once it prints `listening on <url>`. */
async function startListeningChild(
  args: string[],
  env: Record<string, string>,
  onStop?: () => Promise<void>,
): Promise<Server> {
  const child: ChildProcess = spawn(process.execPath, args, {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let output = '';
    // Read until the line, then only drained: scanning every later log line took CPU from the server measured.
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /listening on (\S+)/.exec(output);
      if (!match) return;
      resolve(match[1]!);
      child.stdout!.off('data', onData);
      child.stdout!.resume();
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${args.at(-1)?.slice(0, 40)} exited with ${code}`)));
  });
  return {
    url,
    stop: async () => {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
      await onStop?.();
    },
  };
}

async function startBaseline(body: Buffer, etag: string): Promise<Server> {
  const dir = await tempDir('discovery-bench-');
  const bodyFile = path.join(dir.path, 'body.json');
  await writeFile(bodyFile, body);
  return startListeningChild([BASELINE], { BODY_FILE: bodyFile, ETAG: etag, PORT: '0' }, () => dir.remove());
}

/** Registers hosts 0..count-1 of `service` with bounded concurrency. */
async function registerHosts(url: string, service: string, count: number, offset = 0, concurrency = 64): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const index = offset + next++;
      const response = await fetch(`${url}/v1/registration/${service}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: heartbeatBody(service, index),
      });
      if (response.status !== 200)
        throw new Error(`registration answered ${response.status}: ${await response.text()}`);
      await response.arrayBuffer();
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

async function fetchBody(url: string): Promise<{ body: Buffer; etag: string }> {
  const response = await fetch(url);
  if (response.status !== 200) throw new Error(`GET ${url} answered ${response.status}`);
  return { body: Buffer.from(await response.arrayBuffer()), etag: response.headers.get('etag') ?? '' };
}

/** wrk Lua that cycles through `count` distinct heartbeats, prebuilt so wrk's one thread is not the limit. */
function heartbeatScript(service: string, count: number): string {
  const bodies = Array.from({ length: count }, (_, index) => JSON.stringify(heartbeatBody(service, index))).join(',\n');
  return `
local bodies = {${bodies}}
local requests = {}
local counter = 0
init = function(args)
  for i, body in ipairs(bodies) do
    requests[i] = wrk.format("POST", "/v1/registration/${service}", {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
  end
end
request = function()
  counter = counter % #requests + 1
  return requests[counter]
end
`;
}

interface Scenario {
  readonly name: string;
  readonly description: string;
  /** Minimum ratio of discovery to baseline requests/s; undefined: report only. */
  readonly target?: number;
  readonly quick?: boolean;
  setup(): Promise<{
    ours: Server;
    baseline: Server;
    load: (server: Server) => WrkOptions;
    during?: (server: Server) => () => Promise<void>;
    notes?: string;
  }>;
}

function getScenario(
  name: string,
  description: string,
  hosts: number,
  start: () => Promise<Server>,
  target: number | undefined,
  quickToo = false,
): Scenario {
  return {
    name,
    description,
    target,
    quick: quickToo,
    async setup() {
      const ours = await start();
      await registerHosts(ours.url, 'bench', hosts);
      const { body, etag } = await fetchBody(`${ours.url}/v1/registration/bench`);
      const baseline = await startBaseline(body, etag);
      const fromBaseline = await fetchBody(`${baseline.url}/v1/registration/bench`);
      if (!fromBaseline.body.equals(body)) throw new Error('baseline does not send the same bytes');
      return {
        ours,
        baseline,
        load: (server) => ({ url: `${server.url}/v1/registration/bench`, seconds }),
        notes: `${body.length} bytes per response`,
      };
    },
  };
}

const DYNAMODB_HEARTBEAT_NOTE = 'storage: 1 UpdateItem per heartbeat, no read (see README)';

/** Heartbeats of 10,000 distinct hosts (500 in a quick run) against `start`'s server and the bare write baseline. */
function postScenario(
  name: string,
  description: string,
  start: () => Promise<Server>,
  options: { target?: number; quick?: boolean; notes?: string } = {},
): Scenario {
  return {
    name,
    description,
    target: options.target,
    quick: options.quick,
    async setup() {
      const ours = await start();
      const baseline = await startBaseline(Buffer.from('{}'), 'W/"none"');
      const script = heartbeatScript('bench', quick ? 500 : 10_000);
      return { ours, baseline, load: (server) => ({ url: server.url, seconds, script }), notes: options.notes };
    },
  };
}

const scenarios: Scenario[] = [
  getScenario(
    'get-100-inmemory-nocache',
    'GET, 100 hosts, InMemory, CACHE_TYPE=null',
    100,
    () => startDiscovery({ BACKEND_STORAGE: 'InMemory', CACHE_TYPE: 'null' }),
    0.8,
    true,
  ),
  getScenario(
    'get-100-inmemory-cache',
    'GET, 100 hosts, InMemory, CACHE_TYPE=simple',
    100,
    () => startDiscovery({ BACKEND_STORAGE: 'InMemory', CACHE_TYPE: 'simple' }),
    0.85,
  ),
  getScenario(
    'get-1000-inmemory-nocache',
    'GET, 1,000 hosts, InMemory, CACHE_TYPE=null',
    1000,
    () => startDiscovery({ BACKEND_STORAGE: 'InMemory', CACHE_TYPE: 'null' }),
    0.8,
  ),
  getScenario(
    'get-1000-inmemory-cache',
    'GET, 1,000 hosts, InMemory, CACHE_TYPE=simple',
    1000,
    () => startDiscovery({ BACKEND_STORAGE: 'InMemory', CACHE_TYPE: 'simple' }),
    0.8,
  ),
  getScenario(
    'get-100-dynamodb-cache',
    'GET, 100 hosts, DynamoDB (dynalite in its own process, as a remote table), CACHE_TYPE=simple',
    100,
    () => startDiscoveryOnDynalite({ CACHE_TYPE: 'simple' }),
    0.85,
  ),
  getScenario(
    'get-100-dynamodb-embedded-cache',
    'GET, 100 hosts, DynamoDB (embedded dynalite, in the server process), CACHE_TYPE=simple',
    100,
    () => startDiscoveryOnEmbeddedDynalite({ CACHE_TYPE: 'simple' }),
    undefined,
  ),
  {
    name: 'get-304',
    description: 'GET answered 304 through If-None-Match, 100 hosts, InMemory',
    target: 0.9,
    quick: true,
    async setup() {
      const ours = await startDiscovery({ BACKEND_STORAGE: 'InMemory', CACHE_TYPE: 'null' });
      await registerHosts(ours.url, 'bench', 100);
      const { body, etag } = await fetchBody(`${ours.url}/v1/registration/bench`);
      const baseline = await startBaseline(body, etag);
      return {
        ours,
        baseline,
        load: (server) => ({ url: `${server.url}/v1/registration/bench`, seconds, headers: { 'If-None-Match': etag } }),
      };
    },
  },
  postScenario(
    'post-inmemory',
    'POST heartbeats of 10,000 distinct hosts, InMemory',
    () => startDiscovery({ BACKEND_STORAGE: 'InMemory' }),
    { target: 0.6, quick: true },
  ),
  postScenario(
    'post-infile',
    'POST heartbeats of 10,000 distinct hosts, InFile (journal fsynced before each answer)',
    () => startDiscoveryInTempDir({ BACKEND_STORAGE: 'InFile' }),
    { notes: 'storage: one journal append per batch of concurrent heartbeats' },
  ),
  postScenario(
    'post-dynamodb',
    'POST heartbeats of 10,000 distinct hosts, DynamoDB (dynalite in its own process, as a remote table)',
    () => startDiscoveryOnDynalite({ DYNAMODB_TIMEOUT_MS: '30000' }),
    { notes: DYNAMODB_HEARTBEAT_NOTE },
  ),
  postScenario(
    'post-dynamodb-embedded',
    'POST heartbeats of 10,000 distinct hosts, DynamoDB (embedded dynalite, in the server process)',
    () => startDiscoveryOnEmbeddedDynalite({ DYNAMODB_TIMEOUT_MS: '30000' }),
    { notes: DYNAMODB_HEARTBEAT_NOTE },
  ),
  {
    name: 'mixed-100',
    description: 'GET of a 100-host service while its hosts heartbeat at 100/s, InMemory, CACHE_TYPE=null',
    target: 0.7,
    async setup() {
      const ours = await startDiscovery({ BACKEND_STORAGE: 'InMemory', CACHE_TYPE: 'null' });
      await registerHosts(ours.url, 'bench', 100);
      const { body, etag } = await fetchBody(`${ours.url}/v1/registration/bench`);
      const baseline = await startBaseline(body, etag);
      return {
        ours,
        baseline,
        load: (server) => ({ url: `${server.url}/v1/registration/bench`, seconds }),
        during: (server) => heartbeatsAt(server.url, 'bench', 100, 100),
        notes: 'the same 100/s heartbeat stream is sent to the baseline, which parses and stores it',
      };
    },
  },
];

/** Sends `perSecond` heartbeats per second round-robin over `hosts` hosts until stopped. */
function heartbeatsAt(url: string, service: string, hosts: number, perSecond: number): () => Promise<void> {
  let running = true;
  let index = 0;
  const loop = (async () => {
    const interval = 1000 / perSecond;
    let next = performance.now();
    while (running) {
      const body = heartbeatBody(service, index++ % hosts);
      void fetch(`${url}/v1/registration/${service}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body,
      })
        .then((response) => response.arrayBuffer())
        .catch(() => undefined);
      next += interval;
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, next - performance.now())));
    }
  })();
  return async () => {
    running = false;
    await loop;
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

async function measure(
  server: Server,
  load: WrkOptions,
  during?: (server: Server) => () => Promise<void>,
): Promise<WrkResult> {
  const stop = during?.(server);
  try {
    const result = await wrk(load);
    if (result.errors > 0 || result.non2xx > 0) {
      if (!load.headers?.['If-None-Match'])
        throw new Error(`${load.url}: ${result.errors} socket errors, ${result.non2xx} non-2xx`);
    }
    return result;
  } finally {
    await stop?.();
  }
}

/**
 * One scenario: each round starts a fresh pair of processes, warms both up, and measures
 * A-B-B-A. Fresh processes per round because where the scheduler places a server against the
 * wrk process moved one server's figure by up to 2x between otherwise identical processes
 * here; a ratio taken from one placement only would measure the placement.
 */
async function runScenario(scenario: Scenario): Promise<ScenarioResult> {
  const ratios: number[] = [];
  const oursRuns: WrkResult[] = [];
  const baselineRuns: WrkResult[] = [];
  let notes: string | undefined;
  for (let round = 0; round < rounds; round++) {
    const setup = await scenario.setup();
    const { ours, baseline, load, during } = setup;
    notes = setup.notes;
    try {
      // Warm both up (JIT, connection pools) before anything is counted.
      await measure(ours, { ...load(ours), seconds: 1 }, during);
      await measure(baseline, { ...load(baseline), seconds: 1 }, during);
      // A-B-B-A: a drift during the round weighs on both sides alike.
      const a1 = await measure(ours, load(ours), during);
      const b1 = await measure(baseline, load(baseline), during);
      const b2 = await measure(baseline, load(baseline), during);
      const a2 = await measure(ours, load(ours), during);
      oursRuns.push(a1, a2);
      baselineRuns.push(b1, b2);
      ratios.push((a1.requestsPerSecond + a2.requestsPerSecond) / (b1.requestsPerSecond + b2.requestsPerSecond));
      process.stdout.write(
        `  ${scenario.name} round ${round + 1}: ${Math.round((a1.requestsPerSecond + a2.requestsPerSecond) / 2)} vs ${Math.round((b1.requestsPerSecond + b2.requestsPerSecond) / 2)} req/s\n`,
      );
    } finally {
      await ours.stop();
      await baseline.stop();
    }
  }
  const ratio = median(ratios);
  return {
    name: scenario.name,
    description: scenario.description,
    target: scenario.target,
    ratio,
    ratios,
    ours: {
      requestsPerSecond: median(oursRuns.map((r) => r.requestsPerSecond)),
      p99Ms: median(oursRuns.map((r) => r.p99Ms)),
    },
    baseline: {
      requestsPerSecond: median(baselineRuns.map((r) => r.requestsPerSecond)),
      p99Ms: median(baselineRuns.map((r) => r.p99Ms)),
    },
    pass: scenario.target === undefined ? undefined : ratio >= scenario.target,
    notes,
  };
}

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) / 1024 : Number.NaN;
}

/** 100,000 hosts over 1,000 services: memory, and whether reading one service slows with the fleet. */
async function runScale(): Promise<ScaleResult> {
  const services = quick ? 10 : 1000;
  const perService = 100;
  const alone = await startDiscovery({ BACKEND_STORAGE: 'InMemory', CACHE_TYPE: 'null' });
  const full = await startDiscovery({ BACKEND_STORAGE: 'InMemory', CACHE_TYPE: 'null' });
  try {
    await registerHosts(alone.url, 'svc-0', perService);
    const started = performance.now();
    for (let service = 0; service < services; service++)
      await registerHosts(full.url, `svc-${service}`, perService, 0, 100);
    const loadSeconds = (performance.now() - started) / 1000;
    // Every service read once, as pollers would, so the memory figure includes what reads keep.
    for (let service = 0; service < services; service++) await fetchBody(`${full.url}/v1/registration/svc-${service}`);
    const rss = await rssMb(full.process.child.pid!);
    const rssAlone = await rssMb(alone.process.child.pid!);
    const runs: { alone: WrkResult[]; full: WrkResult[] } = { alone: [], full: [] };
    for (let round = 0; round < rounds; round++) {
      runs.alone.push(await wrk({ url: `${alone.url}/v1/registration/svc-0`, seconds }));
      runs.full.push(await wrk({ url: `${full.url}/v1/registration/svc-0`, seconds }));
      runs.full.push(await wrk({ url: `${full.url}/v1/registration/svc-0`, seconds }));
      runs.alone.push(await wrk({ url: `${alone.url}/v1/registration/svc-0`, seconds }));
    }
    return {
      hosts: services * perService,
      services,
      loadSeconds,
      rssMb: rss,
      rssAloneMb: rssAlone,
      alone: {
        requestsPerSecond: median(runs.alone.map((r) => r.requestsPerSecond)),
        p50Ms: median(runs.alone.map((r) => r.p50Ms)),
        p99Ms: median(runs.alone.map((r) => r.p99Ms)),
      },
      full: {
        requestsPerSecond: median(runs.full.map((r) => r.requestsPerSecond)),
        p50Ms: median(runs.full.map((r) => r.p50Ms)),
        p99Ms: median(runs.full.map((r) => r.p99Ms)),
      },
    };
  } finally {
    await alone.stop();
    await full.stop();
  }
}

/** GET throughput and p99 against hosts per service, ours and the baseline. */
async function runGrowth(): Promise<GrowthRow[]> {
  const rows: GrowthRow[] = [];
  for (const hosts of quick ? [10] : [10, 100, 1000, 5000]) {
    const scenario = getScenario(
      `growth-${hosts}`,
      `GET, ${hosts} hosts`,
      hosts,
      () => startDiscovery({ BACKEND_STORAGE: 'InMemory', CACHE_TYPE: 'null' }),
      undefined,
    );
    const result = await runScenario(scenario);
    rows.push({
      hosts,
      ours: result.ours,
      baseline: result.baseline,
      ratio: result.ratio,
      bytes: Number(/^(\d+)/.exec(result.notes ?? '')?.[1] ?? 0),
    });
  }
  return rows;
}

async function main(): Promise<void> {
  const selected = scenarios.filter((scenario) =>
    flags.only ? flags.only.split(',').includes(scenario.name) : !quick || scenario.quick,
  );
  const results: ScenarioResult[] = [];
  for (const scenario of selected) {
    process.stdout.write(`${scenario.name}: ${scenario.description}\n`);
    results.push(await runScenario(scenario));
  }
  const wantsAll = !flags.only;
  const scale = wantsAll || flags.only?.includes('scale') ? await runScale() : undefined;
  const growth = wantsAll || flags.only?.includes('growth') ? await runGrowth() : undefined;
  const report = {
    date: new Date().toISOString(),
    command: `npm run bench${process.argv.slice(2).length ? ' -- ' + process.argv.slice(2).join(' ') : ''}`,
    machine: `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}`,
    node: process.version,
    seconds,
    rounds,
    results,
    scale,
    growth,
  };
  const outDir = flags.out ?? (quick ? undefined : path.join(projectRoot, 'bench'));
  const markdown = await renderResults(report, outDir);
  process.stdout.write(`\n${markdown}\n`);
  const failed = results.filter((result) => result.pass === false);
  if (failed.length > 0 && !quick)
    process.stdout.write(`below target: ${failed.map((result) => result.name).join(', ')}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
