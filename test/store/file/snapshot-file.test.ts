import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { mergeHeartbeat, type Host } from '../../../src/hosts/model.js';
import { AtomicFileWriter, removeTemporaryFiles, snapshotText } from '../../../src/store/file/snapshot-file.js';
import { heartbeatOf } from '../../contract/host-store.contract.js';
import { FakeDisk, recordingLog } from '../../helpers/fake-disk.js';
import { tempDir } from '../../helpers/temp-dir.js';

/** A record as a first heartbeat from `ipAddress` stores it. */
const host = (ipAddress: string): Host => mergeHeartbeat(undefined, heartbeatOf({ ip_address: ipAddress }));

describe('snapshotText', () => {
  test('an empty registry is an empty array', () => {
    assert.equal(snapshotText([]), '[]\n');
  });

  test('one record per line, so a damaged record can be pointed at by line', () => {
    const text = snapshotText([host('10.0.0.1'), host('10.0.0.2')]);
    assert.equal(text, `[\n${JSON.stringify(host('10.0.0.1'))},\n${JSON.stringify(host('10.0.0.2'))}\n]\n`);
    assert.deepEqual(JSON.parse(text), [host('10.0.0.1'), host('10.0.0.2')]);
  });
});

describe('AtomicFileWriter', () => {
  test('replaces the file and leaves no temporary file behind', async () => {
    const dir = await tempDir();
    const file = path.join(dir.path, 'hosts.json');
    await writeFile(file, 'old');
    await new AtomicFileWriter(dir.path, new FakeDisk()).replace(file, Buffer.from('new'));
    assert.equal(await readFile(file, 'utf8'), 'new');
    assert.deepEqual(await readdir(dir.path), ['hosts.json']);
    await dir.remove();
  });

  const faults: [name: string, code: string, arrange: (disk: FakeDisk) => void][] = [
    ['a failed rename', 'EIO', (disk) => (disk.failRenames = true)],
    ['a disk that fills up mid-write', 'ENOSPC', (disk) => (disk.free = 5)],
  ];
  for (const [name, code, arrange] of faults) {
    test(`${name} leaves the old file as it was and removes the temporary file`, async () => {
      const dir = await tempDir();
      const file = path.join(dir.path, 'hosts.json');
      await writeFile(file, 'old');
      const disk = new FakeDisk();
      arrange(disk);
      await assert.rejects(new AtomicFileWriter(dir.path, disk).replace(file, Buffer.from('a longer new content')), {
        code,
      });
      assert.equal(await readFile(file, 'utf8'), 'old');
      assert.deepEqual(await readdir(dir.path), ['hosts.json']);
      await dir.remove();
    });
  }
});

describe('removeTemporaryFiles', () => {
  test("removes the named files' temporary files only, and says so", async () => {
    const dir = await tempDir();
    for (const name of ['hosts.json', 'hosts.json.tmp-1-1', 'hosts.journal.tmp-9-2', 'other.tmp-1-1', 'notes'])
      await writeFile(path.join(dir.path, name), 'x');
    const log = recordingLog();
    const files = [path.join(dir.path, 'hosts.json'), path.join(dir.path, 'hosts.journal')];
    await removeTemporaryFiles(dir.path, files, log);
    assert.deepEqual((await readdir(dir.path)).sort(), ['hosts.json', 'notes', 'other.tmp-1-1']);
    const reported = log.lines.map((line) => (line.obj as { file: string }).file).sort();
    assert.deepEqual(reported, [
      path.join(dir.path, 'hosts.journal.tmp-9-2'),
      path.join(dir.path, 'hosts.json.tmp-1-1'),
    ]);
    await dir.remove();
  });
});
