import { open, readdir, readFile, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Host } from '../../hosts/model.js';
import type { Log } from '../../logger.js';
import { writeNewFile, type StoreFileSystem } from './disk.js';

/** Names of the store's temporary files start with the file they replace plus this. */
const TEMPORARY_INFIX = '.tmp-';

/** The snapshot's text: one record per line, so a damaged snapshot can be pointed at by line. */
export function snapshotText(hosts: readonly Host[]): string {
  if (hosts.length === 0) return '[]\n';
  return `[\n${hosts.map((host) => JSON.stringify(host)).join(',\n')}\n]\n`;
}

/**
 * Replaces files of one folder atomically (the snapshot on compaction, a damaged journal on
 * recovery): a reader, or a start after a crash, sees the old content or the new, never a part.
 */
export class AtomicFileWriter {
  /** Makes the names of this store's temporary files unique, with the process id. */
  private temporaryCounter = 0;

  constructor(
    private readonly directory: string,
    private readonly fs: StoreFileSystem,
  ) {}

  /**
   * Replaces `file`: the new content goes to a temporary file that is written in full, fsynced
   * and read back before it is renamed over `file`, and the folder is synced so the rename
   * itself survives a crash. On any failure `file` is as it was and the temporary file is gone.
   */
  async replace(file: string, content: Buffer): Promise<void> {
    const temporary = `${file}${TEMPORARY_INFIX}${process.pid}-${++this.temporaryCounter}`;
    try {
      await writeNewFile(this.fs, temporary, content);
      const written = await readFile(temporary);
      if (!written.equals(content))
        throw new Error(
          `${temporary} reads back ${written.length} bytes that differ from the ${content.length} written`,
        );
      await this.fs.rename(temporary, file);
    } catch (error) {
      await unlink(temporary).catch(() => undefined);
      throw error;
    }
    await syncDirectory(this.directory);
  }
}

/**
 * Removes the temporary files of `files` (paths in `directory`) that a crash left behind: they
 * are only ever complete once renamed, so one still there holds nothing to keep.
 */
export async function removeTemporaryFiles(directory: string, files: readonly string[], log?: Log): Promise<void> {
  const prefixes = files.map((file) => path.basename(file) + TEMPORARY_INFIX);
  for (const name of await readdir(directory)) {
    if (!prefixes.some((prefix) => name.startsWith(prefix))) continue;
    await unlink(path.join(directory, name));
    log?.info({ file: path.join(directory, name) }, 'InFile: removed a temporary file left by an interrupted write');
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
