import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import { ManualClock } from '../../src/clock.js';
import type { ExpiryProtection } from '../../src/hosts/expiry.js';
import { ExpiryJudge, type ExpiryOwner } from '../../src/hosts/expiry-judge.js';
import { ReadRetries } from '../../src/hosts/freshness.js';
import { HostEvents } from '../../src/hosts/host-events.js';
import { byIp, snapshotOf } from '../../src/hosts/host-lists.js';
import { formatCheckIn } from '../../src/hosts/model.js';
import { statsdCounter } from '../../src/stats.js';
import { MemoryHostStore } from '../../src/store/memory-host-store.js';
import { RecordingStats } from '../helpers/stats.js';

const TTL_MS = 30_000;
const PROTECTION: ExpiryProtection = { enabled: true, threshold: 0.5, minHosts: 3, maxSeconds: 600 };

/** A judge on a memory store and a manual clock; `published` counts the local changes it publishes per service. */
function judgeWith(options: { protection?: ExpiryProtection; expiryOwner?: ExpiryOwner } = {}) {
  const store = new MemoryHostStore();
  const clock = new ManualClock();
  const stats = new RecordingStats();
  const logged: string[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => logged.push(JSON.parse(line).msg) });
  const events = new HostEvents(log);
  const published: string[] = [];
  events.onLocalChange((service) => published.push(service));
  const rereads: string[] = [];
  const judge: ExpiryJudge = new ExpiryJudge({
    store,
    instanceKey: 'ip',
    clock,
    stats,
    log,
    rules: { hostTtlMs: TTL_MS, protection: options.protection },
    events,
    retries: new ReadRetries(log),
    expiryOwner: options.expiryOwner,
    reread: async (service) => {
      rereads.push(service);
      const { hosts } = await store.listByService(service);
      return snapshotOf(await judge.judgeService(service, hosts, clock.now()), byIp);
    },
  });
  const beat = (service: string, ip: string) =>
    store.heartbeat({
      service,
      ip_address: ip,
      port: 80,
      revision: 'r1',
      service_repo_name: '',
      tags: {},
      last_check_in: formatCheckIn(clock.now()),
    });
  const judgeStored = async (service: string) =>
    judge.judgeService(service, (await store.listByService(service)).hosts, clock.now());
  return { store, clock, stats, logged, published, rereads, judge, beat, judgeStored };
}

describe('ExpiryJudge', () => {
  test('a host is kept until HOST_TTL passes without a heartbeat, then removed and published once', async () => {
    const { store, clock, stats, published, beat, judgeStored } = judgeWith();
    await beat('users', '10.0.0.1');
    clock.advance(TTL_MS);
    assert.equal((await judgeStored('users')).hosts.length, 1, 'at exactly HOST_TTL the host is still live');
    assert.deepEqual(published, []);
    clock.advance(1);
    const selection = await judgeStored('users');
    assert.deepEqual(selection.hosts, []);
    assert.equal(await store.get('users', '10.0.0.1'), undefined, 'the expired host is removed from storage');
    assert.deepEqual(published, ['users']);
    assert.equal(stats.count(statsdCounter.hostRemoved('users', 'expired')), 1);
    await judgeStored('users');
    assert.deepEqual(published, ['users'], 'judging again finds nothing left to remove');
  });

  test('a host that heartbeats again after it was judged expired, before its removal, is not removed', async () => {
    const { store, clock, published, judge, beat } = judgeWith();
    await beat('users', '10.0.0.1');
    clock.advance(TTL_MS + 1);
    const judgedStale = (await store.listByService('users')).hosts;
    await beat('users', '10.0.0.1');
    await judge.judge(judgedStale, clock.now());
    assert.ok(await store.get('users', '10.0.0.1'), 'the fresh heartbeat survives the removal of the one judged');
    assert.deepEqual(published, []);
  });

  test('protection engages when most of a service expires at once, and disengages when heartbeats return', async () => {
    const { clock, logged, published, judge, beat, judgeStored } = judgeWith({ protection: PROTECTION });
    for (const ip of ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4']) await beat('users', ip);
    clock.advance(TTL_MS + 1);
    await beat('users', '10.0.0.4');
    const held = await judgeStored('users');
    assert.equal(held.hosts.length, 4, 'three of four expired at once: all are kept');
    assert.deepEqual(judge.protectedServices(), ['users']);
    await judgeStored('users');
    assert.equal(
      logged.filter((msg) => msg.startsWith('expiry protection active')).length,
      1,
      'its start is logged once',
    );
    for (const ip of ['10.0.0.1', '10.0.0.2', '10.0.0.3']) await beat('users', ip);
    await judgeStored('users');
    assert.deepEqual(judge.protectedServices(), []);
    assert.ok(logged.includes('expiry protection ended: heartbeats are back'));
    assert.deepEqual(published, [], 'no host was removed');
  });

  test('protection ends for a service with no hosts left', async () => {
    const { clock, logged, judge, beat, judgeStored } = judgeWith({ protection: PROTECTION });
    for (const ip of ['10.0.0.1', '10.0.0.2', '10.0.0.3']) await beat('users', ip);
    clock.advance(TTL_MS + 1);
    await judgeStored('users');
    assert.deepEqual(judge.protectedServices(), ['users']);
    await judge.judgeService('users', [], clock.now());
    assert.deepEqual(judge.protectedServices(), []);
    assert.ok(logged.includes('expiry protection ended: the service has no hosts left'));
  });

  test('hosts due together are judged with one re-read of their service, which removes the expired', async () => {
    const { store, clock, published, rereads, judge, beat } = judgeWith();
    await beat('users', '10.0.0.1');
    clock.advance(TTL_MS + 1);
    judge.judgeDue(new Set(['users']));
    judge.judgeDue(new Set(['users']));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(rereads, ['users']);
    assert.equal(await store.get('users', '10.0.0.1'), undefined);
    assert.deepEqual(published, ['users']);
  });

  test('after close, due hosts are not judged and the expiry owner is closed', () => {
    const calls: string[] = [];
    const owner: ExpiryOwner = {
      track: () => calls.push('track'),
      forget: (key) => calls.push(`forget ${key}`),
      close: () => calls.push('close'),
    };
    const { rereads, judge } = judgeWith({ expiryOwner: owner });
    judge.forgetInstance('users', '10.0.0.1');
    judge.close();
    judge.judgeDue(new Set(['users']));
    assert.deepEqual(rereads, []);
    assert.equal(calls.length, 2);
    assert.match(calls[0] ?? '', /^forget .*users.*10\.0\.0\.1/);
    assert.equal(calls[1], 'close');
  });
});
