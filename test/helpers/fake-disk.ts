import { open, rename } from 'node:fs/promises';
import type { StoreFile, StoreFileSystem } from '../../src/store/file/disk.js';

function errno(code: string, syscall: string, file: string): NodeJS.ErrnoException {
  const error: NodeJS.ErrnoException = new Error(`${code}: fake disk, ${syscall} '${file}'`);
  error.code = code;
  error.syscall = syscall;
  return error;
}

/**
 * The real file system behind a disk that can fill up: `free` bytes are left, a write that does
 * not fit writes what fits and says so (a short write, as write(2) does), the next one fails
 * with ENOSPC. Shrinking a file gives nothing back, so the fake is never kinder than a disk.
 */
export class FakeDisk implements StoreFileSystem {
  /** Bytes that can still be written. */
  free = Number.POSITIVE_INFINITY;
  /** Every write writes at most half of what it was given, even with room to spare. */
  shortWrites = false;
  /** Writes to files whose path matches fail with ENOSPC whatever `free` says. */
  failWritesTo: RegExp | undefined;
  /** Truncating a file fails with EIO. */
  failTruncates = false;
  /** Renames fail with EIO. */
  failRenames = false;
  /** While set, every write waits for it. */
  gate: Promise<void> | undefined;
  writes = 0;

  async open(file: string, flags: 'a' | 'w' | 'r'): Promise<StoreFile> {
    return new FakeFile(this, await open(file, flags), file);
  }

  async rename(from: string, to: string): Promise<void> {
    if (this.failRenames) throw errno('EIO', 'rename', from);
    await rename(from, to);
  }
}

class FakeFile implements StoreFile {
  constructor(
    private readonly disk: FakeDisk,
    private readonly handle: StoreFile,
    private readonly file: string,
  ) {}

  async write(buffer: Uint8Array, offset: number, length: number): Promise<{ bytesWritten: number }> {
    await this.disk.gate;
    this.disk.writes++;
    if (this.disk.failWritesTo?.test(this.file) || this.disk.free <= 0) throw errno('ENOSPC', 'write', this.file);
    let size = Math.min(length, this.disk.free);
    if (this.disk.shortWrites && size > 1) size = Math.ceil(size / 2);
    const { bytesWritten } = await this.handle.write(buffer, offset, size);
    this.disk.free -= bytesWritten;
    return { bytesWritten };
  }

  datasync(): Promise<void> {
    return this.handle.datasync();
  }

  sync(): Promise<void> {
    return this.handle.sync();
  }

  async truncate(length: number): Promise<void> {
    if (this.disk.failTruncates) throw errno('EIO', 'ftruncate', this.file);
    await this.handle.truncate(length);
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

/** A logger that keeps what it was given, for tests that check what an operator would read. */
export function recordingLog() {
  const lines: { level: string; obj: object; msg: string }[] = [];
  const at =
    (level: string) =>
    (obj: object, msg = '') =>
      void lines.push({ level, obj, msg });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
