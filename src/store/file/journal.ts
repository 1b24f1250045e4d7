import type { Log } from '../../logger.js';
import type { RecordChange } from '../memory-host-store.js';
import { writeFully, type StoreFile, type StoreFileSystem } from './disk.js';

/** One line of the journal, as JSON: a change as the memory store applies it (a whole record stored, or a record removed). */
export type JournalEntry = RecordChange;

export interface JournalOptions {
  /** fsync every append (and every cut-off) before it counts as written. */
  readonly fsync: boolean;
  /** Where a failed cut-off is reported. */
  readonly log?: Log | undefined;
  /** Bytes of the file up to the end of its last good line, as loading left it. */
  readonly size: number;
  /** Entries the file holds, as loading counted them. */
  readonly entries: number;
}

/**
 * The append-only file of writes since the snapshot, one JSON line per entry. Appends are whole
 * lines or nothing: a failed append is cut off again, so the file always ends on a line of its own
 * and a later append never glues onto a torn one. Used by one writer at a time.
 */
export class Journal {
  /** Bytes of the journal up to the end of its last complete line. */
  private size: number;
  /** A failed append could not be cut off again: the bytes past `size` must go before the next append. */
  private dirty = false;
  private entryCount: number;

  private constructor(
    private readonly file: StoreFile,
    /** The journal's path, for messages. */
    readonly path: string,
    private readonly fsync: boolean,
    private readonly log: Log | undefined,
    size: number,
    entries: number,
  ) {
    this.size = size;
    this.entryCount = entries;
  }

  /** Opens `file` for appending after the `size` bytes loading kept. */
  static async open(fs: StoreFileSystem, file: string, options: JournalOptions): Promise<Journal> {
    return new Journal(await fs.open(file, 'a'), file, options.fsync, options.log, options.size, options.entries);
  }

  /** Entries written since the journal was last emptied (or loaded). */
  get entries(): number {
    return this.entryCount;
  }

  /** Appends the entries as whole lines, or none: a failed append is cut off again so the next one starts on a line of its own. */
  async append(entries: readonly JournalEntry[]): Promise<void> {
    if (this.dirty) {
      await this.file.truncate(this.size);
      if (this.fsync) await this.file.datasync();
      this.dirty = false;
    }
    const buffer = Buffer.from(entries.map((entry) => JSON.stringify(entry) + '\n').join(''));
    try {
      await writeFully(this.file, buffer, this.path);
      if (this.fsync) await this.file.datasync();
    } catch (error) {
      await this.rollBack();
      throw error;
    }
    this.size += buffer.length;
    this.entryCount += entries.length;
  }

  /** Empties the journal, once a snapshot holds everything it held. */
  async empty(): Promise<void> {
    await this.file.truncate(0);
    this.size = 0;
    this.entryCount = 0;
    if (this.fsync) await this.file.sync();
  }

  async close(): Promise<void> {
    await this.file.close();
  }

  private async rollBack(): Promise<void> {
    try {
      await this.file.truncate(this.size);
      if (this.fsync) await this.file.datasync();
    } catch (error) {
      this.dirty = true; // retried before the next append, which fails if it fails again
      this.log?.error(
        { err: error, file: this.path, offset: this.size },
        'InFile: could not cut a failed append off the journal; retrying before the next write',
      );
    }
  }
}
