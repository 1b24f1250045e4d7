import { constants } from 'node:fs';
import { access, mkdir, truncate, unlink } from 'node:fs/promises';
import path from 'node:path';
import { StorageUnavailableError } from '../errors.js';
import type { Log } from '../logger.js';
import { hostOfStored } from '../hosts/instance-keys.js';
import {
  hostProblem,
  mergeHeartbeat,
  mergeTags,
  PORT_MAX,
  PORT_MIN,
  withStatuses,
  type Heartbeat,
  type Host,
  type InstanceStatus,
} from '../hosts/model.js';
import type { HeartbeatResult } from '../hosts/host-store.js';
import { MemoryHostStore } from './memory-host-store.js';
import { NODE_FS, readIfExists, writeNewFile, type StoreFileSystem } from './file/disk.js';
import { Journal, type JournalEntry } from './file/journal.js';
import { AtomicFileWriter, removeTemporaryFiles, snapshotText } from './file/snapshot-file.js';
import { BOM, describe, foundAt, hasBom, isPlainObject, lineOf, locateJsonError } from './file/json-diagnostics.js';

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

/**
 * A data file that cannot be loaded as it is. Thrown from `open`, so start-up stops with its
 * message: one line naming the file, where, what was expected there, and what to do.
 */
export class DamagedDataFileError extends Error {
  override readonly name = 'DamagedDataFileError';
}

