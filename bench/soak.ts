import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { startDiscovery } from '../test/helpers/discovery-process.js';
import { tempDir } from '../test/helpers/temp-dir.js';

/**
 * A bounded soak: thousands of hosts heartbeat while readers poll, some hosts stop for good,
 * and at the end every host that kept heartbeating must be listed, every host that stopped
 * more than HOST_TTL ago must not be, and resident memory must be flat. Loopback only, bounded
 * in time; `npm run soak -- --seconds 60`. The test suite runs a short version.
 */

export interface SoakOptions {
  readonly seconds: number;
  readonly hosts: number;
  readonly services: number;
  readonly hostTtlSeconds: number;
  readonly heartbeatEverySeconds: number;
  readonly readers: number;
  /** Share of hosts that stop heartbeating a third of the way in. */
  readonly dyingShare: number;
  readonly backend: string;
  /**
   * Heartbeats every surviving host must have sent before the soak ends: on a slow machine the
   * run goes on past `seconds` (up to three times as long) until they have, so a soak on a busy
   * machine still exercises what it claims rather than ending after a handful of requests.
   */
  readonly minimumBeatsPerHost?: number;
}

export interface SoakResult {
  readonly requests: number;
  /** Heartbeats sent by the surviving host that sent the fewest. */
  readonly fewestBeatsOfALiveHost: number;
  readonly failedRequests: number;
  readonly heartbeatP99Ms: number;
  readonly readP99Ms: number;
  readonly missingLiveHosts: number;
  readonly returnedDeadHosts: number;
  readonly rssMbSamples: number[];
  /** Resident memory at the end against the middle of the run, in percent. */
  readonly rssGrowthPercent: number;
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function soak(options: SoakOptions): Promise<SoakResult> {
  const dir = await tempDir('discovery-soak-');
  const server = await startDiscovery({
    BACKEND_STORAGE: options.backend,
    APPLICATION_DIR: dir.path,
    HOST_TTL: String(options.hostTtlSeconds),
    CACHE_TYPE: 'simple',
    CACHE_TTL: '1',
  });
  const pid = server.child.pid!;
  const startedAt = Date.now();
  const dieAt = startedAt + (options.seconds * 1000) / 3;
  const hardDeadline = startedAt + options.seconds * 3000;
  const hosts = Array.from({ length: options.hosts }, (_, index) => ({
    service: `svc-${index % options.services}`,
    ip: `10.${Math.floor(index / 62500) % 250}.${Math.floor(index / 250) % 250}.${index % 250}`,
    dies: index < options.hosts * options.dyingShare,
    lastBeatAt: 0,
    beats: 0,
  }));
  const survivors = hosts.filter((host) => !host.dies);
  const fewestBeats = () => Math.min(...survivors.map((host) => host.beats));
  let heartbeating = true;
  /** The load stops at `seconds`, or later if a surviving host has not yet sent its minimum (bounded). */
  const done = () =>
    Date.now() >= hardDeadline ||
    (Date.now() >= startedAt + options.seconds * 1000 && fewestBeats() >= (options.minimumBeatsPerHost ?? 0));
  const heartbeatLatencies: number[] = [];
  const readLatencies: number[] = [];
  const rssMbSamples: number[] = [];
  let requests = 0;
  let failedRequests = 0;

  const timed = async (latencies: number[], request: () => Promise<Response>) => {
    const started = performance.now();
    try {
      const response = await request();
      await response.arrayBuffer();
      requests++;
      if (response.status >= 400) failedRequests++;
    } catch {
      failedRequests++;
    }
    latencies.push(performance.now() - started);
  };

  const beat = (host: (typeof hosts)[number]) =>
    timed(heartbeatLatencies, () =>
      fetch(`${server.url}/v1/registration/${host.service}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: `ip=${host.ip}&port=8080&revision=soak&tags=${encodeURIComponent('{"az":"a","region":"r","instance_id":"i"}')}`,
      }),
    ).then(() => {
      host.lastBeatAt = Date.now();
      host.beats++;
    });

  // Heartbeats: each host once per interval, spread evenly, at most 64 in flight.
  const heartbeats = (async () => {
    const perTickMs = 20;
    const perTick = Math.max(1, Math.ceil((options.hosts * perTickMs) / (options.heartbeatEverySeconds * 1000)));
    let next = 0;
    while (!done()) {
      const batch: Promise<void>[] = [];
      for (let count = 0; count < perTick; count++) {
        const host = hosts[next++ % hosts.length]!;
        if (host.dies && Date.now() > dieAt) continue;
        batch.push(beat(host));
      }
      await Promise.all([Promise.all(batch), sleep(perTickMs)]);
    }
    heartbeating = false;
  })();

  const readers = Array.from({ length: options.readers }, async (_, reader) => {
    let index = reader;
    while (heartbeating) {
      await timed(readLatencies, () => fetch(`${server.url}/v1/registration/svc-${index++ % options.services}`));
    }
  });

  const memory = (async () => {
    while (heartbeating) {
      const status = await readFile(`/proc/${pid}/status`, 'utf8');
      rssMbSamples.push(Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024);
      await sleep(Math.max(250, (options.seconds * 1000) / 40));
    }
  })();

  await Promise.all([heartbeats, ...readers, memory]);

  // The verdict, read after the load stops.
  const now = Date.now();
  let missingLiveHosts = 0;
  let returnedDeadHosts = 0;
  for (let service = 0; service < options.services; service++) {
    const response = await fetch(`${server.url}/v1/registration/svc-${service}`);
    const listed = new Set(
      ((await response.json()) as { hosts: { ip_address: string }[] }).hosts.map((host) => host.ip_address),
    );
    for (const host of hosts.filter((candidate) => candidate.service === `svc-${service}`)) {
      const age = (now - host.lastBeatAt) / 1000;
      if (!host.dies && age < options.hostTtlSeconds - 1 && !listed.has(host.ip)) missingLiveHosts++;
      if (host.dies && age > options.hostTtlSeconds + 1 && listed.has(host.ip)) returnedDeadHosts++;
    }
  }
  await server.stop('SIGTERM');
  await dir.remove();
  const middle = rssMbSamples[Math.floor(rssMbSamples.length / 2)] ?? Number.NaN;
  const end = rssMbSamples.at(-1) ?? Number.NaN;
  return {
    requests,
    fewestBeatsOfALiveHost: fewestBeats(),
    failedRequests,
    heartbeatP99Ms: percentile(heartbeatLatencies, 99),
    readP99Ms: percentile(readLatencies, 99),
    missingLiveHosts,
    returnedDeadHosts,
    rssMbSamples,
    rssGrowthPercent: ((end - middle) / middle) * 100,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '60' },
      hosts: { type: 'string', default: '5000' },
      backend: { type: 'string', default: 'InMemory' },
    },
  });
  const seconds = Number(values.seconds);
  const result = await soak({
    seconds,
    hosts: Number(values.hosts),
    services: 100,
    hostTtlSeconds: Math.max(4, Math.round(seconds / 6)),
    heartbeatEverySeconds: Math.max(1, Math.round(seconds / 30)),
    readers: 8,
    dyingShare: 0.1,
    backend: values.backend ?? 'InMemory',
  });
  process.stdout.write(
    `${JSON.stringify({ ...result, rssMbSamples: result.rssMbSamples.map((mb) => Math.round(mb)) }, null, 2)}\n`,
  );
  const ok =
    result.missingLiveHosts === 0 &&
    result.returnedDeadHosts === 0 &&
    result.failedRequests === 0 &&
    result.rssGrowthPercent < 15;
  process.stdout.write(ok ? 'soak: ok\n' : 'soak: FAILED\n');
  if (!ok) process.exitCode = 1;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((error: unknown) => {
    process.stderr.write(`soak failed: ${String(error)}\n`);
    process.exit(1);
  });
}
