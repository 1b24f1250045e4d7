import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ANNOUNCE_INTERVAL_MS } from '../../src/replication/change-feed.js';
import { parseCheckIn, type Host } from '../../src/hosts/model.js';
import type { EmbeddedDynamoDb } from '../../src/store/dynamodb/embedded-dynalite.js';
import { ensureHostsTable } from '../../src/store/dynamodb/hosts-table.js';
import { endpointWeight } from '../../src/xds/resources.js';
import { freshTableName, silentLog, startDynalite, testClient } from '../helpers/dynamodb.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { freePort } from '../helpers/network.js';
import { ReplicaProcess } from '../helpers/replica-process.js';
import { SeededRandom } from '../helpers/seeded-random.js';
import { TableTruth, listedWords, routedWords } from '../helpers/table-truth.js';
import { XdsWatcher, type RoutedEndpoint } from '../helpers/xds-watcher.js';

/**
 * Three replica processes on one dynalite, each behind its own connection to it that the test
 * cuts (refused), black-holes (taken, never answered) and heals, and each taking hints through a
 * proxy the test can cut; hosts heartbeating through all three; a seeded schedule of deletes,
 * weights, status overrides, new hosts and hosts that stop; one ADS stream and periodic GETs per
 * replica. Faults one at a time. The truth is the table itself, read directly with the same
 * expiry rule. What a user of the fleet would notice is asserted:
 *
 * - no acknowledged write is lost;
 * - after each fault ends, every replica's stream and GET equal the truth within the bound
 *   docs/replicas.md states for that fault (the BOUND_* constants below);
 * - a host that heartbeats on time never leaves a stream it was on (the faulted replica's too:
 *   a stale list is never pushed as a change), nor a healthy replica's GET;
 * - a deleted or expired host never comes back, and leaves every stream within its bound,
 *   whether its expiry owner lives or not.
 *
 * Each storage fault and pause also gives the failing replica the expiry of a host (in the quiet
 * service, which nothing else reads or changes) due while the fault lasts, and each storage fault
 * opens a second stream on the failing replica while its storage is down: it must get its
 * resources once storage answers. The kill and restart comes first, so that the re-read its
 * departure causes is over when the expiry owner is killed last; the periodic GETs leave the
 * quiet service alone, since a read that finds a host expired removes it (another path than the
 * owner's, or the departure's, which are what is tested there).
 *
 * A heartbeat that no replica could store (the machine too busy for dynalite to answer within
 * DYNAMODB_TIMEOUT_MS) is counted as a storage fault of every replica, so a busy machine moves
 * the bounds instead of failing the run; the noise margin covers the rest.
 *
 * CHAOS_SEED=<n> replays a run: the plan of faults and their targets exactly, and each phase's
 * sequence of choices (which operation, weight, status, service, pauses between them) from a
 * generator of its own; which hosts exist to choose from still depends on timing. Every failure
 * message names the seed.
 */

// ---- What every replica runs with: short, so the whole run takes a few minutes.
const HOST_TTL_SECONDS = 6;
/** HOST_TTL (no HEARTBEAT_WRITE_INTERVAL): a host is live while now <= last_check_in + this. */
const HOST_LIFETIME_MS = HOST_TTL_SECONDS * 1000;
const CHANGE_FEED_INTERVAL_MS = 500;
/** A black-holed call ends by this timeout. */
const DYNAMODB_TIMEOUT_MS = 1000;

// ---- The worst-case staleness docs/replicas.md states, per fault, from the moment it ends.
/** The longest wait between two retries of a failed read. */
const READ_RETRY_BACKOFF_CAP_MS = 2000;
/** A replica that stops announcing has left this long after its last announcement. */
const ANNOUNCEMENT_LAPSE_MS = 3 * ANNOUNCE_INTERVAL_MS;
/** One read of storage takes at most its call's timeout. */
const ONE_READ_MS = DYNAMODB_TIMEOUT_MS;
/** No fault: a change or an expiry is on every stream within a lost hint's catch-up. */
const BOUND_NO_FAULT_MS = CHANGE_FEED_INTERVAL_MS + ONE_READ_MS;
/** A replica's storage cut or black-holed, once it answers again. */
const BOUND_STORAGE_HEALED_MS = DYNAMODB_TIMEOUT_MS + READ_RETRY_BACKOFF_CAP_MS + CHANGE_FEED_INTERVAL_MS;
/** A replica paused (SIGSTOP), once continued. */
const BOUND_PAUSE_ENDED_MS = CHANGE_FEED_INTERVAL_MS + ONE_READ_MS;
/** A replica killed and started again: right from its first response. */
const BOUND_RESTARTED_MS = 0;
/** Hints to a replica cut: it reads the log every interval. */
const BOUND_HINTS_CUT_MS = CHANGE_FEED_INTERVAL_MS;
/** An expiry owner killed: its hosts leave every other stream by then, counted from the kill. */
const BOUND_OWNER_KILLED_MS = ANNOUNCEMENT_LAPSE_MS + HOST_LIFETIME_MS + CHANGE_FEED_INTERVAL_MS;
/**
 * Added to every bound: scheduling noise on a shared 2-core machine running five busy processes.
 * Far below "until the service changes again", which is what a stale view waits for here.
 */
const NOISE_MARGIN_MS = 3000;

// ---- The run.
const STORAGE_FAULT_SHORT_MS = 10_000;
const STORAGE_FAULT_LONG_MS = 20_000;
const PAUSE_MS = 15_000;
const DOWN_BEFORE_RESTART_MS = 2000;
const HINTS_CUT_MS = 20_000;
const HEARTBEAT_PERIOD_MS = 1500;
/** A host whose last acknowledged heartbeat was sent longer ago than this is not "on time". */
const ON_TIME_WITHIN_MS = HOST_LIFETIME_MS - 2000;
/** A request to a replica not answered in this time is abandoned (the replica is paused, or swamped). */
const REQUEST_TIMEOUT_MS = 4000;
const GET_PERIOD_MS = 1000;
const HOSTS_PER_SERVICE_AT_START = 4;
const HOSTS_MIN = 10;
const HOSTS_MAX = 22;
const SERVICES = ['alpha', 'bravo', 'charlie', 'delta'] as const;
/** The expiry owner's hosts live here alone: nothing else changes it, so only expiry can remove them. */
const QUIET_SERVICE = 'quiet';
const WATCHED = [...SERVICES, QUIET_SERVICE];
const OWNER_HOSTS = 3;
const RUN_BOUND_MS = 290_000;
const TEAR_DOWN_STEP_MS = 10_000;
/** The longest wait for a settled fleet before the faults begin. */
const START_SETTLE_MS = 30_000;
/** The most an overload (see FaultKind) moves a convergence bound. */
const OVERLOAD_GRACE_MS = 30_000;

const SEED = SeededRandom.seedFrom(process.env.CHAOS_SEED);

type SlotState = 'up' | 'paused' | 'down';

