import { truncate, unlink } from 'node:fs/promises';
import { hostOfStored } from '../../hosts/instance-keys.js';
import { hostProblem, PORT_MAX, PORT_MIN, withStatuses, type Host } from '../../hosts/model.js';
import type { Log } from '../../logger.js';
import { readIfExists, writeNewFile, type StoreFileSystem } from './disk.js';
import type { JournalEntry } from './journal.js';
import { BOM, describe, foundAt, hasBom, isPlainObject, lineOf, parseJson } from './json-diagnostics.js';
import type { AtomicFileWriter } from './snapshot-file.js';

/**
 * Loading the InFile store's files on start, and salvaging what a crash or a damaged disk left:
 * the snapshot must load whole or start-up stops; the journal loads up to its damage, which is
 * set aside and reported.
 */

/**
 * A data file that cannot be loaded as it is. Thrown from `open`, so start-up stops with its
 * message: one line naming the file, where, what was expected there, and what to do.
 */
export class DamagedDataFileError extends Error {
  override readonly name = 'DamagedDataFileError';
}

/** Damaged journal lines named one by one in the log; the rest are counted. */
const MAX_LOGGED_PROBLEMS = 20;

/** The store's files, and what loading writes through when it salvages the journal. */
export interface StoreFiles {
  readonly directory: string;
  readonly snapshotPath: string;
  readonly journalPath: string;
  readonly fs: StoreFileSystem;
  /** Rewrites a salvaged journal atomically. */
  readonly writer: AtomicFileWriter;
  /** Where recoveries are reported. */
  readonly log?: Log | undefined;
}

/** What loading kept of the journal: its bytes up to the end of its last good line, and its entries. */
export interface LoadedJournal {
  readonly size: number;
  readonly entries: number;
}

/** Hands every record of the snapshot, then every entry of the journal, to `apply`, in order. */
export async function loadFiles(files: StoreFiles, apply: (entry: JournalEntry) => void): Promise<LoadedJournal> {
  const snapshot = await readIfExists(files.snapshotPath);
  if (snapshot !== undefined) for (const host of readSnapshot(files, snapshot)) apply({ put: host });
  const journal = await readIfExists(files.journalPath);
  return journal === undefined ? { size: 0, entries: 0 } : loadJournal(files, journal, apply);
}

/** Every host of the snapshot, or a `DamagedDataFileError` saying where it is damaged and what to do. */
export function readSnapshot(files: Pick<StoreFiles, 'snapshotPath' | 'log'>, content: Buffer): Host[] {
  const file = files.snapshotPath;
  const skip = hasBom(content) ? BOM.length : 0;
  if (skip > 0) files.log?.warn({ file }, `InFile: ${file} starts with a byte-order mark; ignored`);
  const text = content.toString('utf8', skip);
  const refuse = (where: string, problem: string) =>
    new DamagedDataFileError(
      `InFile cannot start: ${file} is damaged at ${where}: ${problem}. Nothing was changed. ` +
        `Put back a good copy of ${file}, or, to start from the journal alone, move ${file} aside ` +
        `(hosts recorded only in it are served again after their next heartbeat); then start again.`,
    );
  if (text.trim() === '')
    throw refuse(`byte ${skip} (line 1)`, 'expected a JSON array of host records, found an empty file');
  const json = parseJson(text);
  if (!('value' in json)) {
    const { index, expected } = json;
    throw refuse(
      `byte ${skip + Buffer.byteLength(text.slice(0, index))} (line ${lineOf(text, index)})`,
      `expected a JSON array of host records: ${expected}, found ${foundAt(text, index, 'the end of the file (it is cut short)')}`,
    );
  }
  const parsed = json.value;
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
export async function loadJournal(
  files: StoreFiles,
  content: Buffer,
  apply: (entry: JournalEntry) => void,
): Promise<LoadedJournal> {
  const file = files.journalPath;
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
        apply(entry.entry);
        good.push(content.subarray(position, end + 1));
        if (problems.length === 0) goodEnd = end + 1;
      } else {
        const glued = salvageGluedRecord(text);
        if (glued) {
          apply(glued.entry);
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
  const entries = good.length;
  if (problems.length === 0) return { size: content.length, entries };

  for (const problem of problems.slice(0, MAX_LOGGED_PROBLEMS))
    files.log?.warn({ file }, `InFile: ${file}: ${problem}`);
  if (problems.length > MAX_LOGGED_PROBLEMS)
    files.log?.warn({ file }, `InFile: ${file}: ${problems.length - MAX_LOGGED_PROBLEMS} more damaged lines`);
  const kept = `${file}.damaged-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  const onlyTorn = torn && problems.length === 1;
  if (onlyTorn) {
    // The common case, a crash mid-append: cutting the tail off needs no free space, so it never stops a start.
    const copied = await writeNewFile(files.fs, kept, content).then(
      () => true,
      async (error: unknown) => {
        await unlink(kept).catch(() => undefined);
        files.log?.warn(
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
    files.log?.warn(
      { file, kept: copied ? kept : undefined },
      `InFile: recovered ${file} up to its last good line (${good.length} records)${copied ? `; the damaged file is kept as ${kept}` : ''}`,
    );
    return { size: goodEnd, entries };
  }
  const recovered = Buffer.concat(good);
  try {
    await writeNewFile(files.fs, kept, content);
    await files.writer.replace(file, recovered);
  } catch (error) {
    throw new DamagedDataFileError(
      `InFile cannot start: ${file} is damaged (${problems[0]}) and could not be set aside: ${error instanceof Error ? error.message : String(error)}. ` +
        `The journal was not changed. Free space in ${files.directory} and start again.`,
      { cause: error },
    );
  }
  files.log?.warn(
    { file, kept, damagedLines: problems.length, records: good.length },
    `InFile: recovered ${file} without its ${problems.length} damaged line(s) (${good.length} records kept); the damaged file is kept as ${kept}`,
  );
  return { size: recovered.length, entries };
}

function readJournalLine(text: string): { entry: JournalEntry } | { problem: string } {
  const expected = 'expected a journal record {"put": host} or {"del": [service, ip_address]}';
  const json = parseJson(text);
  if (!('value' in json)) {
    const at = Buffer.byteLength(text.slice(0, json.index));
    return {
      problem: `${expected}, but it is not valid JSON: at byte ${at} of the line expected ${json.expected}, found ${foundAt(text, json.index, 'the end of the line')}`,
    };
  }
  const { value } = json;
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
  // withStatuses leaves an unset status out, so the records of UP hosts are written exactly as before statuses.
  return withStatuses(host, host.reported_status, host.status_override);
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
