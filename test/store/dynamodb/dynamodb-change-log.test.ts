import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { changeKey, type ChangeRecord } from '../../../src/hosts/change-log.js';
import { dynaliteStoreForSuite } from '../../helpers/dynamodb.js';

/** The change log's storage on a real dynalite: one partition of the hosts table. */

function change(at: number, replica: string, sequence: number, services: string[]): ChangeRecord {
  return { key: changeKey(at, replica, sequence), replica, services, at };
}

describe('DynamoDB change log', () => {
  const opened = dynaliteStoreForSuite();

  test('a read returns the records since a time, oldest first, and every announcement', async () => {
    const log = opened().store.changeLog;
    const t = Date.UTC(2026, 11, 2, 12, 0, 0);
    await log.append(change(t + 2000, 'b', 1, ['orders']));
    await log.append(change(t, 'a', 1, ['users', 'billing']));
    await log.append(change(t + 1000, 'a', 2, ['users']));
    await log.announce({ id: 'a', url: 'http://10.0.0.1:8080', aliveUntil: t + 45_000 });
    await log.announce({ id: 'b', url: 'http://10.0.0.2:8080', aliveUntil: t + 45_000 });
    const page = await log.read(t + 500);
    assert.deepEqual(
      page.changes.map((record) => [record.replica, record.services, record.at]),
      [
        ['a', ['users'], t + 1000],
        ['b', ['orders'], t + 2000],
      ],
    );
    assert.equal(page.changes[0]?.key, changeKey(t + 1000, 'a', 2), 'the key the writer chose, as hints name it');
    assert.deepEqual(
      page.replicas.map((replica) => replica.id),
      ['a', 'b'],
    );
    assert.equal(page.replicas[1]?.url, 'http://10.0.0.2:8080');
  });

  test('appending the same key twice stores one record; withdraw removes an announcement', async () => {
    const log = opened().store.changeLog;
    const t = Date.UTC(2026, 11, 2, 13, 0, 0);
    const record = change(t, 'c', 7, ['ledger']);
    await log.append(record);
    await log.append(record);
    assert.equal((await log.read(t)).changes.length, 1);
    await log.announce({ id: 'c', url: 'http://10.0.0.3:8080', aliveUntil: t + 45_000 });
    await log.withdraw('c');
    assert.ok(!(await log.read(t)).replicas.some((replica) => replica.id === 'c'));
  });

  test('prune removes the records before a time and keeps the rest and the announcements', async () => {
    const log = opened().store.changeLog;
    const t = Date.UTC(2026, 11, 2, 14, 0, 0);
    for (let index = 0; index < 60; index++) await log.append(change(t + index, 'd', index, [`s-${index}`]));
    const removedBefore = await log.prune(t + 30);
    assert.ok(removedBefore >= 30, `${removedBefore} removed`);
    const left = (await log.read(0)).changes.filter((record) => record.replica === 'd');
    assert.equal(left.length, 30);
    assert.equal(left[0]?.at, t + 30);
    assert.ok(
      (await log.read(0)).replicas.some((replica) => replica.id === 'a'),
      'announcements are not pruned',
    );
  });

  test('the feed’s partition holds no host: it is not listed as a service', async () => {
    assert.ok(!(await opened().store.listServices()).some((name) => name.includes('/')));
  });
});
