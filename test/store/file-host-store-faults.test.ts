import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { open, readdir, readFile, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { StorageUnavailableError } from '../../src/errors.js';
import { FileHostStore } from '../../src/store/file-host-store.js';
import { heartbeatOf } from '../contract/host-store.contract.js';
import { FakeDisk, recordingLog } from '../helpers/fake-disk.js';
import { tempDir } from '../helpers/temp-dir.js';

const ip = (index: number) => `10.0.${Math.floor(index / 250)}.${index % 250}`;

/** Every line of the journal is a whole JSON record: later appends are never glued to a torn one. */
async function assertJournalWhole(directory: string): Promise<number> {
  const text = await readFile(path.join(directory, 'hosts.journal'), 'utf8');
  assert.ok(text === '' || text.endsWith('\n'), 'the journal ends with a complete line');
  const lines = text.split('\n').filter(Boolean);
  for (const [index, line] of lines.entries())
    assert.doesNotThrow(() => JSON.parse(line), `journal line ${index + 1} is whole: ${line.slice(0, 80)}`);
  return lines.length;
}

describe('InFile on a failing disk', () => {
  test('a write that comes back short is finished, never left torn', async () => {
    const dir = await tempDir();
    const disk = new FakeDisk();
    disk.shortWrites = true;
    const store = await FileHostStore.open({ directory: dir.path, fsync: false, fs: disk, compactAfterEntries: 15 });
    await Promise.all(
      Array.from({ length: 10 }, (_, index) => store.heartbeat(heartbeatOf({ ip_address: ip(index) }))),
    );
    for (let index = 10; index < 20; index++) await store.heartbeat(heartbeatOf({ ip_address: ip(index) }));
    await store.close();
    await assertJournalWhole(dir.path);
    const reopened = await FileHostStore.open({ directory: dir.path, fsync: false });
    assert.equal((await reopened.listByService('users')).hosts.length, 20);
    await reopened.close();
    await dir.remove();
  });

  test('an append that fails (disk full) fails its writes, serves none of them, and later appends stay readable', async () => {
    const dir = await tempDir();
    const disk = new FakeDisk();
    const log = recordingLog();
    const store = await FileHostStore.open({ directory: dir.path, fsync: true, fs: disk, log });
    for (let index = 0; index < 5; index++) await store.heartbeat(heartbeatOf({ ip_address: ip(index) }));
    disk.free = 100; // part of one line fits
    const failed = await Promise.allSettled([
      store.heartbeat(heartbeatOf({ ip_address: ip(5) })),
      store.heartbeat(heartbeatOf({ ip_address: ip(0), revision: 'answered-503' })),
      store.delete('users', ip(1)),
      store.updateTags('users', ip(2), { load_balancing_weight: 99 }),
      store.deleteIfCheckInIs('users', ip(3), heartbeatOf().last_check_in),
    ]);
    for (const outcome of failed) {
      assert.equal(outcome.status, 'rejected');
      assert.ok(outcome.reason instanceof StorageUnavailableError, String(outcome.reason));
    }
    const servedNow = async (target: FileHostStore) => {
      assert.equal(await target.get('users', ip(5)), undefined, 'a new host answered 503 is not served');
      assert.equal((await target.get('users', ip(0)))?.revision, 'r1', 'a heartbeat answered 503 is not served');
      assert.notEqual(await target.get('users', ip(1)), undefined, 'a DELETE answered 503 leaves the host served');
      assert.equal(
        (await target.get('users', ip(2)))?.tags.load_balancing_weight,
        undefined,
        'a weight answered 503 is not served',
      );
      assert.notEqual(await target.get('users', ip(3)), undefined, 'an expiry answered 503 leaves the host served');
    };
    await servedNow(store);
    disk.free = Number.POSITIVE_INFINITY;
    await store.heartbeat(heartbeatOf({ ip_address: ip(6) }));
    await store.close();
    assert.equal(await assertJournalWhole(dir.path), 6);
    const reopened = await FileHostStore.open({ directory: dir.path, fsync: false, log });
    await servedNow(reopened);
    assert.equal((await reopened.listByService('users')).hosts.length, 6);
    assert.deepEqual(
      log.lines.filter((line) => line.level === 'warn'),
      [],
      'nothing to recover on start',
    );
    await reopened.close();
    await dir.remove();
  });

  test('a failed append that cannot be cut off again blocks further appends until it is, so none is glued to it', async () => {
    const dir = await tempDir();
    const disk = new FakeDisk();
    const log = recordingLog();
    const store = await FileHostStore.open({ directory: dir.path, fsync: true, fs: disk, log });
    await store.heartbeat(heartbeatOf({ ip_address: ip(0) }));
    disk.free = 50;
    disk.failTruncates = true;
    await assert.rejects(store.heartbeat(heartbeatOf({ ip_address: ip(1) })), StorageUnavailableError);
    assert.ok(
      log.lines.some((line) => line.level === 'error'),
      'the failed cut is logged',
    );
    disk.free = Number.POSITIVE_INFINITY;
    await assert.rejects(
      store.heartbeat(heartbeatOf({ ip_address: ip(2) })),
      StorageUnavailableError,
      'no append follows the torn bytes',
    );
    disk.failTruncates = false;
    await store.heartbeat(heartbeatOf({ ip_address: ip(3) }));
    await store.close();
    assert.equal(await assertJournalWhole(dir.path), 2);
    const reopened = await FileHostStore.open({ directory: dir.path, fsync: false });
    assert.deepEqual((await reopened.listByService('users')).hosts.map((host) => host.ip_address).sort(), [
      ip(0),
      ip(3),
    ]);
    await reopened.close();
    await dir.remove();
  });

  test('a read while the append is in flight sees the last durable record, never the pending one', async () => {
    const dir = await tempDir();
    const disk = new FakeDisk();
    const store = await FileHostStore.open({ directory: dir.path, fsync: false, fs: disk });
    await store.heartbeat(heartbeatOf());
    let release = () => {};
    disk.gate = new Promise((resolve) => (release = resolve));
    const pending = [
      store.heartbeat(heartbeatOf({ revision: 'r2' })),
      store.heartbeat(heartbeatOf({ revision: 'r3', tags: { az: 'b', region: 'r', instance_id: 'i', extra: 1 } })),
      store.updateTags('users', '10.0.0.1', { load_balancing_weight: 5 }),
      store.heartbeat(heartbeatOf({ ip_address: '10.0.0.2' })),
    ];
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal((await store.get('users', '10.0.0.1'))?.revision, 'r1');
    assert.equal(await store.get('users', '10.0.0.2'), undefined);
    assert.equal((await store.listByService('users')).hosts.length, 1);
    release();
    disk.gate = undefined;
    const [, third, tagged] = await Promise.all(pending);
    // Writes queued together still apply in order, each over the one before it.
    assert.equal((third as { previous?: { revision: string } }).previous?.revision, 'r2');
    assert.equal((tagged as { revision: string } | undefined)?.revision, 'r3');
    const host = await store.get('users', '10.0.0.1');
    assert.equal(host?.revision, 'r3');
    assert.equal(host?.tags.extra, 1);
    assert.equal(host?.tags.load_balancing_weight, 5);
    await store.close();
    await dir.remove();
  });

  for (const fault of ['disk full', 'short then full', 'rename fails'] as const) {
    test(`compaction that fails (${fault}) answers the durable writes, keeps both old files and serving, and retries later`, async () => {
      const dir = await tempDir();
      const disk = new FakeDisk();
      const log = recordingLog();
      const store = await FileHostStore.open({
        directory: dir.path,
        fsync: true,
        fs: disk,
        compactAfterEntries: 10,
        log,
      });
      for (let index = 0; index < 10; index++) await store.heartbeat(heartbeatOf({ ip_address: ip(index) }));
      const journalBefore = await readFile(path.join(dir.path, 'hosts.journal'), 'utf8');
      if (fault === 'disk full') disk.failWritesTo = /hosts\.json/;
      if (fault === 'short then full') disk.free = 1_000; // the journal line fits, the snapshot does not
      if (fault === 'rename fails') disk.failRenames = true;
      const result = await store.heartbeat(heartbeatOf({ ip_address: ip(10) }));
      assert.equal(result.current.ip_address, ip(10), 'the write was durable, so it is answered');
      assert.equal((await store.listByService('users')).hosts.length, 11);
      await assert.rejects(
        readFile(path.join(dir.path, 'hosts.json')),
        { code: 'ENOENT' },
        'no snapshot replaced the (absent) old one',
      );
      const journalAfter = await readFile(path.join(dir.path, 'hosts.journal'), 'utf8');
      assert.ok(
        journalAfter.startsWith(journalBefore) && journalAfter.split('\n').filter(Boolean).length === 11,
        'the journal is intact',
      );
      assert.deepEqual(
        (await readdir(dir.path)).filter((name) => name.includes('tmp')),
        [],
        'no temporary file is left',
      );
      assert.ok(
        log.lines.some((line) => line.level === 'error' || line.level === 'warn'),
        'the failed compaction is logged',
      );
      // Space returns: a later write compacts.
      disk.failWritesTo = undefined;
      disk.free = Number.POSITIVE_INFINITY;
      disk.failRenames = false;
      for (let index = 11; index < 20; index++) await store.heartbeat(heartbeatOf({ ip_address: ip(index) }));
      const snapshot = JSON.parse(await readFile(path.join(dir.path, 'hosts.json'), 'utf8')) as unknown[];
      assert.ok(snapshot.length >= 11, `compaction ran once space returned (${snapshot.length} hosts in the snapshot)`);
      await store.close();
      const reopened = await FileHostStore.open({ directory: dir.path, fsync: false });
      assert.equal((await reopened.listByService('users')).hosts.length, 20);
      await reopened.close();
      await dir.remove();
    });
  }

  test('temporary files left by a crash are removed at start', async () => {
    const dir = await tempDir();
    await writeFile(path.join(dir.path, 'hosts.json.tmp-12345'), '[{"half": ');
    await writeFile(path.join(dir.path, 'hosts.journal.tmp-12345-1'), '{"put":');
    await writeFile(path.join(dir.path, 'unrelated.txt'), 'keep me');
    const store = await FileHostStore.open({ directory: dir.path, fsync: false });
    assert.deepEqual((await readdir(dir.path)).sort(), ['hosts.journal', 'unrelated.txt']);
    await store.close();
    await dir.remove();
  });
});

/**
 * A disk that can be filled: a small tmpfs when the tests run as root and can mount one,
 * otherwise the fake disk, so the test runs everywhere.
 */
async function smallDisk(directory: string) {
  let mounted = false;
  if (process.getuid?.() === 0) {
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', directory], { stdio: 'pipe' });
      mounted = true;
    } catch {
      mounted = false; // no privilege to mount here after all (a container): use the fake disk
    }
  }
  const fake = new FakeDisk();
  const filler = path.join(directory, 'filler');
  return {
    kind: mounted ? 'tmpfs' : 'fake disk',
    fs: mounted ? undefined : fake,
    /** Leaves about `bytes` free. */
    async fill(bytes: number) {
      if (!mounted) {
        fake.free = bytes;
        return;
      }
      const spare = path.join(directory, 'spare');
      await writeFile(spare, Buffer.alloc(bytes, 1));
      const handle = await open(filler, 'w');
      const chunk = Buffer.alloc(16 * 1024, 1);
      try {
        for (let written = 0; written < 1024; written++) await handle.write(chunk, 0, chunk.length); // bounded: 16 MiB at most
        assert.fail('the tmpfs never filled up');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
      } finally {
        await handle.close();
      }
      await unlink(spare);
    },
    async release() {
      fake.free = Number.POSITIVE_INFINITY;
      if (mounted) await unlink(filler);
    },
    unmount() {
      if (!mounted) return;
      mounted = false;
      try {
        execFileSync('umount', [directory], { stdio: 'pipe' });
      } catch {
        execFileSync('umount', ['-l', directory], { stdio: 'pipe' }); // still busy: detach it, the kernel frees it once unused
      }
    },
  };
}