interface Slot {
  readonly index: number;
  readonly name: string;
  readonly proc: ReplicaProcess;
  /** Between the replica and dynalite. */
  readonly storage: FaultProxy;
  /** Between its peers and its HTTP port (its PEER_URL): hints to it pass here. */
  readonly hints: FaultProxy;
  state: SlotState;
  watcher: XdsWatcher | undefined;
  /** Names the current watcher: a restarted replica's stream is a new one. */
  watcherId: string;
  generation: number;
  /** Requests of this test to it not yet answered. */
  inFlight: number;
}

type FaultKind =
  | 'storage cut'
  | 'storage black hole'
  | 'pause'
  | 'kill and restart'
  | 'hints cut'
  | 'expiry owner killed'
  /**
   * Not injected: no replica could store a heartbeat (every one answered 503 or nothing), as when
   * the machine is too busy for dynalite to answer within DYNAMODB_TIMEOUT_MS. Counted as a storage
   * fault of every replica (slot -1) from the first such heartbeat to the last.
   */
  | 'every replica’s storage failing';

interface Fault {
  readonly kind: FaultKind;
  /** -1: every replica. */
  readonly slot: number;
  readonly start: number;
  end?: number;
}

type OverrideValue = 'DRAINING' | 'OUT_OF_SERVICE' | 'none';

interface HostModel {
  readonly service: string;
  readonly ip: string;
  readonly port: number;
  /** Heartbeats only through this replica (the expiry owner's hosts). */
  readonly pinned?: number;
  heartbeating: boolean;
  heartbeat: Promise<void> | undefined;
  nextDueAt: number;
  registeredAt?: number;
  /** When the last acknowledged heartbeat was sent: its stored check-in is no earlier. */
  lastAckSendAt?: number;
  /** When it was acknowledged: its stored check-in is no later. */
  lastAckAt?: number;
  /** Which replica acknowledged it: the host's expiry owner. */
  lastAckSlot?: number;
  leaving?: 'deleted' | 'stopped';
  /** Deleted: when the delete was answered. */
  deletedAt?: number;
  deleteAttempted: boolean;
  /** Weight and override: the last acknowledged value, and values tried since (unanswered, maybe stored). */
  weight: { acked: number | undefined; pending: Set<number> };
  override: { acked: OverrideValue | undefined; pending: Set<OverrideValue> };
  busy: boolean;
  /** Streams (by watcher id) that showed it; and that no longer did after it left. */
  readonly seenOn: Set<string>;
  readonly goneOn: Set<string>;
  /** The last heartbeat attempts, for a failure's message: `B t+12.3s→503`. */
  readonly attempts: string[];
  /** When heartbeats that were answered as failed (or not at all) were sent, the last few. */
  readonly failedHeartbeatsSentAt: number[];
}

interface Violation {
  readonly key: string;
  readonly text: string;
}

const slots: Slot[] = [];
const hosts: HostModel[] = [];
const faults: Fault[] = [];
const violations: Violation[] = [];
const timeline: string[] = [];
let dynamo: EmbeddedDynamoDb | undefined;
let truth: TableTruth | undefined;
let running = true;
let opsEnabled = false;
let phase = 'start-up';
let startedAt = Date.now();
let nextIp = 1;
let roundRobin = 0;
const loops: Promise<void>[] = [];
const lateWatchers: XdsWatcher[] = [];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const elapsed = () => `t+${((Date.now() - startedAt) / 1000).toFixed(1)}s`;

function violation(key: string, text: string): void {
  if (violations.some((known) => known.key === key)) return;
  violations.push({ key, text: `[seed ${SEED}] ${elapsed()} during "${phase}": ${text}` });
}

/** What each kind of violation (the start of its key) means, for the failure's summary. */
const VIOLATION_KINDS: Record<string, string> = {
  dropped: 'a host heartbeating on time left a stream (a stale list pushed as a change)',
  converge: 'a view not equal to the table within the bound after a fault ended',
  late: 'a host that left (deleted or expired) still routed past its bound',
  'owner-killed': 'hosts of a killed expiry owner still routed past the departure bound',
  'owner-never-shown': 'hosts registered through the owner never reached every stream',
  back: 'a host that left came back on a stream',
  'get-expired': 'a GET listed an expired host',
  'get-deleted': 'a healthy replica’s GET listed a deleted host',
  'get-missing': 'a healthy replica’s GET omitted a host heartbeating on time',
  'table-deleted': 'an acknowledged delete undone in the table',
  'lost-heartbeat': 'an acknowledged heartbeat lost',
  'old-check-in': 'an acknowledged heartbeat lost (older check-in stored)',
  'lost-weight': 'an acknowledged weight lost',
  'lost-override': 'an acknowledged status override lost',
};

function summary(): string {
  const counts = new Map<string, number>();
  for (const found of violations) {
    const kind = found.key.slice(0, found.key.indexOf(':') === -1 ? undefined : found.key.indexOf(':'));
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
  }
  return [...counts].map(([kind, count]) => `  ${count} × ${VIOLATION_KINDS[kind] ?? kind}`).join('\n');
}

function note(text: string): void {
  timeline.push(`${elapsed()} ${text}`);
}

// ---- Requests, as a load balancer in front of the replicas sends them.

/** Replicas in the order to try: round robin over those up (a paused or dead one gets nothing). */
function order(pinned?: number): Slot[] {
  if (pinned !== undefined) {
    const slot = slots[pinned] as Slot;
    return slot.state === 'up' ? [slot] : [];
  }
  const start = roundRobin++;
  return slots.map((_, offset) => slots[(start + offset) % slots.length] as Slot).filter((s) => s.state === 'up');
}

