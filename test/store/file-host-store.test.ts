import assert from 'node:assert/strict';
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { FileHostStore } from '../../src/store/file-host-store.js';
import { heartbeatOf, hostStoreContract } from '../contract/host-store.contract.js';
import { tempDir } from '../helpers/temp-dir.js';

async function openIn(directory: string, remove: () => Promise<void>, compactAfterEntries?: number) {
  const store = await FileHostStore.open({ directory, fsync: false, compactAfterEntries });
  return {
    store,
    directory,
    dispose: async () => {
      await store.close();
      await remove();
    },
  };
}

hostStoreContract('InFile', {
  async open() {
    const dir = await tempDir();
    return openIn(dir.path, dir.remove);
  },
  async reopen(previous) {
    const { directory } = previous as Awaited<ReturnType<typeof openIn>>;
    await previous.store.close();
    const reopened = await FileHostStore.open({ directory, fsync: false });
    return { store: reopened, directory, dispose: (previous as Awaited<ReturnType<typeof openIn>>).dispose.bind(null) };
  },
});

describe('InFile crash safety', () => {
  test('a torn last journal line (a crash mid-append) is ignored and everything before it loads', async () => {
    const dir = await tempDir();
    const first = await FileHostStore.open({ directory: dir.path, fsync: false });
    await first.heartbeat(heartbeatOf({ ip_address: '10.0.0.1' }));
    await first.heartbeat(heartbeatOf({ ip_address: '10.0.0.2' }));
    await first.close();
    await appendFile(path.join(dir.path, 'hosts.journal'), '{"put":{"service":"users","ip_addr');
    const second = await FileHostStore.open({ directory: dir.path, fsync: false });
    assert.equal((await second.listByService('users')).hosts.length, 2);
    // New writes after the torn line still load on the next start.
    await second.heartbeat(heartbeatOf({ ip_address: '10.0.0.3' }));
    await second.close();
    const third = await FileHostStore.open({ directory: dir.path, fsync: false });
    assert.equal((await third.listByService('users')).hosts.length, 3);
    await third.close();
    await dir.remove();
  });

  test('compaction folds the journal into the snapshot and keeps every host', async () => {
    const dir = await tempDir();
    const store = await FileHostStore.open({ directory: dir.path, fsync: true, compactAfterEntries: 50 });
    for (let round = 0; round < 3; round++) {
      await Promise.all(
        Array.from({ length: 40 }, (_, index) =>
          store.heartbeat(heartbeatOf({ ip_address: `10.0.1.${index}`, revision: `r${round}` })),
        ),
      );
    }
    await store.close();
    const snapshot = JSON.parse(await readFile(path.join(dir.path, 'hosts.json'), 'utf8')) as unknown[];
    assert.ok(snapshot.length > 0, 'a snapshot was written');
    const journalLines = (await readFile(path.join(dir.path, 'hosts.journal'), 'utf8'))
      .split('\n')
      .filter(Boolean).length;
    assert.ok(journalLines < 120, `journal was truncated (${journalLines} lines left)`);
    const reopened = await FileHostStore.open({ directory: dir.path, fsync: false });
    const { hosts } = await reopened.listByService('users');
    assert.equal(hosts.length, 40);
    assert.ok(hosts.every((host) => host.revision === 'r2'));
    await reopened.close();
    await dir.remove();
  });

  test('a leftover temporary snapshot from a crash mid-compaction is not read', async () => {
    const dir = await tempDir();
    const store = await FileHostStore.open({ directory: dir.path, fsync: false });
    await store.heartbeat(heartbeatOf());
    await store.close();
    await writeFile(path.join(dir.path, 'hosts.json.tmp-12345'), '[{"half": ');
    const reopened = await FileHostStore.open({ directory: dir.path, fsync: false });
    assert.equal((await reopened.listByService('users')).hosts.length, 1);
    await reopened.close();
    await dir.remove();
  });
});
