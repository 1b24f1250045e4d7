import { constants } from 'node:fs';
import { access, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { StorageUnavailableError } from '../errors.js';
import type { Log } from '../logger.js';
import type { Heartbeat, Host, InstanceStatus } from '../hosts/model.js';
import type { HeartbeatResult, HostStore, ServiceHosts } from '../hosts/host-store.js';
import { MemoryHostStore, recordWrites, type RecordChange, type RecordWrite } from './memory-host-store.js';
import { NODE_FS, type StoreFileSystem } from './file/disk.js';
import { loadFiles, type StoreFiles } from './file/load.js';
import { Journal } from './file/journal.js';
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

interface QueuedWrite {
  /** Worked out when its batch is, against the durable state plus the batch's earlier writes. */
  write: RecordWrite<unknown>;
  resolve(answer: unknown): void;
  reject(error: unknown): void;
}

/**
 * The in-memory registry made durable under `APPLICATION_DIR`: a MemoryHostStore serves the
 * reads, and is changed only by writes this store has made durable, following the same merge
 * rule (`recordWrites`).
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
export class FileHostStore implements HostStore {
  private readonly compactAfterEntries: number;
  private readonly log: Log | undefined;
  private readonly onClose: (() => Promise<void>) | undefined;
  /** After a failed compaction, the next is tried once the journal has this many entries. */
  private compactRetryAt = 0;
  private queue: QueuedWrite[] = [];
  private flushing: Promise<void> | undefined;
  private closed = false;

  private constructor(
    options: FileHostStoreOptions,
    private readonly files: StoreFiles,
    /** What is served: the durable state, and nothing else. */
    private readonly memory: MemoryHostStore,
    private readonly journal: Journal,
  ) {
    this.compactAfterEntries = options.compactAfterEntries ?? DEFAULT_COMPACT_AFTER_ENTRIES;
    this.log = options.log;
    this.onClose = options.onClose;
  }

  /** Loads the snapshot and replays the journal, then opens the journal for appending. */
  static async open(options: FileHostStoreOptions): Promise<FileHostStore> {
    const { directory, log } = options;
    const fs = options.fs ?? NODE_FS;
    const files: StoreFiles = {
      directory,
      snapshotPath: path.join(directory, 'hosts.json'),
      journalPath: path.join(directory, 'hosts.journal'),
      fs,
      writer: new AtomicFileWriter(directory, fs),
      log,
    };
    await mkdir(directory, { recursive: true });
    await removeTemporaryFiles(directory, [files.snapshotPath, files.journalPath], log);
    const memory = new MemoryHostStore();
    const loaded = await loadFiles(files, (entry) => memory.apply(entry));
    const journal = await Journal.open(fs, files.journalPath, { fsync: options.fsync ?? true, log, ...loaded });
    return new FileHostStore(options, files, memory, journal);
  }

  heartbeat(heartbeat: Heartbeat): Promise<HeartbeatResult> {
    return this.enqueue(recordWrites.heartbeat(heartbeat));
  }

  get(service: string, ipAddress: string): Promise<Host | undefined> {
    return this.memory.get(service, ipAddress);
  }

  listByService(service: string): Promise<ServiceHosts> {
    return this.memory.listByService(service);
  }

  currentChangeToken(service: string): number {
    return this.memory.currentChangeToken(service);
  }

  listByRepo(repo: string): Promise<readonly Host[]> {
    return this.memory.listByRepo(repo);
  }

  listServices(): Promise<readonly string[]> {
    return this.memory.listServices();
  }

  delete(service: string, ipAddress: string): Promise<Host | undefined> {
    return this.enqueue(recordWrites.delete(service, ipAddress));
  }

  deleteIfCheckInIs(service: string, ipAddress: string, lastCheckIn: string): Promise<boolean> {
    return this.enqueue(recordWrites.deleteIfCheckInIs(service, ipAddress, lastCheckIn));
  }

  updateTags(service: string, ipAddress: string, tags: Readonly<Record<string, unknown>>): Promise<Host | undefined> {
    return this.enqueue(recordWrites.updateTags(service, ipAddress, tags));
  }

  setStatusOverride(service: string, ipAddress: string, status: InstanceStatus | undefined): Promise<Host | undefined> {
    return this.enqueue(recordWrites.setStatusOverride(service, ipAddress, status));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.drain();
    await this.journal.close();
    await this.onClose?.();
  }

  /** Ready while open and its folder is still there to write to. */
  async ping(): Promise<void> {
    if (this.closed) throw new StorageUnavailableError('the InFile store is closed');
    try {
      await access(this.files.directory, constants.W_OK);
    } catch (error) {
      throw new StorageUnavailableError(
        `the InFile folder ${this.files.directory} is not writable: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  }

  private enqueue<T>(write: RecordWrite<T>): Promise<T> {
    if (this.closed) return Promise.reject(new StorageUnavailableError('the InFile store is closed'));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ write, resolve: resolve as (answer: unknown) => void, reject });
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
    /** The record as this batch sees it: the durable state plus the batch's earlier writes. */
    const view = (service: string, ipAddress: string) => {
      const key = recordKey(service, ipAddress);
      return pending.has(key) ? (pending.get(key) ?? undefined) : this.memory.record(service, ipAddress);
    };
    const changes: RecordChange[] = [];
    const answers: unknown[] = [];
    try {
      for (const { write } of batch) {
        const { change, answer } = write.decide(view(write.service, write.ipAddress));
        answers.push(answer);
        if (!change) continue;
        changes.push(change);
        if ('put' in change) pending.set(recordKey(change.put.service, change.put.ip_address), change.put);
        else pending.set(recordKey(change.del[0], change.del[1]), null);
      }
      if (changes.length > 0) await this.journal.append(changes);
    } catch (error) {
      const failure = new StorageUnavailableError('could not write the InFile journal', { cause: error });
      for (const queued of batch) queued.reject(failure);
      return;
    }
    // Durable: now, and only now, the writes are served.
    for (const change of changes) this.memory.apply(change);
    const journalEntries = this.journal.entries;
    // Answered once its compaction, if one came due, is over; that never fails a durable batch.
    if (journalEntries > this.compactAfterEntries && journalEntries >= this.compactRetryAt)
      await this.compactOrKeepOld();
    batch.forEach((queued, index) => queued.resolve(answers[index]));
  }

  /** A durable batch is never failed by its compaction: on any error the old snapshot and journal stay, and it is tried again later. */
  private async compactOrKeepOld(): Promise<void> {
    try {
      await this.compact();
      this.compactRetryAt = 0;
    } catch (error) {
      const journalEntries = this.journal.entries;
      this.compactRetryAt = journalEntries + Math.max(1, Math.ceil(this.compactAfterEntries / 10));
      this.log?.error(
        { err: error, snapshot: this.files.snapshotPath, journal: this.files.journalPath, journalEntries },
        'InFile: could not write a new snapshot (is the disk full?); the old snapshot and journal are kept and every answered write is in them; retrying later',
      );
    }
  }

  /** Folds the journal into a new snapshot; runs inside the writer loop, so no append interleaves. */
  private async compact(): Promise<void> {
    const hosts = [...this.memory.records()];
    await this.files.writer.replace(this.files.snapshotPath, Buffer.from(snapshotText(hosts)));
    await this.journal.empty();
  }

  private async drain(): Promise<void> {
    while (this.flushing) await this.flushing;
  }
}

function recordKey(service: string, ipAddress: string): string {
  return `${service}\u0000${ipAddress}`;
}