/** One request; the status, or undefined when it failed or was abandoned. */
async function send(slot: Slot, method: string, path: string, body?: unknown): Promise<number | undefined> {
  slot.inFlight++;
  try {
    const response = await fetch(`${slot.proc.url}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    await response.arrayBuffer();
    return response.status;
  } catch {
    return undefined;
  } finally {
    slot.inFlight--;
  }
}

/** Tries each replica until one answers `okStatus`; a 400 or 404 is final. */
async function write(
  host: HostModel,
  method: string,
  path: string,
  body: unknown,
  okStatus: number,
): Promise<{ acked: boolean; status?: number; slot?: number; sentAt?: number; tried: number }> {
  let status: number | undefined;
  let tried = 0;
  for (const slot of order(host.pinned)) {
    const sentAt = Date.now();
    tried++;
    status = await send(slot, method, path, body);
    if (method === 'POST' && path.startsWith('/v1/registration/')) {
      host.attempts.push(`${slot.name} ${elapsed()}→${status ?? 'no answer'}`);
      if (host.attempts.length > 8) host.attempts.shift();
      if (status !== okStatus) {
        host.failedHeartbeatsSentAt.push(sentAt);
        if (host.failedHeartbeatsSentAt.length > 8) host.failedHeartbeatsSentAt.shift();
      }
    }
    if (status === okStatus) return { acked: true, status, slot: slot.index, sentAt, tried };
    if (status === 400 || status === 404) return { acked: false, status, tried };
  }
  return { acked: false, status, tried };
}

// ---- The hosts.

function newHost(service: string, pinned?: number): HostModel {
  const n = nextIp++;
  const host: HostModel = {
    service,
    ip: `10.${20 + Math.floor(n / 250)}.0.${n % 250}`,
    port: 8080,
    pinned,
    heartbeating: true,
    heartbeat: undefined,
    nextDueAt: 0,
    deleteAttempted: false,
    weight: { acked: undefined, pending: new Set() },
    override: { acked: 'none', pending: new Set() },
    busy: false,
    seenOn: new Set(),
    goneOn: new Set(),
    attempts: [],
    failedHeartbeatsSentAt: [],
  };
  hosts.push(host);
  return host;
}

async function heartbeatOnce(host: HostModel): Promise<void> {
  const result = await write(
    host,
    'POST',
    `/v1/registration/${host.service}`,
    {
      ip: host.ip,
      port: host.port,
      revision: 'r1',
      tags: { az: 'az-1', region: 'region-1', instance_id: `i-${host.ip}` },
    },
    200,
  );
  if (host.pinned === undefined && !result.acked && result.tried >= 2 && result.status !== 400) noteOverload();
  if (!result.acked || result.sentAt === undefined) return;
  // A gap longer than a lifetime: the host may have expired and been removed, weight and override with it.
  if (host.lastAckAt !== undefined && result.sentAt - host.lastAckAt > HOST_LIFETIME_MS) {
    host.weight = { acked: undefined, pending: new Set() };
    host.override = { acked: undefined, pending: new Set() };
  }
  host.registeredAt ??= Date.now();
  host.lastAckSendAt = result.sentAt;
  host.lastAckAt = Date.now();
  host.lastAckSlot = result.slot;
}

async function heartbeatLoop(): Promise<void> {
  while (running) {
    const now = Date.now();
    for (const host of hosts) {
      if (!host.heartbeating || host.heartbeat || now < host.nextDueAt) continue;
      host.nextDueAt = now + HEARTBEAT_PERIOD_MS;
      host.heartbeat = heartbeatOnce(host).finally(() => (host.heartbeat = undefined));
    }
    await sleep(100);
  }
}

/** Stops its heartbeats and waits for the one in flight: nothing of it arrives later. */
async function silence(host: HostModel): Promise<void> {
  host.heartbeating = false;
  await host.heartbeat;
}

let lastOverloadAt = 0;

/** A heartbeat no replica could store: opens (or extends) a fault of every replica's storage. */
function noteOverload(): void {
  lastOverloadAt = Date.now();
  const open = faults.find((fault) => fault.kind === 'every replica’s storage failing' && fault.end === undefined);
  if (open) return;
  faults.push({ kind: 'every replica’s storage failing', slot: -1, start: lastOverloadAt });
  note(`every replica failed a heartbeat (storage too slow on a busy machine): counted as a fault of all three`);
}

/** Ends the open overload once heartbeats were stored again for a while. */
function closeOverload(now: number): void {
  const open = faults.find((fault) => fault.kind === 'every replica’s storage failing' && fault.end === undefined);
  if (open && now - lastOverloadAt > 3000) {
    open.end = lastOverloadAt;
    note(`heartbeats stored again: the overload lasted ${open.end - open.start} ms`);
  }
}

function onTime(host: HostModel, now: number): boolean {
  return (
    host.heartbeating &&
    host.leaving === undefined &&
    host.lastAckSendAt !== undefined &&
    now - host.lastAckSendAt <= ON_TIME_WITHIN_MS
  );
}

function mayBeOutOfService(host: HostModel): boolean {
  return (
    host.override.acked === undefined ||
    host.override.acked === 'OUT_OF_SERVICE' ||
    host.override.pending.has('OUT_OF_SERVICE')
  );
}

/** It has left: its delete was answered, or it stopped and its earliest possible expiry passed. */
function hasLeft(host: HostModel, now: number): boolean {
  if (host.leaving === 'deleted') return host.deletedAt !== undefined && now >= host.deletedAt;
  if (host.leaving === 'stopped')
    return host.lastAckSendAt !== undefined && now > host.lastAckSendAt + HOST_LIFETIME_MS;
  return false;
}

function boundOf(kind: FaultKind): number {
  switch (kind) {
    case 'storage cut':
    case 'storage black hole':
    case 'every replica’s storage failing':
      return BOUND_STORAGE_HEALED_MS;
    case 'pause':
      return BOUND_PAUSE_ENDED_MS;
    case 'hints cut':
      return BOUND_HINTS_CUT_MS;
    case 'kill and restart':
    case 'expiry owner killed':
      return BOUND_RESTARTED_MS;
  }
}

/**
 * By when a host that left must be off the stream of replica `slot`: its leaving plus the
 * no-fault bound, moved to a fault's end plus that fault's bound when a fault of this replica,
 * or of the host's expiry owner, overlapped; an owner killed before it could judge the host
 * gives the departure bound from the kill.
 */
function leaveDeadline(host: HostModel, slot: number): number | undefined {
  let since: number;
  let leftBy: number;
  if (host.leaving === 'deleted' && host.deletedAt !== undefined) {
    since = host.deletedAt;
    leftBy = host.deletedAt;
  } else if (host.leaving === 'stopped' && host.lastAckSendAt !== undefined && host.lastAckAt !== undefined) {
    since = host.lastAckSendAt;
    leftBy = host.lastAckAt + HOST_LIFETIME_MS;
  } else return undefined;
  const owner = host.leaving === 'stopped' ? host.lastAckSlot : undefined;
  let deadline = leftBy + BOUND_NO_FAULT_MS;
  for (let changed = true; changed;) {
    changed = false;
    for (const fault of faults) {
      let candidate: number | undefined;
      if (fault.kind === 'kill and restart' || fault.kind === 'expiry owner killed') {
        if (fault.slot === owner && fault.start >= since && fault.start <= deadline)
          candidate = fault.start + BOUND_OWNER_KILLED_MS;
      } else if (fault.kind !== 'hints cut') {
        if (
          (fault.slot === slot || fault.slot === owner || fault.slot === -1) &&
          fault.start <= deadline &&
          (fault.end ?? Infinity) >= since
        )
          candidate = (fault.end ?? Infinity) + boundOf(fault.kind);
      }
      if (candidate !== undefined && candidate > deadline) {
        deadline = candidate;
        changed = true;
      }
    }
  }
  return deadline + NOISE_MARGIN_MS;
}

// ---- What the streams show.

function attachWatcher(slot: Slot): void {
  slot.generation++;
  slot.watcherId = `${slot.name}#${slot.generation}`;
  const watcher = new XdsWatcher(slot.proc.xdsPort, WATCHED, `chaos-${slot.watcherId}`);
  slot.watcher = watcher;
  const id = slot.watcherId;
  watcher.onCluster((cluster, endpoints) => onStreamUpdate(slot, id, cluster, endpoints));
}

function onStreamUpdate(slot: Slot, id: string, cluster: string, endpoints: RoutedEndpoint[]): void {
  const now = Date.now();
  const present = new Set(endpoints.map((endpoint) => endpoint.ip));
  for (const host of hosts) {
    if (host.service !== cluster) continue;
    if (present.has(host.ip)) {
      if (host.goneOn.has(id))
        violation(
          `back:${id}:${host.ip}`,
          `a host that left came back: replica ${slot.name}'s stream sends ${host.service} ${host.ip} again ` +
            `(${host.leaving}${host.deletedAt ? ` ${now - host.deletedAt} ms ago` : ''}); endpoints now: ${describe(endpoints)}`,
        );
      host.seenOn.add(id);
      continue;
    }
    if (host.leaving !== undefined) {
      if (hasLeft(host, now)) host.goneOn.add(id);
      continue;
    }
    if (host.seenOn.has(id) && onTime(host, now) && !mayBeOutOfService(host))
      violation(
        `dropped:${id}:${host.ip}`,
        `a host heartbeating on time left a stream: replica ${slot.name} (${slot.state}, storage ${slot.storage.current}) ` +
          `sent ${host.service} without ${host.ip} (last heartbeat acknowledged ${now - (host.lastAckAt ?? 0)} ms ago); ` +
          `endpoints sent: ${describe(endpoints)}`,
      );
  }
}

function describe(endpoints: readonly RoutedEndpoint[]): string {
  return endpoints.length === 0
    ? '(none)'
    : endpoints
        .map((endpoint) => `${endpoint.ip}:${endpoint.port} w=${endpoint.weight} ${endpoint.health}`)
        .sort()
        .join(', ');
}

/** How `host` left, for a message: deleted when, or expired when and whose expiry it was. */
function describeLeaving(host: HostModel, now: number): string {
  if (host.leaving === 'deleted' && host.deletedAt !== undefined) return `deleted ${now - host.deletedAt} ms ago`;
  if (host.lastAckAt === undefined) return String(host.leaving);
  const owner = host.lastAckSlot === undefined ? '?' : (slots[host.lastAckSlot]?.name ?? '?');
  return `stopped; expired ${now - host.lastAckAt - HOST_LIFETIME_MS} ms ago; its expiry owner: replica ${owner}`;
}

/** Every so often: a host that left and is still on a stream past its bound. */
async function leaveDeadlineLoop(): Promise<void> {
  while (running) {
    const now = Date.now();
    closeOverload(now);
    for (const slot of slots) {
      if (slot.state !== 'up' || !slot.watcher) continue;
      for (const host of hosts) {
        if (host.leaving === undefined) continue;
        const deadline = leaveDeadline(host, slot.index);
        if (deadline === undefined || now <= deadline) continue;
        const shown = slot.watcher.clusters.get(host.service)?.some((endpoint) => endpoint.ip === host.ip);
        if (shown)
          violation(
            `late:${slot.watcherId}:${host.ip}`,
            `a host that left is still routed past its bound: replica ${slot.name}'s stream still sends ` +
              `${host.service} ${host.ip} (${describeLeaving(host, now)}), ${now - deadline + NOISE_MARGIN_MS} ms ` +
              `past its stated bound (flagged once the ${NOISE_MARGIN_MS} ms noise margin passed too); endpoints: ` +
              describe(slot.watcher.clusters.get(host.service) ?? []),
          );
      }
    }
    await sleep(250);
  }
}

// ---- What the GETs show.

interface ListedHost {
  ip_address: string;
  port: number;
  tags: Record<string, unknown>;
  status?: string;
}

/**
 * `GET /v1/registration/:service?status=all` on `slot`: its hosts, or undefined unless it
 * answered 200 from storage. A list served stale (`x-discovery-stale`, storage did not answer in
 * time: the machine is busy too) says nothing about what the replica would read, so it counts
 * as no answer.
 */
async function list(slot: Slot, service: string): Promise<ListedHost[] | undefined> {
  slot.inFlight++;
  try {
    const response = await fetch(`${slot.proc.url}/v1/registration/${service}?status=all`, {
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    if (response.status !== 200 || response.headers.get('x-discovery-stale') === 'true') {
      await response.arrayBuffer();
      return undefined;
    }
    return ((await response.json()) as { hosts: ListedHost[] }).hosts;
  } catch {
    return undefined;
  } finally {
    slot.inFlight--;
  }
}

function listedWordsOf(listed: readonly ListedHost[]): string[] {
  return listed
    .map((host) => `${host.ip_address}:${host.port} w=${endpointWeight(host as unknown as Host)} ${host.status}`)
    .sort();
}

/** Neither its storage nor its process was down at any moment of [from, to]. */
function healthy(slot: Slot, from: number, to: number): boolean {
  if (slot.state !== 'up') return false;
  return !faults.some(
    (fault) =>
      (fault.slot === slot.index || fault.slot === -1) &&
      fault.kind !== 'hints cut' &&
      fault.start <= to &&
      (fault.end ?? Infinity) >= from,
  );
}

async function getLoop(slot: Slot): Promise<void> {
  await sleep(slot.index * (GET_PERIOD_MS / slots.length));
  while (running) {
    if (slot.state === 'up') {
      const sentAt = Date.now();
      const acksBefore = new Map(hosts.map((host) => [host, host.lastAckSendAt]));
      const registeredBefore = new Set(hosts.filter((host) => host.registeredAt !== undefined));
      // Not the quiet service: a read judges expired hosts and removes them, which would spare
      // the expiry owner (and the departure path) the work this test is to check.
      const answers = await Promise.all(SERVICES.map(async (service) => [service, await list(slot, service)] as const));
      const answeredAt = Date.now();
      const wasHealthy = healthy(slot, sentAt, answeredAt);
      for (const [service, listed] of answers) {
        if (!listed) continue;
        const ips = new Set(listed.map((host) => host.ip_address));
        for (const host of hosts) {
          if (host.service !== service) continue;
          if (ips.has(host.ip)) {
            if (
              host.leaving === 'stopped' &&
              host.lastAckAt !== undefined &&
              sentAt > host.lastAckAt + HOST_LIFETIME_MS + 250
            )
              violation(
                `get-expired:${slot.name}:${host.ip}`,
                `GET on replica ${slot.name} lists an expired host: ${service} ${host.ip}, ` +
                  `${sentAt - host.lastAckAt - HOST_LIFETIME_MS} ms past its expiry; listed: ${listedWordsOf(listed).join(', ')}`,
              );
            if (wasHealthy && host.leaving === 'deleted' && host.deletedAt !== undefined && sentAt > host.deletedAt)
              violation(
                `get-deleted:${slot.name}:${host.ip}`,
                `GET on healthy replica ${slot.name} lists a deleted host: ${service} ${host.ip}, deleted ` +
                  `${sentAt - host.deletedAt} ms before the GET; listed: ${listedWordsOf(listed).join(', ')}`,
              );
            continue;
          }
          const ackSentAt = acksBefore.get(host);
          if (
            wasHealthy &&
            host.leaving === undefined &&
            host.heartbeating &&
            registeredBefore.has(host) &&
            ackSentAt !== undefined &&
            answeredAt < ackSentAt + HOST_LIFETIME_MS - 500
          )
            violation(
              `get-missing:${slot.name}:${host.ip}`,
              `GET on healthy replica ${slot.name} omits a host heartbeating on time: ${service} ${host.ip} ` +
                `(heartbeat acknowledged ${sentAt - ackSentAt} ms before the GET); listed: ${listedWordsOf(listed).join(', ') || '(none)'}`,
            );
        }
      }
    }
    await sleep(GET_PERIOD_MS);
  }
}

// ---- The truth, and whether each view reached it.

async function readTruth(): Promise<Map<string, Host[]>> {
  const entries = await Promise.all(WATCHED.map(async (service) => [service, await truth!.live(service)] as const));
  return new Map(entries);
}

/** Words of hosts that left but may still be shown here (their own bound has not passed): compared on neither side. */
function excused(slot: Slot, now: number): Set<string> {
  const ips = new Set<string>();
  for (const host of hosts) {
    const deadline = leaveDeadline(host, slot.index);
    if (host.leaving !== undefined && (deadline === undefined || now <= deadline)) ips.add(host.ip);
  }
  return ips;
}

function withoutExcused(words: readonly string[], excusedIps: Set<string>): string[] {
  return words.filter((word) => !excusedIps.has(word.slice(0, word.indexOf(':'))));
}

interface View {
  readonly name: string;
  readonly slot: Slot;
  /** A stream's watcher, or undefined for the replica's GETs. */
  readonly watcher?: XdsWatcher;
}

/**
 * Waits until every running replica's stream and GET (and `extra` streams) equal the truth, for
 * every watched service, or until `since + boundMs + NOISE_MARGIN_MS`; a view that never did is
 * a violation naming what it showed and what the table said. GETs of the quiet service only when
 * `quietGets` (see getLoop).
 */
async function converge(
  label: string,
  since: number,
  boundMs: number,
  options: { quietGets?: boolean; extra?: View[] } = {},
): Promise<void> {
  /** The bound, moved past an overload (see FaultKind) that overlapped the wait, by at most OVERLOAD_GRACE_MS. */
  const deadlineNow = () => {
    let end = since + boundMs;
    for (const fault of faults)
      if (fault.kind === 'every replica’s storage failing' && (fault.end ?? Infinity) >= since)
        end = Math.max(end, (fault.end ?? Date.now()) + BOUND_STORAGE_HEALED_MS);
    return Math.min(end, since + boundMs + OVERLOAD_GRACE_MS) + NOISE_MARGIN_MS;
  };
  const listedServices: readonly string[] = options.quietGets ? WATCHED : SERVICES;
  const pending = new Map<string, { view: View; first: string; last: string }>();
  for (const slot of slots)
    if (slot.state === 'up')
      for (const view of [
        { name: `${slot.name} stream`, slot, watcher: slot.watcher },
        { name: `${slot.name} GET`, slot },
      ])
        pending.set(view.name, { view, first: '', last: '' });
  for (const view of options.extra ?? []) pending.set(view.name, { view, first: '', last: '' });
  const took: string[] = [];
  const judge = (
    entry: { view: View; first: string; last: string },
    name: string,
    differences: string[],
    at: number,
  ) => {
    if (differences.length === 0) {
      took.push(`${name} ${at - since} ms${entry.first ? ` (first seen wrong: ${entry.first.slice(0, 240)})` : ''}`);
      pending.delete(name);
      return;
    }
    entry.last = `${differences.join('; ')} (${at - since} ms after)`;
    if (!entry.first) entry.first = entry.last;
  };
  for (;;) {
    const table = await readTruth();
    // Streams are compared at once with the table as just read; GETs once they answered.
    let now = Date.now();
    for (const [name, entry] of pending) {
      const { slot, watcher } = entry.view;
      if (!watcher) continue;
      const excusedIps = excused(slot, now);
      const differences: string[] = [];
      for (const service of WATCHED) {
        const expected = withoutExcused(routedWords(table.get(service) ?? []), excusedIps);
        const words = watcher.words(service);
        const seen = words === undefined ? ['(never sent)'] : withoutExcused(words, excusedIps);
        if (expected.join('|') !== seen.join('|'))
          differences.push(`${service}: expected [${expected.join(', ')}] seen [${seen.join(', ')}]`);
      }
      judge(entry, name, differences, now);
    }
    const lists = new Map<Slot, Map<string, ListedHost[] | undefined>>();
    const listing = [...pending.values()].filter((entry) => !entry.view.watcher).map((entry) => entry.view.slot);
    await Promise.all(
      listing.map(async (slot) => {
        const answers = await Promise.all(
          listedServices.map(async (service) => [service, await list(slot, service)] as const),
        );
        lists.set(slot, new Map(answers));
      }),
    );
    // A host may have expired between the table's read and a GET: the table is read again then.
    const tableAfter = listing.length > 0 ? await readTruth() : table;
    now = Date.now();
    for (const [name, entry] of pending) {
      const { slot, watcher } = entry.view;
      if (watcher) continue;
      const differences: string[] = [];
      for (const service of listedServices) {
        const listed = lists.get(slot)?.get(service);
        const seen = listed === undefined ? ['(no 200 answer)'] : listedWordsOf(listed);
        const before = listedWords(table.get(service) ?? []);
        const after = listedWords(tableAfter.get(service) ?? []);
        if (seen.join('|') !== before.join('|') && seen.join('|') !== after.join('|'))
          differences.push(`${service}: expected [${after.join(', ')}] seen [${seen.join(', ')}]`);
      }
      judge(entry, name, differences, now);
    }
    if (pending.size === 0) break;
    if (Date.now() > deadlineNow()) {
      for (const [name, entry] of pending)
        violation(
          `converge:${label}:${name}`,
          `${name} of replica ${entry.view.slot.name} not equal to the table ${Date.now() - since} ms after ${label} ` +
            `(bound ${boundMs} ms + noise margin ${NOISE_MARGIN_MS} ms): ${entry.last}`,
        );
      took.push(...[...pending.keys()].map((name) => `${name} NEVER`));
      break;
    }
    await sleep(200);
  }
  note(`${label}: equal to the table after ${took.join(', ')}`);
}

/** Every acknowledged write is in the table, or a later acknowledged write or an expiry replaced it. */
async function checkAcknowledgedWrites(label: string): Promise<void> {
  // What was acknowledged before the read: heartbeats go on meanwhile, and one answered after
  // the read cannot be in it.
  const before = new Map(hosts.map((host) => [host, snapshotOf(host)]));
  const stored = new Map<string, Host[]>();
  for (const service of WATCHED) stored.set(service, await truth!.stored(service));
  const now = Date.now();
  for (const [live, host] of before) {
    // Values tried or acknowledged while the table was read may be in it too.
    for (const weight of [live.weight.acked, ...live.weight.pending])
      if (weight !== undefined) host.weight.pending.add(weight);
    for (const value of [live.override.acked, ...live.override.pending])
      if (value !== undefined) host.override.pending.add(value);
    const record = stored.get(host.service)?.find((candidate) => candidate.ip_address === host.ip);
    if (host.leaving === 'deleted') {
      if (record)
        violation(
          `table-deleted:${host.ip}`,
          `a deleted host is back in the table (${label}): ${host.service} ${host.ip}, deleted ` +
            `${host.deletedAt === undefined ? '?' : now - host.deletedAt} ms ago, check-in ${record.last_check_in}`,
        );
      continue;
    }
    if (host.lastAckSendAt === undefined) continue;
    if (!record) {
      if (!live.deleteAttempted && now <= host.lastAckSendAt + HOST_LIFETIME_MS)
        violation(
          `lost-heartbeat:${host.ip}`,
          `an acknowledged heartbeat was lost (${label}): ${host.service} ${host.ip} is not in the table ` +
            `${now - host.lastAckSendAt} ms after a heartbeat it acknowledged (lifetime ${HOST_LIFETIME_MS} ms)`,
        );
      continue;
    }
    const checkIn = parseCheckIn(record.last_check_in);
    // A heartbeat answered as failed (its storage call timed out) whose write still landed, after a
    // newer acknowledged one: the stored check-in is that failed heartbeat's own stamp (taken when
    // the replica began handling it, within its storage timeout of being sent). A known defect,
    // left for its own issue (check-ins are written unconditionally, so they can move back); it is
    // written down in the timeline, and any other older check-in is still a lost write.
    const lateFailedWrite = live.failedHeartbeatsSentAt.some(
      (sentAt) => checkIn >= sentAt - 50 && checkIn <= sentAt + DYNAMODB_TIMEOUT_MS + 500,
    );
    if (checkIn < host.lastAckSendAt - 1 && lateFailedWrite)
      note(
        `${label}: ${host.service} ${host.ip} holds the check-in of a heartbeat answered as failed, ` +
          `${host.lastAckSendAt - checkIn} ms older than its last acknowledged one (known: check-ins can move back)`,
      );
    else if (checkIn < host.lastAckSendAt - 1)
      violation(
        `old-check-in:${host.ip}`,
        `an acknowledged heartbeat was lost (${label}): ${host.service} ${host.ip} has check-in ${record.last_check_in}, ` +
          `${host.lastAckSendAt - checkIn} ms older than its last acknowledged heartbeat; its last heartbeats ` +
          `(replica, when sent, answer): ${live.attempts.join(', ')}`,
      );
    if (host.weight.acked !== undefined) {
      const allowed = [host.weight.acked, ...host.weight.pending];
      if (!allowed.includes(endpointWeight(record)))
        violation(
          `lost-weight:${host.ip}:${host.weight.acked}`,
          `an acknowledged weight was lost (${label}): ${host.service} ${host.ip} has weight ${endpointWeight(record)}, ` +
            `acknowledged ${host.weight.acked}${host.weight.pending.size ? ` (tried since: ${[...host.weight.pending].join(', ')})` : ''}`,
        );
    }
    if (host.override.acked !== undefined) {
      const allowed = [host.override.acked, ...host.override.pending];
      const storedOverride = record.status_override ?? 'none';
      if (!allowed.includes(storedOverride as OverrideValue))
        violation(
          `lost-override:${host.ip}:${host.override.acked}`,
          `an acknowledged status override was lost (${label}): ${host.service} ${host.ip} has ${storedOverride}, ` +
            `acknowledged ${host.override.acked}`,
        );
    }
  }
}

/** A copy of what the model knows of `host` now. */
function snapshotOf(host: HostModel): HostModel {
  return {
    ...host,
    weight: { acked: host.weight.acked, pending: new Set(host.weight.pending) },
    override: { acked: host.override.acked, pending: new Set(host.override.pending) },
  };
}

// ---- The schedule of operations.

async function operationsLoop(): Promise<void> {
  let rng = new SeededRandom(SEED);
  let rngPhase = '';
  while (running) {
    if (!opsEnabled) {
      await sleep(100);
      continue;
    }
    // A generator per phase, so a phase's operations replay from the seed whatever came before.
    if (rngPhase !== phase) {
      rngPhase = phase;
      rng = new SeededRandom((SEED ^ hashOf(phase)) >>> 0);
    }
    await operation(rng);
    await sleep(rng.int(600, 2200));
  }
}

function hashOf(text: string): number {
  let hash = 2166136261;
  for (let index = 0; index < text.length; index++) hash = Math.imul(hash ^ text.charCodeAt(index), 16777619);
  return hash >>> 0;
}

async function operation(rng: SeededRandom): Promise<void> {
  const candidates = hosts.filter(
    (host) =>
      host.pinned === undefined &&
      host.heartbeating &&
      host.leaving === undefined &&
      host.registeredAt !== undefined &&
      !host.busy,
  );
  const roll = rng.next();
  if ((roll >= 0.82 || candidates.length < HOSTS_MIN) && candidates.length < HOSTS_MAX) {
    newHost(rng.pick(SERVICES));
    return;
  }
  if (candidates.length === 0) return;
  const host = rng.pick(candidates);
  host.busy = true;
  try {
    if (roll < 0.35) {
      const weight = rng.int(2, 100);
      host.weight.pending.add(weight);
      const result = await write(
        host,
        'POST',
        `/v1/loadbalancing/${host.service}/${host.ip}`,
        { load_balancing_weight: weight },
        204,
      );
      if (result.acked) host.weight = { acked: weight, pending: new Set() };
    } else if (roll < 0.6) {
      const value = rng.pick<OverrideValue>(['DRAINING', 'OUT_OF_SERVICE', 'none', 'none']);
      host.override.pending.add(value);
      const path = `/v1/registration/${host.service}/${host.ip}/status`;
      const result =
        value === 'none'
          ? await write(host, 'DELETE', path, undefined, 204)
          : await write(host, 'PUT', path, { status: value }, 204);
      if (result.acked) host.override = { acked: value, pending: new Set() };
    } else if (roll < 0.72) {
      host.leaving = 'stopped';
      await silence(host);
      host.deleteAttempted = true;
      const path = `/v1/registration/${host.service}/${host.ip}`;
      let result = await write(host, 'DELETE', path, undefined, 200);
      // All replicas failed: once more after a moment, as an operator would.
      if (!result.acked && result.status === undefined) {
        await sleep(1000);
        result = await write(host, 'DELETE', path, undefined, 200);
      }
      // A 400 ("not found") after a failed try: the first try's delete was stored, unanswered.
      if (result.acked || result.status === 400) {
        host.leaving = 'deleted';
        host.deletedAt = Date.now();
      }
    } else {
      // The host stops heartbeating and is left to expire.
      host.leaving = 'stopped';
      await silence(host);
    }
  } finally {
    host.busy = false;
  }
}

// ---- The faults.

async function waitIdle(slot: Slot, boundMs: number): Promise<void> {
  const deadline = Date.now() + boundMs;
  while (slot.inFlight > 0 && Date.now() < deadline) await sleep(20);
}

async function kill(slot: Slot): Promise<void> {
  slot.state = 'down';
  slot.watcher?.close();
  slot.watcher = undefined;
  await slot.proc.stop('SIGKILL');
}

async function restart(slot: Slot): Promise<number> {
  await slot.proc.start();
  slot.state = 'up';
  attachWatcher(slot);
  return Date.now();
}

/** How long before a storage fault or pause an owned host heartbeats last, so its expiry falls inside the fault. */
const OWNED_EXPIRY_LEAD_MS = HOST_LIFETIME_MS - 5000;

async function runFault(kind: FaultKind, slot: Slot, durationMs: number): Promise<void> {
  phase = `${kind} on ${slot.name}${durationMs ? ` for ${durationMs / 1000} s` : ''}`;
  note(`${phase}: starts`);
  // A quiet moment first, so services go longer than HOST_TTL without a change, as quiet services do.
  opsEnabled = false;
  const quietUntil = Date.now() + 1000;
  // The replica about to fail owns the expiry of a host (in the quiet service, which nothing
  // else reads) that heartbeats once and stops: its expiry is due while the fault lasts.
  let owned: HostModel | undefined;
  if (kind === 'storage cut' || kind === 'storage black hole' || kind === 'pause') {
    owned = newHost(QUIET_SERVICE, slot.index);
    const registeredBy = Date.now() + REQUEST_TIMEOUT_MS;
    while (owned.registeredAt === undefined && Date.now() < registeredBy) await sleep(50);
    owned.leaving = 'stopped';
    await silence(owned);
    if (owned.lastAckSendAt === undefined) note(`${phase}: the owned host ${owned.ip} was never acknowledged`);
  }
  const faultAt = owned?.lastAckAt !== undefined ? owned.lastAckAt + OWNED_EXPIRY_LEAD_MS : quietUntil;
  await sleep(Math.max(0, quietUntil - Date.now(), faultAt - Date.now()));
  opsEnabled = true;
  if (kind === 'pause') {
    // Nothing of this test's is left inside it to arrive late.
    slot.state = 'paused';
    await waitIdle(slot, REQUEST_TIMEOUT_MS);
  }
  const fault: Fault = { kind, slot: slot.index, start: Date.now() };
  faults.push(fault);
  switch (kind) {
    case 'storage cut':
      slot.storage.cut();
      break;
    case 'storage black hole':
      slot.storage.blackhole();
      break;
    case 'pause':
      slot.proc.pause();
      break;
    case 'kill and restart':
      await kill(slot);
      break;
    case 'hints cut':
      slot.hints.cut();
      break;
    case 'expiry owner killed':
      throw new Error('runOwnerKilled runs this one');
    case 'every replica’s storage failing':
      throw new Error('not injected: noted when it happens');
  }
  // A proxy that subscribes while its replica's storage is down gets its resources once storage answers.
  let late: XdsWatcher | undefined;
  if (kind === 'storage cut' || kind === 'storage black hole') {
    await sleep(2000);
    late = new XdsWatcher(slot.proc.xdsPort, WATCHED, `chaos-late-${slot.name}`);
    lateWatchers.push(late);
    await sleep(durationMs - 2000);
  } else await sleep(durationMs);
  let healedAt: number;
  switch (kind) {
    case 'storage cut':
    case 'storage black hole':
      slot.storage.heal();
      healedAt = Date.now();
      break;
    case 'pause':
      slot.proc.resume();
      slot.state = 'up';
      healedAt = Date.now();
      break;
    case 'kill and restart':
      healedAt = await restart(slot);
      break;
    case 'hints cut':
      slot.hints.heal();
      healedAt = Date.now();
      break;
    default:
      throw new Error(`not a fault this test injects: ${kind}`);
  }
  fault.end = healedAt;
  opsEnabled = false;
  await converge(`${kind} on ${slot.name} ended`, healedAt, boundOf(kind), {
    extra: late ? [{ name: `${slot.name} stream subscribed during the fault`, slot, watcher: late }] : [],
  });
  late?.close();
  await checkAcknowledgedWrites(phase);
}

/** Hosts that heartbeat only through `slot` stop; then `slot` dies before it could judge them. */
async function runOwnerKilled(slot: Slot): Promise<void> {
  phase = `expiry owner ${slot.name} killed`;
  note(`${phase}: starts`);
  opsEnabled = true;
  const owned = Array.from({ length: OWNER_HOSTS }, () => newHost(QUIET_SERVICE, slot.index));
  const live = () => slots.filter((other) => other.state === 'up' && other.watcher);
  const onEveryStream = () =>
    live().every((other) =>
      owned.every((host) => other.watcher!.clusters.get(QUIET_SERVICE)?.some((endpoint) => endpoint.ip === host.ip)),
    );
  const shownBy = Date.now() + 2 * HEARTBEAT_PERIOD_MS + BOUND_NO_FAULT_MS + NOISE_MARGIN_MS;
  while (!onEveryStream() && Date.now() < shownBy) await sleep(100);
  if (!onEveryStream())
    violation(
      `owner-never-shown`,
      `the owner's hosts (${owned.map((host) => host.ip).join(', ')}) registered through ${slot.name} never reached every stream`,
    );
  // One more heartbeat each, then silence.
  await sleep(HEARTBEAT_PERIOD_MS);
  for (const host of owned) host.leaving = 'stopped';
  await Promise.all(owned.map(silence));
  await sleep(1000);
  const firstExpiry = Math.min(...owned.map((host) => (host.lastAckSendAt ?? 0) + HOST_LIFETIME_MS));
  const fault: Fault = { kind: 'expiry owner killed', slot: slot.index, start: Date.now() };
  faults.push(fault);
  await kill(slot);
  if (fault.start >= firstExpiry)
    note(
      `${phase}: the kill came ${fault.start - firstExpiry} ms after the first expiry (scheduling): the owner may have judged some`,
    );
  const killedAt = fault.start;
  const survivors = slots.filter((other) => other !== slot && other.state === 'up' && other.watcher);
  const took: string[] = [];
  await Promise.all(
    survivors.map(async (other) => {
      const watcher = other.watcher!;
      const gone = () => !owned.some((host) => watcher.clusters.get(QUIET_SERVICE)?.some((e) => e.ip === host.ip));
      try {
        const ms = await watcher.until(gone, BOUND_OWNER_KILLED_MS + NOISE_MARGIN_MS, () => 'owner’s hosts gone');
        took.push(`${other.name} ${Math.round(ms)} ms after the kill (${Date.now() - firstExpiry} ms after expiry)`);
      } catch {
        violation(
          `owner-killed:${other.name}`,
          `expired hosts whose owner ${slot.name} was killed are still on replica ${other.name}'s stream ` +
            `${Date.now() - killedAt} ms after the kill (bound ${BOUND_OWNER_KILLED_MS} ms + noise margin ${NOISE_MARGIN_MS} ms): ` +
            `${QUIET_SERVICE} sends ${describe(watcher.clusters.get(QUIET_SERVICE) ?? [])}, the table's live hosts: ` +
            `${routedWords(await truth!.live(QUIET_SERVICE)).join(', ') || '(none)'}`,
        );
        took.push(`${other.name} NEVER`);
      }
    }),
  );
  note(`${phase}: the owner's expired hosts left ${took.join(', ')}`);
  opsEnabled = false;
  const restartedAt = await restart(slot);
  fault.end = restartedAt;
  await converge(`${slot.name} restarted after the owner's kill`, restartedAt, BOUND_RESTARTED_MS);
  await checkAcknowledgedWrites(phase);
}

// ---- Set-up and tear-down.

before(
  async () => {
    startedAt = Date.now();
    dynamo = await startDynalite();
    const table = freshTableName();
    const admin = testClient(dynamo.endpoint);
    await ensureHostsTable(admin, table, silentLog);
    admin.destroy();
    truth = new TableTruth(dynamo.endpoint, table, HOST_LIFETIME_MS);
    for (const [index, name] of ['A', 'B', 'C'].entries()) {
      const httpPort = await freePort();
      const xdsPort = await freePort();
      const storage = await FaultProxy.inFrontOf(dynamo.endpoint);
      const hints = await FaultProxy.start({ host: '127.0.0.1', port: httpPort });
      const proc = new ReplicaProcess(name, httpPort, xdsPort, {
        BACKEND_STORAGE: 'DynamoDB',
        DYNAMODB_URL: storage.url,
        DYNAMODB_TABLE_HOSTS: table,
        DYNAMODB_TIMEOUT_MS: String(DYNAMODB_TIMEOUT_MS),
        HOST_TTL: String(HOST_TTL_SECONDS),
        CHANGE_FEED_INTERVAL_MS: String(CHANGE_FEED_INTERVAL_MS),
        PEER_URL: hints.url,
        XDS_LISTEN_ADDRESS: '127.0.0.1',
        LOG_LEVEL: 'warn',
      });
      slots.push({
        index,
        name,
        proc,
        storage,
        hints,
        state: 'down',
        watcher: undefined,
        watcherId: '',
        generation: 0,
        inFlight: 0,
      });
    }
    await Promise.all(slots.map((slot) => slot.proc.start()));
    for (const slot of slots) slot.state = 'up';
    note('start: three replicas answer');
  },
  { timeout: 90_000 },
);

/** One step of the tear-down, bounded: a step that hangs is reported and the next ones still run. */
async function tearDownStep(what: string, step: () => Promise<unknown> | void): Promise<void> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), TEAR_DOWN_STEP_MS)));
  const outcome = await Promise.race([Promise.resolve().then(step), bound]).catch((error: unknown) => error);
  clearTimeout(timer);
  if (outcome === 'hung' || Date.now() - started > TEAR_DOWN_STEP_MS / 2)
    process.stderr.write(`chaos tear-down: ${what} took ${Date.now() - started} ms (${String(outcome)})\n`);
}

