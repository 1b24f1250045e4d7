import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { readIfExists, writeFully, writeNewFile, type StoreFile } from '../../../src/store/file/disk.js';
import { FakeDisk } from '../../helpers/fake-disk.js';
import { tempDir } from '../../helpers/temp-dir.js';

describe('full writes', () => {
  test('writeFully writes every byte when each write(2) takes only part of what it is given', async () => {
    const dir = await tempDir();
    const disk = new FakeDisk();
    disk.shortWrites = true;
    const file = path.join(dir.path, 'out');
    const handle = await disk.open(file, 'w');
    const content = Buffer.from('x'.repeat(1000));
    await writeFully(handle, content, file);
    await handle.close();
    assert.deepEqual(await readFile(file), content);
    assert.ok(disk.writes > 5, `it took ${disk.writes} writes`);
    await dir.remove();
  });

  test('writeFully gives up with EIO after three writes in a row that write nothing', async () => {
    let calls = 0;
    const stuck: StoreFile = {
      write: async () => {
        calls++;
        return { bytesWritten: 0 };
      },
      datasync: async () => {},
      sync: async () => {},
      truncate: async () => {},
      close: async () => {},
    };
    await assert.rejects(writeFully(stuck, Buffer.from('abc'), 'stuck-file'), (error: NodeJS.ErrnoException) => {
      assert.equal(error.code, 'EIO');
      assert.match(error.message, /no progress writing stuck-file: 3 of 3 bytes left/);
      return true;
    });
    assert.equal(calls, 3);
  });

  test('writeNewFile replaces what the file held before', async () => {
    const dir = await tempDir();
    const file = path.join(dir.path, 'out');
    await writeFile(file, 'an older and longer content');
    await writeNewFile(new FakeDisk(), file, Buffer.from('new'));
    assert.equal(await readFile(file, 'utf8'), 'new');
    await dir.remove();
  });

  test('writeNewFile fails when the disk is full', async () => {
    const dir = await tempDir();
    const disk = new FakeDisk();
    disk.free = 2;
    await assert.rejects(writeNewFile(disk, path.join(dir.path, 'out'), Buffer.from('four')), { code: 'ENOSPC' });
    await dir.remove();
  });
});

describe('readIfExists', () => {
  test('reads a file, answers undefined for a missing one, and throws any other error', async () => {
    const dir = await tempDir();
    const file = path.join(dir.path, 'there');
    await writeFile(file, 'bytes');
    assert.equal((await readIfExists(file))?.toString(), 'bytes');
    assert.equal(await readIfExists(path.join(dir.path, 'missing')), undefined);
    await assert.rejects(readIfExists(dir.path), { code: 'EISDIR' });
    await dir.remove();
  });
});
