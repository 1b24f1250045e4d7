import { constants } from 'node:fs';
import { access, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { StorageUnavailableError } from '../errors.js';
import type { Log } from '../logger.js';
import {
  mergeHeartbeat,
  mergeTags,
  withStatuses,
  type Heartbeat,
  type Host,
  type InstanceStatus,
} from '../hosts/model.js';
import type { HeartbeatResult } from '../hosts/host-store.js';
import { MemoryHostStore } from './memory-host-store.js';
import { NODE_FS, type StoreFileSystem } from './file/disk.js';
import { loadFiles } from './file/load.js';
import { Journal, type JournalEntry } from './file/journal.js';
import { AtomicFileWriter, removeTemporaryFiles, snapshotText } from './file/snapshot-file.js';

/** Thrown by `open` when a data file cannot be loaded as it is. */
export { DamagedDataFileError } from './file/load.js';

export interface FileHostStoreOptions {
  /** Folder that holds `hosts.json` (the snapshot) and `hosts.journal` (writes since it). */
  readonly directory: string;
  /**
   * fsync every journal write before the request is answered. Off, a write that was answered
   * survives a crash of the process but not of the machine.
   */
  readonly fsync?: boolean;
  /** Rewrite the snapshot once the journal holds this many entries more than there are hosts. */
  readonly compactAfterEntries?: number;
  /** Where recoveries and failed compactions are reported; silent when absent. */
  readonly log?: Log;
  /**
   * The file operations the store writes through; the real ones by default. A seam for tests
   * that need a disk that fills up or a write that comes back short.
   */
  readonly fs?: StoreFileSystem;
  /** Run once by `close`, after the journal is closed (releases the APPLICATION_DIR lock). */
  readonly onClose?: () => Promise<void>;
}

/** Rewriting the snapshot costs one pass over every host; amortised over this many writes it is cheap. */
const DEFAULT_COMPACT_AFTER_ENTRIES = 10_000;

/** What one queued write changes: a whole record to store, or a record to remove. */
type Change = JournalEntry;

/** Looks a record up as the batch being built sees it: the durable state plus the batch's earlier writes. */
type BatchView = (service: string, ipAddress: string) => Host | undefined;

interface QueuedWrite {
  /** Works out, against the state its batch sees, what the write changes and what its caller is answered. */
  apply(view: BatchView): { change?: Change; answer: unknown };
  resolve(answer: unknown): void;
  reject(error: unknown): void;
}

/**
 * The in-memory registry made durable under `APPLICATION_DIR`.
 *
 * Every write is appended to a journal (one JSON line per record) and the caller is answered
 * only once the line is written, so an acknowledged registration survives `kill -9`. Writes that
 * arrive together share one append (group commit). A write is worked out against the durable
 * state plus the earlier writes of its batch, and reaches the served maps only once its line is
 * written, so a read never sees a write that could still fail, and a write answered as failed
 * did not happen. A failed append is cut off the journal again, so later lines stay whole.
 *
 * The journal is folded into a snapshot written to a temporary file, fsynced, read back and
 * renamed over the old one; only then is the journal emptied, so a compaction that fails at any
 * step leaves both old files as they were. Replaying a journal over a snapshot that already
 * holds it is harmless, since every entry is a whole record.
 *
 * On start, a journal whose lines are partly unreadable is recovered up to its good lines, with
 * a warning and the damaged file kept aside; a snapshot that cannot be read stops start-up with
 * a message saying where and what to do, since starting without it would serve an empty registry.
 */
export class FileHostStore extends MemoryHostStore {
  private readonly directory: string;
  private readonly snapshotPath: string;
  private readonly journalPath: string;
  private readonly fsync: boolean;
  private readonly compactAfterEntries: number;
  private readonly fs: StoreFileSystem;
  private readonly log: Log | undefined;
  private journal: Journal | undefined;
  /** After a failed compaction, the next is tried once the journal has this many entries. */
  private compactRetryAt = 0;
  private readonly files: AtomicFileWriter;
  private queue: QueuedWrite[] = [];
  private flushing: Promise<void> | undefined;
  private closed = false;
  private readonly onClose: (() => Promise<void>) | undefined;

  private constructor(options: FileHostStoreOptions) {
    super();
    this.directory = options.directory;
    this.snapshotPath = path.join(options.directory, 'hosts.json');
    this.journalPath = path.join(options.directory, 'hosts.journal');
    this.fsync = options.fsync ?? true;
    this.compactAfterEntries = options.compactAfterEntries ?? DEFAULT_COMPACT_AFTER_ENTRIES;
    this.fs = options.fs ?? NODE_FS;
    this.files = new AtomicFileWriter(options.directory, this.fs);
    this.log = options.log;
    this.onClose = options.onClose;
  }

  /** Loads the snapshot and replays the journal, then opens the journal for appending. */
  static async open(options: FileHostStoreOptions): Promise<FileHostStore> {
    const store = new FileHostStore(options);
    await mkdir(options.directory, { recursive: true });
    await removeTemporaryFiles(options.directory, [store.snapshotPath, store.journalPath], options.log);
    const loaded = await loadFiles(
      {
        directory: store.directory,
        snapshotPath: store.snapshotPath,
        journalPath: store.journalPath,
        fs: store.fs,
        writer: store.files,
        log: store.log,
      },
      (entry) => store.replay(entry),
    );
    store.journal = await Journal.open(store.fs, store.journalPath, { fsync: store.fsync, log: store.log, ...loaded });
    return store;
  }

  override heartbeat(heartbeat: Heartbeat): Promise<HeartbeatResult> {
    return this.enqueue((view) => {
      const previous = view(heartbeat.service, heartbeat.ip_address);
      const current = mergeHeartbeat(previous, heartbeat);
      return { change: { put: current }, answer: { previous, current } };
    });
  }

  override delete(service: string, ipAddress: string): Promise<Host | undefined> {
    return this.enqueue((view) => {
      const existing = view(service, ipAddress);
      return existing ? { change: { del: [service, ipAddress] }, answer: existing } : { answer: undefined };
    });
  }

  override deleteIfCheckInIs(service: string, ipAddress: string, lastCheckIn: string): Promise<boolean> {
    return this.enqueue((view) => {
      const existing = view(service, ipAddress);
      if (!existing || existing.last_check_in !== lastCheckIn) return { answer: false };
      return { change: { del: [service, ipAddress] }, answer: true };
    });
  }

  override updateTags(
    service: string,
    ipAddress: string,
    tags: Readonly<Record<string, unknown>>,
  ): Promise<Host | undefined> {
    return this.enqueue((view) => {
      const existing = view(service, ipAddress);
      if (!existing) return { answer: undefined };
      const updated: Host = { ...existing, tags: mergeTags(existing.tags, tags) };
      return { change: { put: updated }, answer: updated };
    });
  }

  override setStatusOverride(
    service: string,
    ipAddress: string,
    status: InstanceStatus | undefined,
  ): Promise<Host | undefined> {
    return this.enqueue((view) => {
      const existing = view(service, ipAddress);
      if (!existing) return { answer: undefined };
      const updated = withStatuses(existing, existing.reported_status, status);
      return { change: { put: updated }, answer: updated };
    });
  }

  override async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.drain();
    await this.journal?.close();
    this.journal = undefined;
    await this.onClose?.();
  }

  /** Ready while open and its folder is still there to write to. */
  override async ping(): Promise<void> {
    if (this.closed) throw new StorageUnavailableError('the InFile store is closed');
    try {
      await access(this.directory, constants.W_OK);
    } catch (error) {
      throw new StorageUnavailableError(
        `the InFile folder ${this.directory} is not writable: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  }

  private enqueue<T>(apply: QueuedWrite['apply']): Promise<T> {
    if (this.closed) return Promise.reject(new StorageUnavailableError('the InFile store is closed'));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ apply, resolve: resolve as (answer: unknown) => void, reject });
      if (!this.flushing) this.flushing = this.flushLoop();
    });
  }

  /**
   * Writes everything queued, in batches, until nothing is left; one writer at a time keeps
   * lines whole and in order. Each batch is worked out only when its turn comes, over the state
   * the batch before it left, so a failed batch never leaks into the next.
   */
  private async flushLoop(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue;
        this.queue = [];
        await this.commit(batch);
      }
    } finally {
      this.flushing = undefined;
    }
  }

  private async commit(batch: QueuedWrite[]): Promise<void> {
    const pending = new Map<string, Host | null>();
    const view: BatchView = (service, ipAddress) => {
      const key = recordKey(service, ipAddress);
      return pending.has(key) ? (pending.get(key) ?? undefined) : this.lookup(service, ipAddress);
    };
    const changes: Change[] = [];
    const answers: unknown[] = [];
    try {
      for (const write of batch) {
        const { change, answer } = write.apply(view);
        answers.push(answer);
        if (!change) continue;
        changes.push(change);
        if ('put' in change) pending.set(recordKey(change.put.service, change.put.ip_address), change.put);
        else pending.set(recordKey(change.del[0], change.del[1]), null);
      }
      if (changes.length > 0) await this.append(changes);
    } catch (error) {
      const failure = new StorageUnavailableError('could not write the InFile journal', { cause: error });
      for (const write of batch) write.reject(failure);
      return;
    }
    // Durable: now, and only now, the writes are served.
    for (const change of changes) {
      if ('put' in change) this.put(change.put);
      else this.remove(change.del[0], change.del[1]);
    }
    const journalEntries = this.journal?.entries ?? 0;
    // Answered once its compaction, if one came due, is over; that never fails a durable batch.
    if (journalEntries > this.compactAfterEntries && journalEntries >= this.compactRetryAt)
      await this.compactOrKeepOld();
    batch.forEach((write, index) => write.resolve(answers[index]));
  }

  private async append(changes: readonly Change[]): Promise<void> {
    if (!this.journal) throw new Error('journal is not open');
    await this.journal.append(changes);
  }

  /** A durable batch is never failed by its compaction: on any error the old snapshot and journal stay, and it is tried again later. */
  private async compactOrKeepOld(): Promise<void> {
    try {
      await this.compact();
      this.compactRetryAt = 0;
    } catch (error) {
      const journalEntries = this.journal?.entries ?? 0;
      this.compactRetryAt = journalEntries + Math.max(1, Math.ceil(this.compactAfterEntries / 10));
      this.log?.error(
        { err: error, snapshot: this.snapshotPath, journal: this.journalPath, journalEntries },
        'InFile: could not write a new snapshot (is the disk full?); the old snapshot and journal are kept and every answered write is in them; retrying later',
      );
    }
  }

  /** Folds the journal into a new snapshot; runs inside the writer loop, so no append interleaves. */
  private async compact(): Promise<void> {
    const hosts = [...this.allHosts()];
    await this.files.replace(this.snapshotPath, Buffer.from(snapshotText(hosts)));
    await this.journal?.empty();
  }

  private async drain(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  private replay(entry: JournalEntry): void {
    if ('put' in entry) this.put(entry.put);
    else this.remove(entry.del[0], entry.del[1]);
  }
}

function recordKey(service: string, ipAddress: string): string {
  return `${service}\u0000${ipAddress}`;
}