/** Rewriting the snapshot costs one pass over every host; amortised over this many writes it is cheap. */
const DEFAULT_COMPACT_AFTER_ENTRIES = 10_000;
/** Damaged journal lines named one by one in the log; the rest are counted. */
const MAX_LOGGED_PROBLEMS = 20;

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
  /** What loading kept of the journal: its bytes up to the last good line, and its entries. */
  private loaded = { size: 0, entries: 0 };
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
    await store.load();
    store.journal = await Journal.open(store.fs, store.journalPath, {
      fsync: store.fsync,
      log: store.log,
      ...store.loaded,
    });
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

  private async load(): Promise<void> {
    const snapshot = await readIfExists(this.snapshotPath);
    if (snapshot !== undefined) for (const host of this.readSnapshot(snapshot)) this.put(host);
    const journal = await readIfExists(this.journalPath);
    if (journal !== undefined) await this.loadJournal(journal);
  }

  /** Every host of the snapshot, or a `DamagedDataFileError` saying where it is damaged and what to do. */
  private readSnapshot(content: Buffer): Host[] {
    const file = this.snapshotPath;
    const skip = hasBom(content) ? BOM.length : 0;
    if (skip > 0) this.log?.warn({ file }, `InFile: ${file} starts with a byte-order mark; ignored`);
    const text = content.toString('utf8', skip);
    const refuse = (where: string, problem: string) =>
      new DamagedDataFileError(
        `InFile cannot start: ${file} is damaged at ${where}: ${problem}. Nothing was changed. ` +
          `Put back a good copy of ${file}, or, to start from the journal alone, move ${file} aside ` +
          `(hosts recorded only in it are served again after their next heartbeat); then start again.`,
      );
    if (text.trim() === '')
      throw refuse(`byte ${skip} (line 1)`, 'expected a JSON array of host records, found an empty file');
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      const error = locateJsonError(text);
      const index = error?.index ?? text.length;
      throw refuse(
        `byte ${skip + Buffer.byteLength(text.slice(0, index))} (line ${lineOf(text, index)})`,
        `expected a JSON array of host records: ${error?.expected ?? 'valid JSON'}, found ${foundAt(text, index, 'the end of the file (it is cut short)')}`,
      );
    }
    if (!Array.isArray(parsed))
      throw refuse(`byte ${skip} (line 1)`, `expected a JSON array of host records, found ${describe(parsed)}`);
    // The snapshot is written one record per line: record N is on line N + 1.
    const oneRecordPerLine = text.startsWith('[\n');
    return parsed.map((record, index) => {
      const problem = checkLoadedHost(record);
      if (problem !== undefined)
        throw refuse(`record ${index + 1}${oneRecordPerLine ? ` (line ${index + 2})` : ''}`, problem);
      return copyHost(record as Host);
    });
  }

  /**
   * Replays every readable line. Damage is recovered, never trusted and never fatal: an
   * unterminated last line is an append cut short (never answered) and is cut off; a line that
   * is not a whole record is skipped, except for a whole record glued after a torn one, which is
   * kept. The damaged file is kept aside and the journal rewritten with the good lines only, so
   * later appends follow a good line and the next start is clean.
   */
  private async loadJournal(content: Buffer): Promise<void> {
    const file = this.journalPath;
    const problems: string[] = [];
    const good: Buffer[] = [];
    let goodEnd = 0; // end of the last good line, when every line before it is good too
    let torn = false;
    let position = 0;
    if (hasBom(content)) {
      problems.push(`byte 0 (line 1): a byte-order mark before the first record; dropped`);
      position = BOM.length;
    }
    for (let line = 1; position < content.length; line++) {
      const newline = content.indexOf(0x0a, position);
      const end = newline === -1 ? content.length : newline;
      const raw = content.subarray(position, end);
      const where = `line ${line} (byte ${position})`;
      if (newline === -1) {
        problems.push(
          `${where}: an unterminated last line of ${raw.length} bytes, an append cut short before it was answered; dropped`,
        );
        torn = true;
      } else if (raw.length > 0) {
        const text = raw.toString('utf8');
        const entry = readJournalLine(text);
        if ('entry' in entry) {
          this.replay(entry.entry);
          good.push(content.subarray(position, end + 1));
          if (problems.length === 0) goodEnd = end + 1;
        } else {
          const glued = salvageGluedRecord(text);
          if (glued) {
            this.replay(glued.entry);
            good.push(Buffer.from(text.slice(glued.index) + '\n'));
            problems.push(
              `${where}: ${entry.problem}; the whole record glued after it at byte ${position + Buffer.byteLength(text.slice(0, glued.index))} was kept`,
            );
          } else {
            problems.push(`${where}: ${entry.problem}; skipped`);
          }
        }
      }
      position = end + 1;
    }
    this.loaded = { size: content.length, entries: good.length };
    if (problems.length === 0) return;

    for (const problem of problems.slice(0, MAX_LOGGED_PROBLEMS))
      this.log?.warn({ file }, `InFile: ${file}: ${problem}`);
    if (problems.length > MAX_LOGGED_PROBLEMS)
      this.log?.warn({ file }, `InFile: ${file}: ${problems.length - MAX_LOGGED_PROBLEMS} more damaged lines`);
    const kept = `${file}.damaged-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    const onlyTorn = torn && problems.length === 1;
    if (onlyTorn) {
      // The common case, a crash mid-append: cutting the tail off needs no free space, so it never stops a start.
      const copied = await writeNewFile(this.fs, kept, content).then(
        () => true,
        async (error: unknown) => {
          await unlink(kept).catch(() => undefined);
          this.log?.warn(
            { err: error, file },
            `InFile: could not keep a copy of the damaged ${file}; its unanswered last line is dropped anyway`,
          );
          return false;
        },
      );
      try {
        await truncate(file, goodEnd);
      } catch (error) {
        throw new DamagedDataFileError(
          `InFile cannot start: ${file} ends in a torn line (${problems[0]}) that could not be cut off: ${error instanceof Error ? error.message : String(error)}. ` +
            `Make ${file} writable and start again.`,
          { cause: error },
        );
      }
      this.loaded.size = goodEnd;
      this.log?.warn(
        { file, kept: copied ? kept : undefined },
        `InFile: recovered ${file} up to its last good line (${good.length} records)${copied ? `; the damaged file is kept as ${kept}` : ''}`,
      );
      return;
    }
    const recovered = Buffer.concat(good);
    try {
      await writeNewFile(this.fs, kept, content);
      await this.files.replace(file, recovered);
      this.loaded.size = recovered.length;
    } catch (error) {
      throw new DamagedDataFileError(
        `InFile cannot start: ${file} is damaged (${problems[0]}) and could not be set aside: ${error instanceof Error ? error.message : String(error)}. ` +
          `The journal was not changed. Free space in ${this.directory} and start again.`,
        { cause: error },
      );
    }
    this.log?.warn(
      { file, kept, damagedLines: problems.length, records: good.length },
      `InFile: recovered ${file} without its ${problems.length} damaged line(s) (${good.length} records kept); the damaged file is kept as ${kept}`,
    );
  }

  private replay(entry: JournalEntry): void {
    if ('put' in entry) this.put(entry.put);
    else this.remove(entry.del[0], entry.del[1]);
  }
}

function recordKey(service: string, ipAddress: string): string {
  return `${service}\u0000${ipAddress}`;
}

function readJournalLine(text: string): { entry: JournalEntry } | { problem: string } {
  const expected = 'expected a journal record {"put": host} or {"del": [service, ip_address]}';
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    const error = locateJsonError(text);
    const index = error?.index ?? text.length;
    const at = Buffer.byteLength(text.slice(0, index));
    return {
      problem: `${expected}, but it is not valid JSON: at byte ${at} of the line expected ${error?.expected ?? 'valid JSON'}, found ${foundAt(text, index, 'the end of the line')}`,
    };
  }
  const problem = checkJournalEntry(value);
  return problem === undefined
    ? { entry: normalise(value as JournalEntry) }
    : { problem: `${expected}, found ${problem}` };
}

function checkJournalEntry(value: unknown): string | undefined {
  if (!isPlainObject(value)) return describe(value);
  const keys = Object.keys(value);
  if (keys.length !== 1 || (keys[0] !== 'put' && keys[0] !== 'del'))
    return `an object with ${keys.length === 0 ? 'no keys' : `the keys ${keys.map((key) => JSON.stringify(key)).join(', ')}`}`;
  if (keys[0] === 'put') {
    const problem = checkLoadedHost(value.put);
    return problem === undefined ? undefined : `a "put" whose ${problem}`;
  }
  const del = value.del;
  if (!Array.isArray(del) || del.length !== 2 || !del.every((part) => typeof part === 'string' && part !== '')) {
    return `a "del" of ${describe(del)}, not [service, ip_address]`;
  }
  return undefined;
}

function normalise(entry: JournalEntry): JournalEntry {
  return 'put' in entry ? { put: copyHost(entry.put) } : entry;
}

/**
 * A host record from disk must be one this service could have written; what is not is damage.
 * Returns what is wrong, or undefined for a valid record: the model's own check (hostProblem),
 * with the fields a damaged line most often breaks described first, with what was found.
 */
function checkLoadedHost(value: unknown): string | undefined {
  if (!isPlainObject(value)) return `record is ${describe(value)}, not a host object`;
  for (const field of ['service', 'ip_address'] as const) {
    if (typeof value[field] !== 'string' || value[field] === '')
      return `${field} must be a non-empty string, found ${describe(value[field])}`;
  }
  for (const field of ['revision', 'service_repo_name', 'last_check_in'] as const) {
    if (typeof value[field] !== 'string') return `${field} must be a string, found ${describe(value[field])}`;
  }
  const port = value.port;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < PORT_MIN || port > PORT_MAX) {
    return `port must be an integer ${PORT_MIN}..${PORT_MAX}, found ${describe(port)}`;
  }
  if (!isPlainObject(value.tags)) return `tags must be an object, found ${describe(value.tags)}`;
  // The rest of what any served record must meet (address, check-in, plain-JSON tags); an
  // INSTANCE_KEY=ip_port record keeps `ip:port` where the IP is, and is checked with its IP.
  return hostProblem(hostOfStored(value as { ip_address: string }));
}

/** The record's own fields only, in the order this service writes them. */
function copyHost(host: Host): Host {
  return {
    service: host.service,
    ip_address: host.ip_address,
    port: host.port,
    revision: host.revision,
    service_repo_name: host.service_repo_name,
    last_check_in: host.last_check_in,
    tags: host.tags,
    // Only when set, so the records of UP hosts are written exactly as before statuses.
    ...(host.reported_status === undefined ? {} : { reported_status: host.reported_status }),
    ...(host.status_override === undefined ? {} : { status_override: host.status_override }),
  };
}

/**
 * A torn append with the next append glued to it (as written before appends were cut off on
 * failure): the glued record, a whole line of its own once, was answered and is kept.
 */
function salvageGluedRecord(text: string): { index: number; entry: JournalEntry } | undefined {
  for (const marker of ['{"put":', '{"del":']) {
    for (let index = text.indexOf(marker, 1); index > 0; index = text.indexOf(marker, index + 1)) {
      const entry = readJournalLine(text.slice(index));
      if ('entry' in entry) return { index, entry: entry.entry };
    }
  }
  return undefined;
}
