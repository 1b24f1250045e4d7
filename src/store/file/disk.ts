import { open, readFile, rename } from 'node:fs/promises';

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

/** The real file operations. */
export const NODE_FS: StoreFileSystem = { open, rename };

/** A write that makes no progress this many times in a row is a failure, not a short write. */
const MAX_STALLED_WRITES = 3;

/** Writes all of `buffer`, however many calls it takes: write(2) may write less than it was given. */
export async function writeFully(file: StoreFile, buffer: Buffer, name: string): Promise<void> {
  let offset = 0;
  let stalled = 0;
  while (offset < buffer.length) {
    const { bytesWritten } = await file.write(buffer, offset, buffer.length - offset);
    if (bytesWritten > 0) {
      offset += bytesWritten;
      stalled = 0;
    } else if (++stalled >= MAX_STALLED_WRITES) {
      throw Object.assign(
        new Error(`no progress writing ${name}: ${buffer.length - offset} of ${buffer.length} bytes left`),
        { code: 'EIO' },
      );
    }
  }
}

/** Creates (or empties) `file` and writes `content` to it in full and fsynced; the handle is closed either way. */
export async function writeNewFile(fs: StoreFileSystem, file: string, content: Buffer): Promise<void> {
  const handle = await fs.open(file, 'w');
  try {
    await writeFully(handle, content, file);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The file's bytes, or undefined when there is no such file. */
export async function readIfExists(file: string): Promise<Buffer | undefined> {
  try {
    return await readFile(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}
