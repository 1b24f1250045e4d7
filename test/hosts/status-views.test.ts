import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { HostSnapshot } from '../../src/hosts/host-lists.js';
import type { Host } from '../../src/hosts/model.js';
import { statusView } from '../../src/hosts/status-views.js';

function host(ip: string, extra: Partial<Host> = {}): Host {
  return {
    service: 'web',
    ip_address: ip,
    port: 80,
    revision: 'r1',
    service_repo_name: '',
    last_check_in: '2026-12-02 06:00:00.000000',
    tags: { az: 'a', region: 'r', instance_id: ip },
    ...extra,
  };
}

/** A snapshot whose host list counts how often it is read, element by element. */
function countingSnapshot(hosts: Host[]): { snapshot: HostSnapshot; reads: () => number } {
  let reads = 0;
  const counted = new Proxy(hosts, {
    get(target, property, receiver) {
      if (typeof property === 'string' && /^\d+$/.test(property)) reads++;
      return Reflect.get(target, property, receiver);
    },
  });
  const snapshot = Object.freeze({ hosts: counted, version: 'v1', nextExpiryAt: Infinity, protectedHosts: 0 });
  return { snapshot: snapshot as unknown as HostSnapshot, reads: () => reads };
}

test('the plain read of an all-UP snapshot is the snapshot itself, decided once, not per request', () => {
  const { snapshot, reads } = countingSnapshot(
    Array.from({ length: 1000 }, (_, index) => host(`10.0.${index >> 8}.${index & 255}`)),
  );
  assert.equal(statusView(snapshot, undefined), snapshot);
  const afterFirst = reads();
  assert.ok(afterFirst >= 1000, 'the first read looks at every host');
  for (let request = 0; request < 100; request++) assert.equal(statusView(snapshot, undefined), snapshot);
  assert.equal(reads(), afterFirst, 'later reads of the same snapshot walk no host');
});

test('a snapshot with a DRAINING host is shown without it, as one view built once', () => {
  const { snapshot } = countingSnapshot([
    host('10.0.0.1'),
    host('10.0.0.2', { reported_status: 'DRAINING' } as Partial<Host>),
  ]);
  const view = statusView(snapshot, undefined);
  assert.deepEqual(
    view.hosts.map((each) => each.ip_address),
    ['10.0.0.1'],
  );
  assert.equal(statusView(snapshot, undefined), view);
  assert.notEqual(view.version, snapshot.version);
});
