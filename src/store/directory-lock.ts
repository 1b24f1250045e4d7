import { randomUUID } from 'node:crypto';
import { mkdir, open, readFile, stat, unlink, utimes } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { ConfigError } from '../errors.js';
import type { Log } from '../logger.js';

/** The lock file's name inside the locked folder. */
export const LOCK_FILE_NAME = 'discovery.lock';
/** The holder touches its lock file this often, so others can tell it is alive from any host. */
const REFRESH_MS = 5_000;
/**
 * A lock not touched for this long is abandoned: its holder died where its pid cannot be checked
 * (another host or container sharing the folder). Six missed refreshes, so a busy event loop
 * never loses its lock, and a crashed container's replacement waits at most this long.
 */
const STALE_MS = 30_000;
/** A lock file that does not parse yet may be in the middle of being written by its creator. */
const UNREADABLE_GRACE_MS = 2_000;
/** Bound on the create / judge / remove-stale loop (a lock that keeps changing under us). */
const MAX_ATTEMPTS = 20;
const RETRY_PAUSE_MS = 100;

/** Who holds a lock: written as one JSON line into the lock file. */
interface LockOwner {
  readonly pid: number;
  readonly host: string;
  /** ISO time the lock was taken. */
  readonly since: string;
  /** Unique per acquisition, so a holder can tell its own lock from one that replaced it. */
  readonly token: string;
}

/** A held lock on a folder. */
export interface DirectoryLock {
  /** The lock file. */
  readonly file: string;
  /** Removes the lock file if it is still ours and stops refreshing it. Idempotent. */
  release(): Promise<void>;
}

/** Another live process holds the folder: start-up stops with this one line. */
export class DirectoryLockedError extends ConfigError {}

export interface LockOptions {
  /** The setting that names the folder, for the message (e.g. `APPLICATION_DIR`). */
  readonly setting: string;
  /** The folder as the operator knows it (the setting's value); the lock file lives in `directory`. */
  readonly settingValue: string;
  readonly log: Log;
}

/** Lock files this process holds, so a second store in the same process is refused too. */
const heldHere = new Set<string>();

/**
 * Takes `<directory>/discovery.lock`, created exclusively and holding this process's pid, host
 * and start time; refreshed every few seconds while held. A lock left by a process that is gone
 * (same host and its pid is dead, or not refreshed for STALE_MS) is taken over with a warning; a
 * live one stops start-up with a DirectoryLockedError naming the setting and the holder.
 */
export async function lockDirectory(directory: string, options: LockOptions): Promise<DirectoryLock> {
  const file = path.join(directory, LOCK_FILE_NAME);
  if (heldHere.has(file)) throw new DirectoryLockedError(inUse(options, file, 'this same process'));
  try {
    await mkdir(directory, { recursive: true });
  } catch (error) {
    throw new ConfigError(`could not create ${directory} for ${options.setting}: ${reason(error)}`);
  }
  const owner: LockOwner = { pid: process.pid, host: hostname(), since: new Date().toISOString(), token: randomUUID() };
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    if (await tryCreate(file, owner, options)) return hold(file, owner, options.log);
    const found = await readLock(file);
    if (!found) continue; // released between our create and our read
    const verdict = judge(found);
    if (verdict.kind === 'live') throw new DirectoryLockedError(inUse(options, file, verdict.holder, verdict.hint));
    if (verdict.kind === 'wait') {
      await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS));
      continue;
    }
    options.log.warn(
      { file, previous: found.text.trim() },
      `taking over the lock ${file}: ${verdict.why}; this process now owns ${options.setting} ${options.settingValue}`,
    );
    await removeIfUnchanged(file, found.text);
  }
  throw new ConfigError(
    `could not lock ${options.setting} ${options.settingValue}: ${file} kept changing; is another discovery process starting there?`,
  );
}

