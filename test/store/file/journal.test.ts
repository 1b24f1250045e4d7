import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { mergeHeartbeat } from '../../../src/hosts/model.js';
import { Journal, type JournalEntry } from '../../../src/store/file/journal.js';
import { heartbeatOf } from '../../contract/host-store.contract.js';
import { FakeDisk, recordingLog } from '../../helpers/fake-disk.js';
import { tempDir } from '../../helpers/temp-dir.js';

const put = (ipAddress: string): JournalEntry => ({
  put: mergeHeartbeat(undefined, heartbeatOf({ ip_address: ipAddress })),
});

const lines = (...entries: JournalEntry[]) => entries.map((entry) => JSON.stringify(entry) + '\n').join('');

async function openJournal(disk = new FakeDisk(), log = recordingLog()) {
  const dir = await tempDir();
  const file = path.join(dir.path, 'hosts.journal');
  await writeFile(file, lines(put('10.0.0.1')));
  const journal = await Journal.open(disk, file, { fsync: true, log, size: (await readFile(file)).length, entries: 1 });
  return {
    journal,
    file,
    disk,
    log,
    read: () => readFile(file, 'utf8'),
    dispose: async () => {
      await journal.close();
      await dir.remove();
    },
  };
}

describe('Journal', () => {
  test('appends each entry as one JSON line after what loading kept, and counts them', async () => {
    const { journal, read, dispose } = await openJournal();
    await journal.append([put('10.0.0.2'), { del: ['users', '10.0.0.1'] }]);
    assert.equal(await read(), lines(put('10.0.0.1'), put('10.0.0.2'), { del: ['users', '10.0.0.1'] }));
    assert.equal(journal.entries, 3);
    await dispose();
  });

  test('an append the disk has no room for is cut off again, so the file still ends on a whole line', async () => {
    const { journal, disk, read, dispose } = await openJournal();
    disk.free = 10; // room for a torn part of the line, not for all of it
    await assert.rejects(journal.append([put('10.0.0.2')]), { code: 'ENOSPC' });
    assert.equal(await read(), lines(put('10.0.0.1')));
    assert.equal(journal.entries, 1);
    disk.free = Number.POSITIVE_INFINITY;
    await journal.append([put('10.0.0.3')]);
    assert.equal(await read(), lines(put('10.0.0.1'), put('10.0.0.3')));
    await dispose();
  });

  test('a cut-off that fails is logged and done before the next append', async () => {
    const { journal, disk, log, read, dispose } = await openJournal();
    disk.free = 10;
    disk.failTruncates = true;
    await assert.rejects(journal.append([put('10.0.0.2')]), { code: 'ENOSPC' });
    assert.notEqual(await read(), lines(put('10.0.0.1')), 'the torn part is still there');
    assert.match(log.lines[0]?.msg ?? '', /could not cut a failed append off the journal/);
    assert.equal(log.lines[0]?.level, 'error');

    // While the cut-off keeps failing, nothing more is appended after the torn part.
    disk.free = Number.POSITIVE_INFINITY;
    await assert.rejects(journal.append([put('10.0.0.3')]), { code: 'EIO' });

    disk.failTruncates = false;
    await journal.append([put('10.0.0.4')]);
    assert.equal(await read(), lines(put('10.0.0.1'), put('10.0.0.4')));
    await dispose();
  });

  test('emptying leaves an empty file that the next append starts', async () => {
    const { journal, read, dispose } = await openJournal();
    await journal.empty();
    assert.equal(await read(), '');
    assert.equal(journal.entries, 0);
    await journal.append([put('10.0.0.2')]);
    assert.equal(await read(), lines(put('10.0.0.2')));
    await dispose();
  });
});
