import { randomBytes } from 'node:crypto';
import { intervalPassed, type Clock } from '../clock.js';
import type { Log } from '../logger.js';
import {
  changeKey,
  EVERY_SERVICE,
  SERVICES_PER_CHANGE_MAX,
  type ChangeLog,
  type ChangeRecord,
  type ReplicaAnnouncement,
} from '../hosts/change-log.js';
import type { KeptView, ReadRetries } from '../hosts/freshness.js';
import type { HostEvents } from '../hosts/host-events.js';

/** What the feed needs of the event publisher: this process's changes, and where to publish the others'. */
export type FeedEvents = Pick<HostEvents, 'onLocalChange' | 'publishRemoteChanges' | 'publishResync'>;

/** What one replica tells another at once: the change records it just made (not yet stored, perhaps). */
export interface ChangeHint {
  readonly replica: string;
  readonly changes: readonly ChangeRecord[];
}

/** `sent`: a hint a peer took; `failed`: one that did not reach it; `received`: one a peer sent here. */
export type HintOutcome = 'sent' | 'failed' | 'received';

/** What the feed reports for the metrics (Metrics implements it). */
export interface FeedObserver {
  hint(outcome: HintOutcome): void;
}

/** Sends `hint` to the peer at `url` (its HTTP API's base URL); rejects when it was not taken. */
export type HintSender = (url: string, hint: ChangeHint, signal: AbortSignal) => Promise<void>;

export interface ChangeFeedOptions {
  readonly changeLog: ChangeLog;
  readonly events: FeedEvents;
  readonly clock: Clock;
  readonly log: Log;
  /** `CHANGE_FEED_INTERVAL_MS`: how often the log is read, the catch-up for hints that were lost. */
  readonly intervalMs: number;
  /**
   * The longest a host lives without a heartbeat (HOST_TTL plus HEARTBEAT_WRITE_INTERVAL). Hosts
   * whose last check-in a departed replica wrote have nobody to notice them expire: everything
   * is read again once this long after a replica leaves (and after this one starts), when they
   * have.
   */
  readonly hostLifetimeMs: number;
  /** This replica's HTTP base URL as its peers reach it; undefined until it is listening. */
  readonly ownUrl: () => string | undefined;
  /** How hints are sent (default: `POST <url>/v1/feed/hints` with fetch). */
  readonly sendHint?: HintSender;
  /** The replica id (default: random); never holds `/`. */
  readonly replicaId?: string;
  /** How often this replica renews its announcement (default ANNOUNCE_INTERVAL_MS). */
  readonly announceIntervalMs?: number;
  /** How often the lowest-id replica removes old records (default PRUNE_INTERVAL_MS). */
  readonly pruneIntervalMs?: number;
  readonly observer?: FeedObserver;
  /** How far before the previous read each read starts (default LOOKBACK_MS; tests shorten it). */
  readonly lookbackMs?: number;
  /**
   * What this process keeps built from reads of storage (the xDS cache, cached host lists): the
   * anti-entropy check compares each with the log (see ANTI_ENTROPY_INTERVAL_MS).
   */
  readonly views?: readonly KeptView[];
  /** Told when the log answers a read again, so views whose reads failed retry at once. */
  readonly retries?: ReadRetries;
  /** How often a read of the log looks back ANTI_ENTROPY_WINDOW_MS and checks the views (default ANTI_ENTROPY_INTERVAL_MS). */
  readonly antiEntropyIntervalMs?: number;
}

/** The path hints are POSTed to on every peer (src/http/feed-routes.ts). */
export const HINT_PATH = '/v1/feed/hints';

/**
 * Each read starts this far before the previous one did: a record is stamped by its writer's
 * clock before it is stored, so one stamped a little before the last read began may be stored
 * after it. Covers store latency and clocks up to this far apart; keys already applied are
 * skipped. It is also how much of the log every read returns while replicas write.
 */
