import assert from 'node:assert/strict';
import { readFile, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { DirectoryLockedError, LOCK_FILE_NAME, lockDirectory } from '../../src/store/directory-lock.js';
import { tempDir } from '../helpers/temp-dir.js';

function recordingLog() {
  const lines: string[] = [];
  const push = (_obj: object, msg?: string) => void lines.push(msg ?? '');
  return { lines, log: { debug: push, info: push, warn: push, error: push } };
}

const options = (log: ReturnType<typeof recordingLog>['log'], value: string) => ({
  setting: 'APPLICATION_DIR',
  settingValue: value,
  log,
});

describe('the APPLICATION_DIR lock', () => {
  test('a second lock in the same process is refused; released, it can be taken again', async () => {
    const dir = await tempDir();
    const { log } = recordingLog();
    const lock = await lockDirectory(dir.path, options(log, dir.path));
    await assert.rejects(lockDirectory(dir.path, options(log, dir.path)), DirectoryLockedError);
    await lock.release();
    await lock.release(); // idempotent
    const again = await lockDirectory(dir.path, options(log, dir.path));
    await again.release();
    await dir.remove();
  });

  test("another host's lock not refreshed for over 30 s is taken over with a warning", async () => {
    const dir = await tempDir();
    const file = path.join(dir.path, LOCK_FILE_NAME);
    await writeFile(file, JSON.stringify({ pid: 7, host: 'replica-b', since: '2026-01-01T00:00:00Z', token: 't' }));
    const old = new Date(Date.now() - 31_000);
    await utimes(file, old, old);
    const { lines, log } = recordingLog();
    const lock = await lockDirectory(dir.path, options(log, dir.path));
    assert.ok(
      lines.some((line) => /taking over .*pid 7 on replica-b last refreshed it 3\d s ago/.test(line)),
      lines.join('\n'),
    );
    assert.equal(JSON.parse(await readFile(file, 'utf8')).pid, process.pid);
    await lock.release();
    await dir.remove();
  });

  test('a lock file that never got its contents (a crash mid-write) is taken over once it is not brand new', async () => {
    const dir = await tempDir();
    const file = path.join(dir.path, LOCK_FILE_NAME);
    await writeFile(file, '');
    const old = new Date(Date.now() - 5_000);
    await utimes(file, old, old);
    const { lines, log } = recordingLog();
    const lock = await lockDirectory(dir.path, options(log, dir.path));
    assert.ok(lines.some((line) => /unreadable/.test(line)));
    await lock.release();
    await dir.remove();
  });

  test('release leaves a lock that is no longer ours alone', async () => {
    const dir = await tempDir();
    const file = path.join(dir.path, LOCK_FILE_NAME);
    const { log } = recordingLog();
    const lock = await lockDirectory(dir.path, options(log, dir.path));
    const theirs = JSON.stringify({ pid: 7, host: 'replica-b', since: 'now', token: 'theirs' });
    await writeFile(file, theirs);
    await lock.release();
    assert.equal(await readFile(file, 'utf8'), theirs);
    await dir.remove();
  });
});
