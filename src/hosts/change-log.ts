/**
 * What a store shared by several replica processes (a DynamoDB table) offers so that they learn
 * of each other's routing changes by reading one feed, not by re-reading every service they
 * serve: a log of which services changed, and the roll of replicas with the address each takes
 * hints at. The domain (ChangeFeed) owns the rules; this is only what it stores. A store that
 * one process holds alone (InMemory, InFile) has none: its own change events say everything.
 */
export interface ChangeLog {
  /**
   * Stores one change record (one write however many services). Writing the same key again
   * stores the same record: a retried append is not a second change. Resolves once stored.
   */
  append(change: ChangeRecord): Promise<void>;

  /**
   * In one read: every change recorded at or after `sinceMs` (by any replica, oldest first), and
   * every replica's announcement. Entries written with a clock behind the reader's are found by
   * reading with a `sinceMs` some way back; `ChangeRecord.key` tells the ones seen already.
   */
  read(sinceMs: number): Promise<ChangeLogPage>;

  /** Records or renews this replica's announcement. */
  announce(replica: ReplicaAnnouncement): Promise<void>;

  /** Removes this replica's announcement (a clean shutdown), so peers stop hinting it at once. */
  withdraw(replicaId: string): Promise<void>;

  /** Removes changes recorded before `beforeMs`; resolves with how many it removed. */
  prune(beforeMs: number): Promise<number>;
}

/** One recorded change: which services, through which replica, when (epoch ms, the writer's clock). */
export interface ChangeRecord {
  /**
   * Unique per record, chosen by the writer (changeKey), so a hint sent before the record is
   * stored names it too: what a reader remembers to apply a change once, by hint or by read.
   */
  readonly key: string;
  readonly replica: string;
  readonly services: readonly string[];
  readonly at: number;
}

/** A replica taking hints: where, and until when its announcement holds unless renewed. */
export interface ReplicaAnnouncement {
  readonly id: string;
  /** Base URL of the replica's HTTP API, as its peers reach it (`PEER_URL`). */
  readonly url: string;
  /** Epoch ms after which a replica that has not renewed its announcement is gone. */
  readonly aliveUntil: number;
}

export interface ChangeLogPage {
  readonly changes: readonly ChangeRecord[];
  readonly replicas: readonly ReplicaAnnouncement[];
}

/**
 * The service name a change record holds when more services changed than one record or one hint
 * carries: every reader then re-reads everything it serves. Not a service name (it holds `/`).
 */
export const EVERY_SERVICE = 'discovery/every-service';

/** At most this many services in one record or one hint; past it, EVERY_SERVICE stands for them. */
export const SERVICES_PER_CHANGE_MAX = 500;

/** A record's key: its time first, then who wrote it, so keys sort by time as text. */
export function changeKey(at: number, replica: string, sequence: number): string {
  return `${changeKeyTime(at)}/${replica}/${sequence}`;
}

/** The time part of a key, epoch ms as 15 digits (good until the year 33658): where a read by time starts. */
export function changeKeyTime(ms: number): string {
  return String(Math.max(0, Math.floor(ms))).padStart(15, '0');
}