export const LOOKBACK_MS = 10_000;
/** A replica renews its announcement this often; one not renewed for three times as long has left. */
export const ANNOUNCE_INTERVAL_MS = 15_000;
export const PRUNE_INTERVAL_MS = 5 * 60_000;
/** Records older than this are removed by the prune; far more than any read looks back. */
export const PRUNE_AGE_MS = 10 * 60_000;
/**
 * Anti-entropy: this often (the read due next after it) a read of the log looks back
 * ANTI_ENTROPY_WINDOW_MS instead of LOOKBACK_MS, and every view this process keeps is checked
 * against every peer's record in that window: a view of a service read before a change to it
 * was recorded is behind, whatever the reason (a record applied while the view's read failed
 * and its retry was lost, a clock further off than LOOKBACK_MS, a bug), and is read again. It
 * costs no call of its own: it is one of the regular reads, a longer one only while the log
 * holds records (1 Query per MB of them).
 */
export const ANTI_ENTROPY_INTERVAL_MS = 15_000;
/** How far back the anti-entropy read looks: within the 10 minutes the log keeps records. */
export const ANTI_ENTROPY_WINDOW_MS = 2 * 60_000;
/** After reads failed for longer than this, the gap is not read back: everything is read again instead. */
const CATCH_UP_MAX_MS = 5 * 60_000;
/**
 * At most one record per this many ms per replica (20 a second): every replica writes records
 * into one partition of the table, which DynamoDB serves at up to 1,000 writes a second.
 */
export const RECORD_SPACING_MS = 50;
/** A hint not answered in this time is dropped; the next read of the log catches it up. */
const HINT_TIMEOUT_MS = 1_000;
/** Records waiting for one peer; past this the oldest are dropped (the log has them). */
export const HINT_QUEUE_MAX = 64;
/** Records not yet stored; past this they are folded into one that says "everything". */
const UNSTORED_MAX = 100;
/** Keys of records applied, remembered to skip the same record read again or hinted and read. */
const SEEN_MAX = 100_000;
const APPEND_RETRY_MIN_MS = 250;
const APPEND_RETRY_MAX_MS = 5_000;
/** While the own URL is unknown (not listening yet), the first announcement is tried this often. */
const ANNOUNCE_RETRY_MS = 500;
/** On close, how long stored-but-pending records and the withdrawal may take. */
const CLOSE_WAIT_MS = 2_000;

interface Peer {
  readonly id: string;
  url: string;
  queue: ChangeRecord[];
  sending: boolean;
  failing: boolean;
}

/**
 * How replicas that share one store learn of each other's routing changes without re-reading
 * what they serve (docs/replicas.md):
 *
 * - Each local change (HostEvents.onLocalChange) becomes a change record naming its services;
 *   changes of one event-loop turn, and under a stream of changes those of each 50 ms, share one.
 * - The record is hinted at once to every peer (`POST /v1/feed/hints`), which drops what it
 *   built for those services and re-reads them, and stored in the change log (one write).
 * - Every `intervalMs` each replica reads the log since its last read (one Query, which also
 *   returns the replica roll): records it missed as hints are applied then. A lost hint costs
 *   at most one interval of staleness.
 * - What the log cannot say (a replica died between a host write and its record; hosts only a
 *   departed replica would have seen expire) is covered by reading everything again when a peer
 *   leaves the roll and once more a host lifetime later.
 */