async function tryCreate(file: string, owner: LockOwner, options: LockOptions): Promise<boolean> {
  let handle;
  try {
    handle = await open(file, 'wx');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new ConfigError(`could not lock ${options.setting} ${options.settingValue} (${file}): ${reason(error)}`);
  }
  try {
    await handle.writeFile(`${JSON.stringify(owner)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  return true;
}

interface FoundLock {
  readonly text: string;
  readonly owner: LockOwner | undefined;
  readonly ageMs: number;
}

async function readLock(file: string): Promise<FoundLock | undefined> {
  try {
    const [text, info] = await Promise.all([readFile(file, 'utf8'), stat(file)]);
    return { text, owner: parseOwner(text), ageMs: Date.now() - info.mtimeMs };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

function parseOwner(text: string): LockOwner | undefined {
  try {
    const value = JSON.parse(text) as Partial<LockOwner>;
    if (typeof value.pid === 'number' && typeof value.host === 'string' && typeof value.token === 'string') {
      return { pid: value.pid, host: value.host, since: String(value.since ?? 'unknown'), token: value.token };
    }
  } catch {
    // judged below: unreadable
  }
  return undefined;
}

type Verdict = { kind: 'live'; holder: string; hint?: string } | { kind: 'stale'; why: string } | { kind: 'wait' };

function judge(found: FoundLock): Verdict {
  const owner = found.owner;
  if (!owner) {
    return found.ageMs < UNREADABLE_GRACE_MS
      ? { kind: 'wait' }
      : { kind: 'stale', why: 'it is unreadable (a process died while writing it)' };
  }
  const seconds = Math.round(found.ageMs / 1000);
  if (found.ageMs > STALE_MS)
    return { kind: 'stale', why: `pid ${owner.pid} on ${owner.host} last refreshed it ${seconds} s ago` };
  if (owner.host === hostname()) {
    // Our own pid: a previous run of this container or service (pids repeat there), not us.
    if (owner.pid === process.pid)
      return { kind: 'stale', why: `it names this pid (${owner.pid}) from an earlier run` };
    if (!isAlive(owner.pid)) return { kind: 'stale', why: `pid ${owner.pid} that took it is no longer running` };
    return { kind: 'live', holder: `pid ${owner.pid}, since ${owner.since}` };
  }
  return {
    kind: 'live',
    holder: `pid ${owner.pid} on host ${owner.host}, since ${owner.since}`,
    hint: `if that process is gone, the lock is free ${STALE_MS / 1000} s after its last refresh (${seconds} s ago)`,
  };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function inUse(options: LockOptions, file: string, holder: string, hint?: string): string {
  return (
    `${options.setting} ${options.settingValue} is in use by another discovery process (${holder}; lock ${file}): ` +
    `one process per ${options.setting}. Stop that process, or give this one its own ${options.setting}` +
    (hint ? `; ${hint}.` : '.')
  );
}

/** Removes a stale lock only if it still holds what we judged, so a fresh lock taken meanwhile survives. */
async function removeIfUnchanged(file: string, judgedText: string): Promise<void> {
  const now = await readLock(file);
  if (now?.text !== judgedText) return;
  try {
    await unlink(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

function hold(file: string, owner: LockOwner, log: Log): DirectoryLock {
  heldHere.add(file);
  let lost = false;
  const refresh = setInterval(() => {
    void (async () => {
      const found = await readLock(file);
      if (found?.owner?.token !== owner.token) {
        if (!lost) {
          lost = true;
          log.error(
            { file, holder: found?.text.trim() },
            `the lock ${file} is no longer this process's (removed or taken over): another process may be writing the same data`,
          );
        }
        return;
      }
      const now = new Date();
      await utimes(file, now, now);
    })().catch((error: unknown) => log.warn({ file, err: error }, `could not refresh the lock ${file}`));
  }, REFRESH_MS);
  refresh.unref();
  let released: Promise<void> | undefined;
  return {
    file,
    release: () =>
      (released ??= (async () => {
        clearInterval(refresh);
        heldHere.delete(file);
        const found = await readLock(file).catch(() => undefined);
        if (found?.owner?.token === owner.token) await unlink(file).catch(() => undefined);
      })()),
  };
}

function reason(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The lock every backend that keeps its data under APPLICATION_DIR takes: `<APPLICATION_DIR>/data/discovery.lock`. */
export function lockApplicationDir(applicationDir: string, log: Log): Promise<DirectoryLock> {
  return lockDirectory(path.join(applicationDir, 'data'), {
    setting: 'APPLICATION_DIR',
    settingValue: applicationDir,
    log,
  });
}