after(
  async () => {
    running = false;
    opsEnabled = false;
    await tearDownStep('loops', () => Promise.allSettled(loops));
    await tearDownStep('streams', () => {
      for (const slot of slots) slot.watcher?.close();
      for (const watcher of lateWatchers) watcher.close();
    });
    await tearDownStep('replicas', () => Promise.allSettled(slots.map((slot) => slot.proc.stop('SIGKILL'))));
    await tearDownStep('proxies', () =>
      Promise.allSettled(slots.flatMap((slot) => [slot.storage.close(), slot.hints.close()])),
    );
    await tearDownStep('table reader', () => truth?.close());
    await tearDownStep('dynalite', () => dynamo?.close());
    const left = process.getActiveResourcesInfo().filter((kind) => kind !== 'TTYWrap');
    if (left.some((kind) => kind !== 'Timeout' && kind !== 'PipeWrap'))
      process.stderr.write(`chaos tear-down: still active: ${left.join(', ')}\n`);
  },
  { timeout: 60_000 },
);

test(
  `three replicas on one table stay right through storage cuts, black holes, pauses, kills and lost hints (CHAOS_SEED=${SEED})`,
  { timeout: RUN_BOUND_MS },
  async (t) => {
    const rng = new SeededRandom(SEED);
    t.diagnostic(`seed ${SEED} (replay with CHAOS_SEED=${SEED})`);
    // Each replica knows both others before anything is measured (announcements, then a read of the roll).
    const peersDeadline = Date.now() + 20_000;
    for (const slot of slots) {
      for (;;) {
        const text = await (await fetch(`${slot.proc.url}/metrics`)).text();
        if (/^discovery_change_feed_peers 2$/m.test(text)) break;
        if (Date.now() > peersDeadline) assert.fail(`replica ${slot.name} did not learn of its 2 peers within 20 s`);
        await sleep(200);
      }
    }
    for (const service of SERVICES) for (let n = 0; n < HOSTS_PER_SERVICE_AT_START; n++) newHost(service);
    loops.push(heartbeatLoop(), leaveDeadlineLoop(), operationsLoop(), ...slots.map(getLoop));
    // Measured from a settled fleet: every host registered and live in the table, every replica
    // answering GETs from storage (a machine busy with other work can take a while to get there).
    const settledBy = Date.now() + START_SETTLE_MS;
    for (;;) {
      const registered = hosts.every((host) => host.registeredAt !== undefined);
      const live = registered ? [...(await readTruth()).values()].flat().length : 0;
      const answering = await Promise.all(slots.map(async (slot) => (await list(slot, SERVICES[0])) !== undefined));
      if ((registered && live === hosts.length && answering.every(Boolean)) || Date.now() > settledBy) {
        note(`start: ${live} of ${hosts.length} hosts live in the table, GETs answered: ${answering.join(', ')}`);
        break;
      }
      await sleep(250);
    }
    for (const slot of slots) attachWatcher(slot);
    phase = 'start';
    // Not a stated bound: the first responses of three new streams on a busy machine.
    await converge('start', Date.now(), 10_000);
    await checkAcknowledgedWrites('start');

    const targets = () => rng.shuffle(slots);
    // The kill first: the re-read everything its departure causes (a host lifetime after its
    // announcement lapses) is long over when the expiry owner is killed last, so it cannot be
    // what removes the owner's hosts.
    const plan: Array<[FaultKind, number]> = [['kill and restart', DOWN_BEFORE_RESTART_MS]];
    plan.push(
      ...rng.shuffle<[FaultKind, number]>([
        ['storage cut', STORAGE_FAULT_SHORT_MS],
        ['storage cut', STORAGE_FAULT_LONG_MS],
        ['storage black hole', STORAGE_FAULT_SHORT_MS],
        ['storage black hole', STORAGE_FAULT_LONG_MS],
        ['pause', PAUSE_MS],
        ['hints cut', HINTS_CUT_MS],
      ]),
    );
    for (const [kind, durationMs] of plan) await runFault(kind, targets()[0] as Slot, durationMs);
    await runOwnerKilled(targets()[0] as Slot);

    phase = 'end';
    opsEnabled = false;
    await converge('the end', Date.now(), BOUND_NO_FAULT_MS, { quietGets: true });
    await checkAcknowledgedWrites('end');
    for (const line of timeline) t.diagnostic(line);
    const acked = hosts.filter((host) => host.registeredAt !== undefined).length;
    t.diagnostic(
      `${hosts.length} hosts (${acked} registered), ${hosts.filter((h) => h.leaving === 'deleted').length} deleted, ` +
        `${hosts.filter((h) => h.leaving === 'stopped').length} stopped; run took ${elapsed()}`,
    );
    assert.equal(
      violations.length,
      0,
      `${violations.length} violation(s), seed ${SEED} (replay: CHAOS_SEED=${SEED}):\n${summary()}\n` +
        violations.map((found) => `- ${found.text}`).join('\n') +
        `\n\ntimeline:\n${timeline.join('\n')}\n\nlast replica output:\n` +
        slots
          .map((slot) =>
            slot.proc.output
              .slice(-12)
              .map((line) => line.slice(0, 400))
              .join('\n'),
          )
          .join('\n'),
    );
  },
);
