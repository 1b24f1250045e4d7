import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { StorageUnavailableError } from '../../src/errors.js';
import { byIp, EMPTY_SNAPSHOT, HostLists, snapshotOf, type HostSnapshot } from '../../src/hosts/host-lists.js';
import type { Host } from '../../src/hosts/model.js';

/** A record as a store returns it; `checkIn` is the stored check-in (old on a replica following the feed). */
const host = (ip: string, weight = 10, checkIn = '2026-12-07 10:00:00.000000'): Host => ({
  service: 'users',
  ip_address: ip,
  port: 80,
  revision: 'r1',
  service_repo_name: 'users-repo',
  last_check_in: checkIn,
  tags: { load_balancing_weight: weight },
});

/** What `selectLive` would hand over: these hosts, live until `validUntil`. */
const built = (hosts: Host[], validUntil = Infinity): HostSnapshot =>
  snapshotOf({ hosts, protectedHosts: 0, validUntil }, byIp);

const CACHE_TTL_MS = 10_000;
const STALE_MAX_MS = 60_000;
const lists = (cacheEnabled: boolean) =>
  new HostLists({ cacheEnabled, cacheTtlMs: CACHE_TTL_MS, staleReadMaxMs: STALE_MAX_MS });
const outage = () => new StorageUnavailableError('DynamoDB did not answer');