export class ChangeFeed {
  readonly replicaId: string;
  private readonly log: Log;
  private readonly clock: Clock;
  private readonly changeLog: ChangeLog;
  private readonly sendHint: HintSender;
  private readonly announceIntervalMs: number;
  private readonly pruneIntervalMs: number;
  private readonly lookbackMs: number;
  private sequence = 0;
  private readonly pending = new Set<string>();
  private flushScheduled = false;
  private lastFlushAt = -Infinity;
  private unstored: ChangeRecord[] = [];
  private appending: Promise<void> | undefined;
  private readonly peers = new Map<string, Peer>();
  private readonly seen = new Map<string, number>();
  /** Where the next read starts (epoch ms); undefined before the first. */
  private readFrom: number | undefined;
  private lastReadAt: number | undefined;
  private readFailing = false;
  private lastAntiEntropyAt: number;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly unsubscribe: () => void;
  private started = false;
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(private readonly options: ChangeFeedOptions) {
    this.replicaId = options.replicaId ?? randomBytes(6).toString('base64url');
    if (this.replicaId.includes('/')) throw new Error('a replica id never holds "/"');
    this.log = options.log;
    this.clock = options.clock;
    this.changeLog = options.changeLog;
    this.sendHint = options.sendHint ?? postHint;
    this.announceIntervalMs = options.announceIntervalMs ?? ANNOUNCE_INTERVAL_MS;
    this.pruneIntervalMs = options.pruneIntervalMs ?? PRUNE_INTERVAL_MS;
    this.lookbackMs = options.lookbackMs ?? LOOKBACK_MS;
    // The first check comes one interval after start: what the views hold then was read since.
    this.lastAntiEntropyAt = this.clock.now();
    this.unsubscribe = options.events.onLocalChange((service) => this.localChange(service));
  }