describe('InFile on a full disk, end to end', () => {
  test(
    'a heartbeat storm into a full disk loses no acknowledged write, serves no failed one, and restarts',
    { timeout: 60_000 },
    async (t) => {
      const dir = await tempDir();
      const disk = await smallDisk(dir.path);
      const log = recordingLog();
      // Compaction first comes due in the second round, when the disk is nearly full.
      const options = {
        directory: path.join(dir.path, 'infile'),
        fsync: true,
        compactAfterEntries: 400,
        fs: disk.fs,
        log,
      };
      let store = await FileHostStore.open(options);
      t.after(async () => {
        await store.close().catch(() => undefined);
        disk.unmount();
        await dir.remove();
      });
      const hosts = 60;
      /** What the store must serve for each host: the revision of its last acknowledged write, or undefined when deleted. */
      const expected = new Map<string, string | undefined>();
      for (let index = 0; index < 300; index++) {
        const revision = `seed-${index}`;
        await store.heartbeat(heartbeatOf({ ip_address: ip(index % hosts), revision }));
        expected.set(ip(index % hosts), revision);
      }
      const check = async (target: FileHostStore, when: string) => {
        const wrong: string[] = [];
        for (const [address, revision] of expected) {
          const served = (await target.get('users', address))?.revision;
          if (served !== revision)
            wrong.push(`${address}: expected ${revision ?? 'no host'}, served ${served ?? 'no host'}`);
        }
        assert.deepEqual(
          wrong,
          [],
          `${when} (${disk.kind}): ${wrong.length} hosts differ from their last acknowledged write`,
        );
      };
      await disk.fill(40 * 1024);
      let acknowledged = 0;
      let failed = 0;
      const started = Date.now();
      for (let round = 0; round < 30 && Date.now() - started < 30_000; round++) {
        const outcomes = await Promise.allSettled(
          Array.from({ length: hosts }, (_, index) => {
            const address = ip(index);
            const revision = `round-${round}-${index}`;
            const write =
              round % 5 === 4 && index % 6 === 0
                ? store.delete('users', address).then(() => undefined)
                : store.heartbeat(heartbeatOf({ ip_address: address, revision })).then(() => revision);
            return write.then((value) => ({ address, value }));
          }),
        );
        for (const outcome of outcomes) {
          if (outcome.status === 'fulfilled') {
            acknowledged++;
            expected.set(outcome.value.address, outcome.value.value);
          } else {
            failed++;
            assert.ok(outcome.reason instanceof StorageUnavailableError, String(outcome.reason));
          }
        }
        await check(store, `round ${round}`);
      }
      const failedCompactions = log.lines.filter((line) => /new snapshot/.test(line.msg)).length;
      t.diagnostic(
        `${disk.kind}: ${acknowledged} writes acknowledged, ${failed} answered as failed, ${failedCompactions} compactions failed`,
      );
      assert.ok(
        acknowledged > 0 && failed > 0,
        `the disk filled during the storm (${acknowledged} acknowledged, ${failed} failed)`,
      );
      await store.close();
      store = await FileHostStore.open(options);
      await check(store, 'restarted on the full disk');
      await disk.release();
      for (let index = 0; index < hosts; index++) {
        const revision = `after-${index}`;
        await store.heartbeat(heartbeatOf({ ip_address: ip(index), revision }));
        expected.set(ip(index), revision);
      }
      await store.close();
      store = await FileHostStore.open(options);
      await check(store, 'restarted once space returned');
      await store.close();
      assert.deepEqual(
        log.lines.filter((line) => line.level === 'warn' && /damaged|recovered/.test(line.msg)),
        [],
        'no start found damage',
      );
    },
  );
});