describe('HostLists', () => {
  test('a list is sorted by address and an empty one is the shared empty list', () => {
    const snapshot = built([host('10.0.0.9'), host('10.0.0.10'), host('10.0.0.2')]);
    assert.deepEqual(
      snapshot.hosts.map((h) => h.ip_address),
      ['10.0.0.10', '10.0.0.2', '10.0.0.9'],
    );
    assert.equal(built([]), EMPTY_SNAPSHOT);
  });

  test('the same list is handed out while nothing in it changed; a weight change is a routing change, a check-in is not', () => {
    const kept = lists(false);
    const first = kept.keepService('users', built([host('10.0.0.1')]), 0, 1);
    assert.equal(first.routingChanged, false, 'nothing to compare a first list with');
    // The same records read again: the very same object (its encoded body and ETag are reused).
    const again = kept.keepService('users', built([host('10.0.0.1')]), 1, 2);
    assert.equal(again.snapshot, first.snapshot);
    // A heartbeat moves the check-in only: a new list (it expires later), but no routing change.
    const beat = kept.keepService('users', built([host('10.0.0.1', 10, '2026-12-07 10:00:05.000000')]), 2, 3);
    assert.notEqual(beat.snapshot, first.snapshot);
    assert.equal(beat.routingChanged, false);
    assert.equal(beat.snapshot.version, first.snapshot.version);
    const reweighted = kept.keepService('users', built([host('10.0.0.1', 78)]), 3, 4);
    assert.equal(reweighted.routingChanged, true);
    assert.notEqual(reweighted.snapshot.version, first.snapshot.version);
  });

  test('the same hosts kept past HOST_TTL by expiry protection are a new list that says so', () => {
    const kept = lists(false);
    const live = kept.keepService('users', built([host('10.0.0.1'), host('10.0.0.2')], 30_000), 0, 1);
    const protectedList = snapshotOf(
      { hosts: [host('10.0.0.1'), host('10.0.0.2')], protectedHosts: 2, validUntil: 35_000 },
      byIp,
    );
    const whileProtected = kept.keepService('users', protectedList, 31_000, 1);
    assert.notEqual(whileProtected.snapshot, live.snapshot);
    assert.equal(whileProtected.snapshot.protectedHosts, 2);
    assert.equal(whileProtected.snapshot.nextExpiryAt, 35_000);
    assert.equal(whileProtected.routingChanged, false, 'proxies route on the same hosts');
  });

  test('CACHE_TYPE=simple: a list is served without storage for CACHE_TTL, never past its first expiry', () => {
    const kept = lists(true);
    kept.keepService('users', built([host('10.0.0.1')], 5_000), 0, undefined);
    assert.ok(kept.knownService('users', 4_000, undefined), 'fresh and every host still live');
    assert.equal(kept.knownService('users', 5_001, undefined), undefined, 'a host in it may have expired');
    kept.keepService('users', built([host('10.0.0.1')]), 20_000, undefined);
    assert.ok(kept.knownService('users', 20_000 + CACHE_TTL_MS - 1, undefined));
    assert.equal(kept.knownService('users', 20_000 + CACHE_TTL_MS, undefined), undefined, 'CACHE_TTL is over');
  });

  test('CACHE_TYPE=null: a list is reused only while the store says nothing changed', () => {
    const kept = lists(false);
    kept.keepService('users', built([host('10.0.0.1')]), 0, 7);
    assert.ok(kept.knownService('users', 1_000, 7), 'the store still holds change token 7');
    assert.equal(kept.knownService('users', 1_000, 8), undefined, 'a write since');
    assert.equal(kept.knownService('users', 1_000, undefined), undefined, 'a store that cannot tell');
    assert.ok(kept.unchangedService('users', 7, 1_000));
    assert.equal(kept.unchangedService('users', 8, 1_000), undefined);
  });

  test('a write forgets its service and every repo list; a re-sync forgets every list', () => {
    const kept = lists(true);
    kept.keepService('users', built([host('10.0.0.1')]), 0, undefined);
    kept.keepService('orders', built([host('10.0.0.2')]), 0, undefined);
    kept.keepRepo('users-repo', built([host('10.0.0.1')]), 0);
    kept.forget('users');
    assert.equal(kept.knownService('users', 1, undefined), undefined);
    assert.ok(kept.knownService('orders', 1, undefined), 'another service keeps its list');
    assert.equal(kept.freshRepo('users-repo', 1), undefined, 'a repo list may include the service');
    kept.forgetAll();
    assert.equal(kept.knownService('orders', 1, undefined), undefined);
    assert.deepEqual([...kept.cachedServices()], []);
  });

  test('storage down: the last list read, exactly as read (old check-ins included), marked with its age', () => {
    const kept = lists(false);
    // Read at 0 with check-ins an hour old: what a replica following the change feed holds.
    const read = built([host('10.0.0.1', 10, '2026-12-07 09:00:00.000000'), host('10.0.0.2')]);
    kept.keepService('users', read, 0, 1);
    kept.forgetAll(); // a re-sync drops cached lists, never the last reads
    const stale = kept.staleService('users', 42_500, outage());
    assert.deepEqual(stale.hosts, read.hosts, 'no host filtered out by the check-in it last recorded');
    assert.equal(stale.staleAgeSeconds, 42);
    assert.equal(read.staleAgeSeconds, undefined, 'the list handed out before is not marked');
  });

  test('storage down past STALE_READ_MAX, or any other failure, or a service never read: the error, not a list', () => {
    const kept = lists(false);
    kept.keepService('users', built([host('10.0.0.1')]), 0, 1);
    assert.throws(() => kept.staleService('users', STALE_MAX_MS + 1, outage()), StorageUnavailableError);
    const bug = new TypeError('not a storage failure');
    assert.throws(() => kept.staleService('users', 1_000, bug), TypeError);
    assert.throws(() => kept.staleService('orders', 1_000, outage()), StorageUnavailableError);
    assert.throws(
      () => new HostLists({ cacheEnabled: false, cacheTtlMs: 0, staleReadMaxMs: 0 }).staleService('users', 0, outage()),
      StorageUnavailableError,
      'STALE_READ_MAX=0 keeps nothing to serve',
    );
  });

  test('a repo list is cached like a service list and served stale like one', () => {
    const kept = lists(true);
    const repo = kept.keepRepo('users-repo', built([host('10.0.0.1')]), 0);
    assert.equal(kept.freshRepo('users-repo', CACHE_TTL_MS - 1), repo);
    assert.equal(kept.freshRepo('users-repo', CACHE_TTL_MS), undefined);
    assert.deepEqual(kept.staleRepo('users-repo', 3_000, outage()).hosts, repo.hosts);
  });
});
