import { mkdir, open, readFile, rename, truncate } from 'node:fs/promises';
import path from 'node:path';
import { StorageUnavailableError } from '../errors.js';
import type { Log } from '../hosts/host-service.js';
import type { Heartbeat, Host } from '../hosts/model.js';
import type { HeartbeatResult } from './host-store.js';
import { MemoryHostStore } from './memory-host-store.js';

type JournalEntry = { put: Host } | { del: [service: string, ipAddress: string] };

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
}

/** The part of a `node:fs/promises` FileHandle the store writes through. */
export interface StoreFile {
  write(buffer: Uint8Array, offset: number, length: number): Promise<{ bytesWritten: number }>;
  datasync(): Promise<void>;
  sync(): Promise<void>;
  truncate(length: number): Promise<void>;
  close(): Promise<void>;
}

/** Every call the store makes that writes to the disk. */
export interface StoreFileSystem {
  open(file: string, flags: 'a' | 'w' | 'r'): Promise<StoreFile>;
  rename(from: string, to: string): Promise<void>;
}

const NODE_FS: StoreFileSystem = { open, rename };

/** Rewriting the snapshot costs one pass over every host; amortised over this many writes it is cheap. */
const DEFAULT_COMPACT_AFTER_ENTRIES = 10_000;

/**
 * The in-memory registry made durable under `APPLICATION_DIR`.
 *
 * Every write is appended to a journal (one JSON line per record) and the caller is answered
 * only once the line is written, so an acknowledged registration survives `kill -9`. Writes that
 * arrive together share one append (group commit). A torn last line, from a crash mid-append, is
 * ignored on load. The journal is folded into a snapshot written to a temporary file, fsynced
 * and renamed over the old one, so neither file is ever left half-written; replaying a journal
 * over a snapshot that already holds it is harmless, since every entry is a whole record.
 */
export class FileHostStore extends MemoryHostStore {
  private readonly snapshotPath: string;
  private readonly journalPath: string;
  private readonly fsync: boolean;
  private readonly compactAfterEntries: number;
  private readonly fs: StoreFileSystem;
  private readonly log: Log | undefined;
  private journal: StoreFile | undefined;
  private journalEntries = 0;
  private pending: { lines: string[]; waiters: { resolve: () => void; reject: (error: unknown) => void }[] } = {
    lines: [],
    waiters: [],
  };
  private flushing: Promise<void> | undefined;
  private closed = false;

  private constructor(options: FileHostStoreOptions) {
    super();
    this.snapshotPath = path.join(options.directory, 'hosts.json');
    this.journalPath = path.join(options.directory, 'hosts.journal');
    this.fsync = options.fsync ?? true;
    this.compactAfterEntries = options.compactAfterEntries ?? DEFAULT_COMPACT_AFTER_ENTRIES;
    this.fs = options.fs ?? NODE_FS;
    this.log = options.log;
  }

  /** Loads the snapshot and replays the journal, then opens the journal for appending. */
  static async open(options: FileHostStoreOptions): Promise<FileHostStore> {
    const store = new FileHostStore(options);
    await mkdir(options.directory, { recursive: true });
    await store.load();
    store.journal = await store.fs.open(store.journalPath, 'a');
    return store;
  }

  override async heartbeat(heartbeat: Heartbeat): Promise<HeartbeatResult> {
    const result = this.applyHeartbeat(heartbeat);
    await this.append({ put: result.current });
    return result;
  }

  override async delete(service: string, ipAddress: string): Promise<Host | undefined> {
    const removed = this.remove(service, ipAddress);
    if (removed) await this.append({ del: [service, ipAddress] });
    return removed;
  }

  override async deleteIfCheckInIs(service: string, ipAddress: string, lastCheckIn: string): Promise<boolean> {
    const existing = await this.get(service, ipAddress);
    if (!existing || existing.last_check_in !== lastCheckIn) return false;
    this.remove(service, ipAddress);
    await this.append({ del: [service, ipAddress] });
    return true;
  }

  override async updateTags(service: string, ipAddress: string, tags: Readonly<Record<string, unknown>>): Promise<Host | undefined> {
    const updated = this.applyTags(service, ipAddress, tags);
    if (updated) await this.append({ put: updated });
    return updated;
  }

  override async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.drain();
    await this.journal?.close();
    this.journal = undefined;
  }

  private async load(): Promise<void> {
    const snapshot = await readIfExists(this.snapshotPath);
    if (snapshot !== undefined) {
      const hosts = JSON.parse(snapshot) as Host[];
      for (const host of hosts) this.put(host);
    }
    const journal = await readIfExists(this.journalPath);
    if (journal === undefined) return;
    const lines = journal.split('\n');
    const torn = lines.pop(); // whatever follows the last newline is a torn append, never acknowledged
    if (torn) await truncate(this.journalPath, Buffer.byteLength(journal) - Buffer.byteLength(torn));
    for (const line of lines) {
      if (line === '') continue;
      this.replay(JSON.parse(line) as JournalEntry);
      this.journalEntries++;
    }
  }

  private replay(entry: JournalEntry): void {
    if ('put' in entry) this.put(entry.put);
    else this.remove(entry.del[0], entry.del[1]);
  }

  private append(entry: JournalEntry): Promise<void> {
    if (this.closed) return Promise.reject(new StorageUnavailableError('the InFile store is closed'));
    return new Promise((resolve, reject) => {
      this.pending.lines.push(JSON.stringify(entry) + '\n');
      this.pending.waiters.push({ resolve, reject });
      if (!this.flushing) this.flushing = this.flushLoop();
    });
  }

  /** Writes everything queued, in batches, until nothing is left; one writer at a time keeps lines whole and in order. */
  private async flushLoop(): Promise<void> {
    try {
      while (this.pending.lines.length > 0) {
        const batch = this.pending;
        this.pending = { lines: [], waiters: [] };
        try {
          await this.write(batch.lines.join(''));
          this.journalEntries += batch.lines.length;
          if (this.journalEntries > this.compactAfterEntries) await this.compact();
          for (const waiter of batch.waiters) waiter.resolve();
        } catch (error) {
          const failure = new StorageUnavailableError('could not write the InFile journal', { cause: error });
          for (const waiter of batch.waiters) waiter.reject(failure);
        }
      }
    } finally {
      this.flushing = undefined;
    }
  }

  private async write(text: string): Promise<void> {
    if (!this.journal) throw new Error('journal is not open');
    const buffer = Buffer.from(text);
    await this.journal.write(buffer, 0, buffer.length);
    if (this.fsync) await this.journal.datasync();
  }

  /** Folds the journal into a new snapshot; runs inside the writer loop, so no append interleaves. */
  private async compact(): Promise<void> {
    const temporary = `${this.snapshotPath}.tmp-${process.pid}`;
    const file = await this.fs.open(temporary, 'w');
    try {
      const buffer = Buffer.from(JSON.stringify([...this.allHosts()]));
      await file.write(buffer, 0, buffer.length);
      await file.sync();
    } finally {
      await file.close();
    }
    await this.fs.rename(temporary, this.snapshotPath);
    await syncDirectory(path.dirname(this.snapshotPath));
    await this.journal?.truncate(0);
    if (this.fsync) await this.journal?.sync();
    this.journalEntries = 0;
  }

  private async drain(): Promise<void> {
    while (this.flushing) await this.flushing;
  }
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Makes a rename durable: the directory entry itself must reach the disk. */
async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
