import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Host } from '../../src/hosts/model.js';
import { MemoryHostStore, recordWrites } from '../../src/store/memory-host-store.js';
import { heartbeatOf, hostStoreContract } from '../contract/host-store.contract.js';

hostStoreContract('InMemory', {
  async open() {
    const store = new MemoryHostStore();
    return { store, dispose: () => store.close() };
  },
});

/** The record a first heartbeat makes, to work the other writes out against. */
function stored(overrides: Partial<Host> = {}): Host {
  const { current } = recordWrites.heartbeat(heartbeatOf()).decide(undefined).answer;
  return { ...current, ...overrides };
}

describe('the record-merge rule (recordWrites), shared by the InMemory and InFile stores', () => {
  test('a first heartbeat stores the record as sent and answers that there was none before', () => {
    const { change, answer } = recordWrites.heartbeat(heartbeatOf()).decide(undefined);
    const { tags, ...fields } = heartbeatOf();
    assert.deepEqual(change, { put: { ...fields, tags } });
    assert.deepEqual(answer, { previous: undefined, current: { ...fields, tags } });
  });

  test('a heartbeat merges tags, replaces the host’s own status and keeps the operator’s override', () => {
    const existing = stored({
      tags: { weight: 5, az: 'old' },
      reported_status: 'DRAINING',
      status_override: 'OUT_OF_SERVICE',
    });
    const heartbeat = heartbeatOf({ revision: 'r2', tags: { az: 'new' } });
    const { change, answer } = recordWrites.heartbeat(heartbeat).decide(existing);
    const { tags: _tags, ...fields } = heartbeat;
    const current = { ...fields, tags: { weight: 5, az: 'new' }, status_override: 'OUT_OF_SERVICE' };
    assert.deepEqual(change, { put: current });
    assert.deepEqual(answer, { previous: existing, current });
  });

  test('a delete removes an existing record and answers it; of none, it changes nothing', () => {
    const existing = stored();
    assert.deepEqual(recordWrites.delete('users', '10.0.0.1').decide(existing), {
      change: { del: ['users', '10.0.0.1'] },
      answer: existing,
    });
    assert.deepEqual(recordWrites.delete('users', '10.0.0.1').decide(undefined), { answer: undefined });
  });

  test('an expiry removes the record only while its check-in is the one judged', () => {
    const existing = stored();
    const judged = recordWrites.deleteIfCheckInIs('users', '10.0.0.1', existing.last_check_in);
    assert.deepEqual(judged.decide(existing), { change: { del: ['users', '10.0.0.1'] }, answer: true });
    assert.deepEqual(judged.decide({ ...existing, last_check_in: '2026-11-28 06:50:00.000000' }), { answer: false });
    assert.deepEqual(judged.decide(undefined), { answer: false });
  });

  test('a tag update merges into an existing record, touches no other field, and creates none', () => {
    const existing = stored({ reported_status: 'DRAINING' });
    const write = recordWrites.updateTags('users', '10.0.0.1', { weight: 7 });
    const updated = { ...existing, tags: { ...existing.tags, weight: 7 } };
    assert.deepEqual(write.decide(existing), { change: { put: updated }, answer: updated });
    assert.deepEqual(write.decide(undefined), { answer: undefined });
  });

  test('an override is set or cleared on an existing record, keeping the host’s own status, and creates none', () => {
    const existing = stored({ reported_status: 'DRAINING' });
    const set = recordWrites.setStatusOverride('users', '10.0.0.1', 'OUT_OF_SERVICE').decide(existing);
    assert.deepEqual(set.answer, { ...existing, status_override: 'OUT_OF_SERVICE' });
    const cleared = recordWrites.setStatusOverride('users', '10.0.0.1', undefined).decide(set.answer);
    assert.deepEqual(cleared.answer, existing);
    assert.ok(!('status_override' in (cleared.answer ?? {})), 'a cleared override leaves no field behind');
    assert.deepEqual(recordWrites.setStatusOverride('users', '10.0.0.1', 'DRAINING').decide(undefined), {
      answer: undefined,
    });
  });
});

describe('MemoryHostStore held by another store', () => {
  test('apply stores and removes whole records as given; record and records read them back at once', () => {
    const memory = new MemoryHostStore();
    const first = stored();
    const second = stored({ ip_address: '10.0.0.2' });
    memory.apply({ put: first });
    memory.apply({ put: second });
    assert.equal(memory.record('users', '10.0.0.1'), first);
    assert.deepEqual([...memory.records()], [first, second]);
    memory.apply({ del: ['users', '10.0.0.1'] });
    assert.equal(memory.record('users', '10.0.0.1'), undefined);
    assert.deepEqual([...memory.records()], [second]);
    memory.apply({ del: ['users', '10.0.0.9'] }); // removing what is not there changes nothing
    assert.deepEqual([...memory.records()], [second]);
  });
});
