import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { mergeHeartbeat, type Host } from '../../../src/hosts/model.js';
import type { JournalEntry } from '../../../src/store/file/journal.js';
import { DamagedDataFileError, loadFiles, readSnapshot, type StoreFiles } from '../../../src/store/file/load.js';
import { AtomicFileWriter, snapshotText } from '../../../src/store/file/snapshot-file.js';
import { heartbeatOf } from '../../contract/host-store.contract.js';
import { FakeDisk, recordingLog } from '../../helpers/fake-disk.js';
import { tempDir } from '../../helpers/temp-dir.js';

/** A record as a first heartbeat from `ipAddress` stores it. */
const host = (ipAddress: string): Host => mergeHeartbeat(undefined, heartbeatOf({ ip_address: ipAddress }));

const line = (entry: JournalEntry) => JSON.stringify(entry) + '\n';

async function folder() {
  const dir = await tempDir();
  const log = recordingLog();
  const disk = new FakeDisk();
  const files: StoreFiles = {
    directory: dir.path,
    snapshotPath: path.join(dir.path, 'hosts.json'),
    journalPath: path.join(dir.path, 'hosts.journal'),
    fs: disk,
    writer: new AtomicFileWriter(dir.path, disk),
    log,
  };
  const applied: JournalEntry[] = [];
  return {
    files,
    log,
    disk,
    applied,
    load: () => loadFiles(files, (entry) => applied.push(entry)),
    names: async () => (await readdir(dir.path)).sort(),
    remove: dir.remove,
  };
}

describe('loadFiles', () => {
  test('with no files, nothing is loaded and the journal starts empty', async () => {
    const subject = await folder();
    assert.deepEqual(await subject.load(), { size: 0, entries: 0 });
    assert.deepEqual(subject.applied, []);
    await subject.remove();
  });

  test('hands on the snapshot, then the journal, in order, and says where the journal ends', async () => {
    const subject = await folder();
    await writeFile(subject.files.snapshotPath, snapshotText([host('10.0.0.1'), host('10.0.0.2')]));
    const journal = line({ put: host('10.0.0.3') }) + line({ del: ['users', '10.0.0.1'] });
    await writeFile(subject.files.journalPath, journal);
    assert.deepEqual(await subject.load(), { size: Buffer.byteLength(journal), entries: 2 });
    assert.deepEqual(subject.applied, [
      { put: host('10.0.0.1') },
      { put: host('10.0.0.2') },
      { put: host('10.0.0.3') },
      { del: ['users', '10.0.0.1'] },
    ]);
    assert.deepEqual(subject.log.lines, []);
    await subject.remove();
  });

  test('a torn last line is cut off in place, and the damaged file kept beside it', async () => {
    const subject = await folder();
    const good = line({ put: host('10.0.0.1') });
    await writeFile(subject.files.journalPath, good + '{"put":{"service":"us');
    assert.deepEqual(await subject.load(), { size: Buffer.byteLength(good), entries: 1 });
    assert.equal(await readFile(subject.files.journalPath, 'utf8'), good);
    const names = await subject.names();
    assert.equal(names.length, 2);
    assert.match(names[1] ?? '', /^hosts\.journal\.damaged-/);
    assert.match(
      subject.log.lines.at(-1)?.msg ?? '',
      /recovered .*hosts\.journal up to its last good line \(1 records\)/,
    );
    await subject.remove();
  });

  test('a bad line in the middle is dropped, a record glued after a tear kept, and the journal rewritten', async () => {
    const subject = await folder();
    const first = line({ put: host('10.0.0.1') });
    const glued = line({ put: host('10.0.0.2') });
    await writeFile(subject.files.journalPath, first + 'not json\n' + '{"put":{"serv' + glued);
    const rewritten = first + glued;
    assert.deepEqual(await subject.load(), { size: Buffer.byteLength(rewritten), entries: 2 });
    assert.equal(await readFile(subject.files.journalPath, 'utf8'), rewritten);
    assert.deepEqual(subject.applied, [{ put: host('10.0.0.1') }, { put: host('10.0.0.2') }]);
    assert.match(subject.log.lines.at(-1)?.msg ?? '', /without its 2 damaged line\(s\) \(2 records kept\)/);
    assert.equal((await subject.names()).filter((name) => name.includes('.damaged-')).length, 1);
    await subject.remove();
  });

  test('a damaged journal that cannot be set aside (disk full) stops the start and leaves it unchanged', async () => {
    const subject = await folder();
    const content = line({ put: host('10.0.0.1') }) + 'not json\n';
    await writeFile(subject.files.journalPath, content);
    subject.disk.free = 0;
    await assert.rejects(subject.load(), (error: Error) => {
      assert.ok(error instanceof DamagedDataFileError);
      assert.match(error.message, /could not be set aside: .*ENOSPC.*Free space in/);
      return true;
    });
    assert.equal(await readFile(subject.files.journalPath, 'utf8'), content);
    await subject.remove();
  });

  test('the log names the first twenty damaged lines and counts the rest', async () => {
    const subject = await folder();
    await writeFile(subject.files.journalPath, 'not json\n'.repeat(25));
    assert.deepEqual(await subject.load(), { size: 0, entries: 0 });
    const warnings = subject.log.lines.map((entry) => entry.msg);
    assert.equal(warnings.filter((msg) => /line \d+ \(byte \d+\)/.test(msg)).length, 20);
    assert.ok(warnings.some((msg) => msg.endsWith('5 more damaged lines')));
    await subject.remove();
  });
});

describe('readSnapshot', () => {
  const files = { snapshotPath: '/data/hosts.json' };

  test('reads every record, with only its own fields', () => {
    const extra = { ...host('10.0.0.1'), unknown_field: 1 };
    assert.deepEqual(readSnapshot(files, Buffer.from(JSON.stringify([extra]))), [host('10.0.0.1')]);
  });

  test('a snapshot cut short is refused with the byte and line where it ends', () => {
    const text = snapshotText([host('10.0.0.1'), host('10.0.0.2')]);
    const cut = text.slice(0, text.indexOf('10.0.0.2'));
    assert.throws(
      () => readSnapshot(files, Buffer.from(cut)),
      (error: Error) =>
        error instanceof DamagedDataFileError &&
        error.message.includes(`/data/hosts.json is damaged at byte ${Buffer.byteLength(cut)} (line 3)`) &&
        error.message.includes('Nothing was changed'),
    );
  });

  test('a record that is not a host is refused by record and line, naming the field', () => {
    const text = snapshotText([host('10.0.0.1'), { ...host('10.0.0.2'), port: 0 }]);
    assert.throws(
      () => readSnapshot(files, Buffer.from(text)),
      /damaged at record 2 \(line 3\): port must be an integer/,
    );
  });

  test('a byte-order mark is skipped with a warning', () => {
    const log = recordingLog();
    const content = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(snapshotText([host('10.0.0.1')]))]);
    assert.deepEqual(readSnapshot({ ...files, log }, content), [host('10.0.0.1')]);
    assert.match(log.lines[0]?.msg ?? '', /byte-order mark; ignored/);
  });
});