  /** Starts reading the log, announcing this replica and pruning. Idempotent. */
  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    this.later(0, () => this.pollLoop());
    this.later(0, () => this.announceLoop());
    this.later(this.pruneIntervalMs, () => this.pruneLoop());
    // Hosts written before this process started that nobody heartbeats any more: found expired now.
    this.later(this.options.hostLifetimeMs + this.options.intervalMs, () => this.options.events.publishResync());
  }

  /** Peers this replica knows and hints (for the admin view and tests). */
  peerIds(): readonly string[] {
    return [...this.peers.keys()].sort();
  }

  /** A peer's hint: the changes it names that were not applied yet are applied now. */
  receiveHint(hint: ChangeHint): void {
    if (this.closed || hint.replica === this.replicaId) return;
    this.options.observer?.hint('received');
    this.apply(hint.changes, 'hint');
  }

  /** Stores what is pending (briefly bounded), withdraws this replica from the roll and stops. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.unsubscribe();
      this.flush();
      this.closed = true;
      for (const timer of this.timers) clearTimeout(timer);
      this.timers.clear();
      const withinTime = <T>(work: Promise<T>) =>
        Promise.race([work.catch(() => undefined), new Promise((resolve) => setTimeout(resolve, CLOSE_WAIT_MS))]);
      await withinTime(this.appending ?? Promise.resolve());
      if (this.started) await withinTime(this.changeLog.withdraw(this.replicaId));
    })();
    return this.closing;
  }

  private localChange(service: string): void {
    if (this.closed) return;
    this.pending.add(service);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    const run = () => {
      this.flushScheduled = false;
      this.lastFlushAt = this.clock.now();
      this.flush();
    };
    // The changes of this turn (a batch of writes answered together) make one record, and under
    // a stream of changes, those of each RECORD_SPACING_MS: the first change after a quiet spell
    // goes out at once, and the log's one partition takes a bounded rate of writes per replica.
    // Never longer than the spacing: the wall clock can step back (NTP, a restored VM), and a wait
    // computed from it alone would hold the next record, and its hints, for the size of the step.
    const wait = Math.min(RECORD_SPACING_MS, this.lastFlushAt + RECORD_SPACING_MS - this.clock.now());
    if (wait <= 0) setImmediate(run);
    else {
      // Cleared by close(), which flushes what is pending itself.
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        run();
      }, wait);
      this.timers.add(timer);
    }
  }

  private flush(): void {
    if (this.pending.size === 0) return;
    const services = this.pending.size > SERVICES_PER_CHANGE_MAX ? [EVERY_SERVICE] : [...this.pending];
    this.pending.clear();
    const record = this.record(services);
    for (const peer of this.peers.values()) this.hint(peer, record);
    if (this.unstored.length >= UNSTORED_MAX) {
      // Storage has been failing: fold what waits into one record that makes everyone re-read all.
      const head = this.unstored[0] as ChangeRecord;
      this.unstored = [head, this.record([EVERY_SERVICE])];
    } else {
      this.unstored.push(record);
    }
    this.appending ??= this.appendAll().finally(() => {
      this.appending = undefined;
    });
  }

  private record(services: readonly string[]): ChangeRecord {
    const at = this.clock.now();
    this.sequence = (this.sequence + 1) % 1e9;
    return { key: changeKey(at, this.replicaId, this.sequence), replica: this.replicaId, services, at };
  }

  /** Stores the unstored records one at a time, oldest first, retrying until each is stored. */
  private async appendAll(): Promise<void> {
    let failures = 0;
    while (this.unstored.length > 0) {
      let head = this.unstored[0] as ChangeRecord;
      // A record stamped longer ago than readers look back could be stored behind their reads.
      if (this.clock.now() - head.at > this.lookbackMs / 2) {
        head = this.record(head.services);
        this.unstored[0] = head;
      }
      try {
        await this.changeLog.append(head);
        this.unstored.shift();
        if (failures > 0) this.log.info({ failures }, 'change feed: records are stored again');
        failures = 0;
      } catch (error) {
        if (this.closed) return;
        if (failures === 0)
          this.log.warn({ err: error }, 'change feed: could not store a change record; retrying (peers were hinted)');
        failures++;
        const delay = Math.min(APPEND_RETRY_MAX_MS, APPEND_RETRY_MIN_MS * 2 ** Math.min(failures, 10));
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  private hint(peer: Peer, record: ChangeRecord): void {
    peer.queue.push(record);
    if (peer.queue.length > HINT_QUEUE_MAX) peer.queue.shift();
    if (!peer.sending) void this.sendHints(peer);
  }

  /** One hint in flight per peer: what queues meanwhile goes in the next one. */
  private async sendHints(peer: Peer): Promise<void> {
    peer.sending = true;
    try {
      while (peer.queue.length > 0 && !this.closed && this.peers.get(peer.id) === peer) {
        const changes = peer.queue;
        peer.queue = [];
        try {
          await this.sendHint(peer.url, { replica: this.replicaId, changes }, AbortSignal.timeout(HINT_TIMEOUT_MS));
          this.options.observer?.hint('sent');
          if (peer.failing) this.log.info({ peer: peer.id, url: peer.url }, 'change feed: hints reach the peer again');
          peer.failing = false;
        } catch (error) {
          // Lost: the peer reads these records from the log within its interval.
          this.options.observer?.hint('failed');
          if (!peer.failing)
            this.log.warn(
              { err: error, peer: peer.id, url: peer.url },
              'change feed: a hint did not reach a peer; it catches up from the log (see PEER_URL)',
            );
          peer.failing = true;
        }
      }
    } finally {
      peer.sending = false;
    }
  }

  /**
   * Applies the records not applied yet (own records and repeats are skipped); returns the
   * services it made this process re-read (EVERY_SERVICE for all).
   */
  private apply(changes: readonly ChangeRecord[], source: 'hint' | 'log'): ReadonlySet<string> {
    const services = new Set<string>();
    let everything = false;
    for (const change of changes) {
      if (change.replica === this.replicaId || this.seen.has(change.key)) continue;
      this.seen.set(change.key, change.at);
      if (this.seen.size > SEEN_MAX) this.seen.delete(this.seen.keys().next().value as string);
      for (const service of change.services) {
        if (service === EVERY_SERVICE) everything = true;
        else services.add(service);
      }
    }
    if (everything || services.size > 0)
      this.log.debug({ source, services: everything ? 'every' : services.size }, 'change feed: applying changes');
    if (everything) this.options.events.publishResync();
    else if (services.size > 0) this.options.events.publishRemoteChanges(services);
    return everything ? new Set([EVERY_SERVICE]) : services;
  }

  /**
   * The anti-entropy check (ANTI_ENTROPY_INTERVAL_MS): every kept view of a service that a
   * peer's record in `changes` names, read before that record was made, is read again.
   * `justApplied` were re-read by this very read of the log and are not counted twice.
   */
  private checkViews(changes: readonly ChangeRecord[], justApplied: ReadonlySet<string>): void {
    if (justApplied.has(EVERY_SERVICE)) return;
    const latest = new Map<string, number>();
    let everythingAt = -Infinity;
    for (const change of changes) {
      if (change.replica === this.replicaId) continue;
      for (const service of change.services) {
        if (service === EVERY_SERVICE) everythingAt = Math.max(everythingAt, change.at);
        else if (!justApplied.has(service)) latest.set(service, Math.max(latest.get(service) ?? -Infinity, change.at));
      }
    }
    const behind = new Set<string>();
    for (const view of this.options.views ?? []) {
      for (const [service, at] of latest) {
        const readAt = view.keptReadAt(service);
        if (readAt !== undefined && readAt < at) behind.add(service);
      }
      if (everythingAt === -Infinity) continue;
      for (const service of view.keptServices()) {
        const readAt = view.keptReadAt(service);
        if (readAt !== undefined && readAt < everythingAt && !justApplied.has(service)) behind.add(service);
      }
    }
    if (behind.size === 0) return;
    this.log.info(
      { services: behind.size, example: behind.values().next().value },
      'change feed: anti-entropy found views read before a recorded change; reading them again',
    );
    this.options.events.publishRemoteChanges(behind);
  }

  private async pollLoop(): Promise<void> {
    await this.readOnce();
    this.later(this.options.intervalMs, () => this.pollLoop());
  }

  /** One read of the log: the records since the last read, and the roll of replicas. */
  private async readOnce(): Promise<void> {
    const startedAt = this.clock.now();
    let from = this.readFrom ?? startedAt - this.lookbackMs;
    // Down for long: reading the whole gap back would be large; reading everything again is sure.
    const tooFarBehind = from < startedAt - CATCH_UP_MAX_MS;
    if (tooFarBehind) from = startedAt - this.lookbackMs;
    const antiEntropy =
      !tooFarBehind &&
      intervalPassed(startedAt, this.lastAntiEntropyAt, this.options.antiEntropyIntervalMs ?? ANTI_ENTROPY_INTERVAL_MS);
    const readFrom = antiEntropy ? Math.min(from, startedAt - ANTI_ENTROPY_WINDOW_MS) : from;
    let page;
    try {
      page = await this.changeLog.read(readFrom);
    } catch (error) {
      if (!this.readFailing) this.log.warn({ err: error }, 'change feed: could not read the change log; retrying');
      this.readFailing = true;
      return;
    }
    if (this.closed) return;
    if (this.readFailing) this.log.info({}, 'change feed: the change log is read again');
    this.readFailing = false;
    // Storage answers again: views whose reads failed retry now rather than at their back-off.
    this.options.retries?.answered();
    if (tooFarBehind) this.options.events.publishResync();
    // Records before `from` were applied by earlier reads (or are the anti-entropy's alone).
    const applied = this.apply(antiEntropy ? page.changes.filter((change) => change.at >= from) : page.changes, 'log');
    if (antiEntropy) {
      this.lastAntiEntropyAt = startedAt;
      this.checkViews(page.changes, applied);
    }
    // Reads start at `from` or later from now on: a record before it is never returned again.
    this.forgetSeenBefore(from);
    this.readFrom = Math.max(from, startedAt - this.lookbackMs);
    this.updatePeers(page.replicas);
    this.lastReadAt = startedAt;
  }

  private forgetSeenBefore(at: number): void {
    // Not in time order (a hint can arrive after a later record was read): every entry is looked at.
    for (const [key, seenAt] of this.seen) if (seenAt < at) this.seen.delete(key);
  }

  private updatePeers(replicas: readonly ReplicaAnnouncement[]): void {
    const now = this.clock.now();
    const live = new Map<string, ReplicaAnnouncement>();
    for (const replica of replicas) {
      if (replica.id !== this.replicaId && replica.aliveUntil > now && replica.url !== '')
        live.set(replica.id, replica);
    }
    let left = false;
    for (const [id, peer] of this.peers) {
      if (live.has(id)) continue;
      this.peers.delete(id);
      left = true;
      this.log.info({ peer: id, url: peer.url }, 'change feed: a replica left; re-reading everything');
    }
    for (const [id, replica] of live) {
      const peer = this.peers.get(id);
      if (peer) {
        peer.url = replica.url;
        continue;
      }
      this.peers.set(id, {
        id,
        url: replica.url,
        queue: [],
        sending: false,
        failing: false,
      });
      if (this.lastReadAt !== undefined) this.log.info({ peer: id, url: replica.url }, 'change feed: a replica joined');
    }
    if (left) {
      // Now for a write it made but did not record; a host lifetime later for its hosts' expiry.
      this.options.events.publishResync();
      this.later(this.options.hostLifetimeMs + this.options.intervalMs, () => this.options.events.publishResync());
    }
  }

  private async announceLoop(): Promise<void> {
    const url = this.options.ownUrl();
    if (url === undefined) {
      this.later(ANNOUNCE_RETRY_MS, () => this.announceLoop());
      return;
    }
    try {
      await this.changeLog.announce({
        id: this.replicaId,
        url,
        aliveUntil: this.clock.now() + 3 * this.announceIntervalMs,
      });
    } catch (error) {
      this.log.warn({ err: error }, 'change feed: could not announce this replica; peers hint it once it is');
    }
    this.later(this.announceIntervalMs, () => this.announceLoop());
  }

  /** The replica with the lowest id removes old records and stale announcements, so one does, not all. */
  private async pruneLoop(): Promise<void> {
    const lowest = [this.replicaId, ...this.peers.keys()].sort()[0];
    if (lowest === this.replicaId) {
      try {
        const now = this.clock.now();
        const removed = await this.changeLog.prune(now - PRUNE_AGE_MS);
        const page = await this.changeLog.read(now);
        for (const replica of page.replicas) {
          if (replica.aliveUntil < now - PRUNE_AGE_MS) await this.changeLog.withdraw(replica.id);
        }
        this.log.debug({ removed }, 'change feed: old records removed');
      } catch (error) {
        this.log.warn({ err: error }, 'change feed: could not remove old records; tried again later');
      }
    }
    this.later(this.pruneIntervalMs, () => this.pruneLoop());
  }

  private later(delayMs: number, task: () => unknown): void {
    if (this.closed) return;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (this.closed) return;
      Promise.resolve()
        .then(task)
        .catch((error: unknown) => this.log.error({ err: error }, 'change feed task failed'));
    }, delayMs);
    timer.unref();
    this.timers.add(timer);
  }
}

/** The default HintSender: a JSON POST, with the peer token when one is set. */
export function hintSender(peerToken: string | undefined): HintSender {
  return async (url, hint, signal) => {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (peerToken !== undefined) headers.authorization = `Bearer ${peerToken}`;
    const response = await fetch(`${url.replace(/\/+$/, '')}${HINT_PATH}`, {
      method: 'POST',
      headers,
      body: JSON.stringify(hint),
      signal,
    });
    // Read to the end, so the connection is reused for the next hint.
    const body = await response.text();
    if (!response.ok) throw new Error(`peer answered ${response.status}: ${body.slice(0, 200)}`);
  };
}

const postHint = hintSender(undefined);
