import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createHash } from 'node:crypto';
import { versionOf } from '../../src/hosts/host-lists.js';
import {
  effectiveStatus,
  formatCheckIn,
  hostProblem,
  mergeTags,
  parseCheckIn,
  routingChanged,
} from '../../src/hosts/model.js';
import { canonicalIp } from '../../src/hosts/ip-address.js';
import { parseWeight } from '../../src/http/validation.js';

describe('model rules', () => {
  test('last_check_in is written as Python printed utcnow(), always with six fraction digits', () => {
    assert.equal(formatCheckIn(Date.UTC(2026, 10, 28, 6, 40, 12, 345) + 0.678), '2026-11-28 06:40:12.345678');
    assert.equal(formatCheckIn(Date.UTC(2026, 0, 2, 3, 4, 5, 0)), '2026-01-02 03:04:05.000000');
  });

  test('a written last_check_in parses back to the same instant', () => {
    const ms = Date.UTC(2026, 10, 28, 6, 40, 12, 345) + 0.678;
    assert.ok(Math.abs(parseCheckIn(formatCheckIn(ms)) - ms) < 0.001);
    assert.ok(Number.isNaN(parseCheckIn('yesterday')));
  });

  test('tag merge: incoming keys overwrite, absent keys are kept', () => {
    assert.deepEqual(mergeTags({ a: 1, b: 2 }, { b: 3, c: 4 }), { a: 1, b: 3, c: 4 });
  });

  test('IPv6 addresses are canonical; IPv4-mapped become IPv4; zones and names are refused', () => {
    assert.equal(canonicalIp('2001:0DB8::0001'), '2001:db8::1');
    assert.equal(canonicalIp('::ffff:192.168.1.2'), '192.168.1.2');
    assert.equal(canonicalIp('fe80::1%eth0'), undefined);
    assert.equal(canonicalIp('localhost'), undefined);
    assert.equal(canonicalIp('1.2.3'), undefined);
  });

  test('weights are integers 1..100 from strings or numbers', () => {
    assert.equal(parseWeight('1'), 1);
    assert.equal(parseWeight(100), 100);
    assert.equal(parseWeight(' 42 '), 42);
    // The original's int(): a sign, any whitespace around (a newline from a file), underscores between digits.
    assert.equal(parseWeight('+5'), 5);
    assert.equal(parseWeight('5\n'), 5);
    assert.equal(parseWeight('1_0'), 10);
    for (const bad of ['0', '101', '1.5', 'x', '1e1', -1, 2.5, '-5', '1__0', '+ 5'])
      assert.throws(() => parseWeight(bad), String(bad));
  });
});

describe('hostProblem: what any stored record must meet to be served', () => {
  const good = {
    service: 'web',
    ip_address: '10.0.0.1',
    port: 80,
    revision: 'r',
    service_repo_name: '',
    last_check_in: '2026-12-01 10:00:00.000000',
    tags: { az: 'a', nested: { list: [1, 'two', null, true] } },
  };

  test('a valid record has no problem', () => {
    assert.equal(hostProblem(good), undefined);
  });

  test('a cycle or a depth of thousands is a problem found without overflowing the stack', () => {
    const cyclic: Record<string, unknown> = { az: 'a' };
    cyclic.self = cyclic;
    assert.match(hostProblem({ ...good, tags: cyclic }) ?? '', /nested deeper/);
    let deep: unknown = 1;
    for (let level = 0; level < 100_000; level++) deep = [deep];
    assert.match(hostProblem({ ...good, tags: { deep } }) ?? '', /nested deeper/);
  });

  test('numbers JSON cannot write and values that are not data are problems', () => {
    for (const port of [Infinity, -Infinity, Number.NaN, 0, 65536, 80.5, '80'])
      assert.match(hostProblem({ ...good, port }) ?? '', /'port'/, String(port));
    for (const value of [Infinity, Number.NaN, 1n, undefined, () => 1, Symbol('s'), new Date(0), new Map()]) {
      assert.ok(hostProblem({ ...good, tags: { value } }) !== undefined, String(value));
    }
  });
});

describe('routingChanged on records from elsewhere', () => {
  test('tags nested far deeper than a heartbeat may send are compared without overflowing the stack', () => {
    let deep: unknown = 1;
    for (let level = 0; level < 100_000; level++) deep = [deep];
    const host = {
      service: 'web',
      ip_address: '10.0.0.1',
      port: 80,
      revision: 'r',
      service_repo_name: '',
      last_check_in: '2026-12-01 10:00:00.000000',
      tags: { deep },
    };
    assert.equal(routingChanged(host, { ...host, tags: { deep } }), false);
    assert.equal(routingChanged(host, { ...host, tags: { deep: [deep] } }), true);
  });
});

describe('status in the model', () => {
  const host = {
    service: 'users',
    ip_address: '10.0.0.1',
    port: 80,
    revision: 'r1',
    service_repo_name: '',
    last_check_in: '2026-11-28 06:40:12.345678',
    tags: { az: 'a', region: 'r', instance_id: 'i' },
  };

  test('a record without status fields (an older writer) is UP; the override wins over the host', () => {
    assert.equal(effectiveStatus(host), 'UP');
    assert.equal(effectiveStatus({ ...host, reported_status: 'DRAINING' }), 'DRAINING');
    assert.equal(effectiveStatus({ ...host, reported_status: 'DRAINING', status_override: 'UP' }), 'UP');
    assert.equal(effectiveStatus({ ...host, status_override: 'OUT_OF_SERVICE' }), 'OUT_OF_SERVICE');
  });

  test('hostProblem accepts the status fields and refuses bad ones', () => {
    assert.equal(hostProblem({ ...host, reported_status: 'OUT_OF_SERVICE', status_override: 'UP' }), undefined);
    for (const reported of ['UP', 'down', 7, null])
      assert.match(hostProblem({ ...host, reported_status: reported }) ?? '', /'reported_status'/, String(reported));
    for (const override of ['draining', 7, null, ''])
      assert.match(hostProblem({ ...host, status_override: override }) ?? '', /'status_override'/, String(override));
  });

  test('a status change is a routing change; the same effective status is not', () => {
    assert.equal(routingChanged(host, { ...host, reported_status: 'DRAINING' }), true);
    assert.equal(
      routingChanged({ ...host, reported_status: 'DRAINING' }, { ...host, status_override: 'DRAINING' }),
      false,
    );
  });

  test('a list of UP hosts hashes as it did before statuses (its ETag is unchanged); another status changes it', () => {
    // The hash as it was computed before statuses existed.
    const before = createHash('sha1')
      .update(JSON.stringify(['users', '10.0.0.1', 80, 'r1', '', { az: 'a', instance_id: 'i', region: 'r' }]))
      .update('\n')
      .digest('base64url')
      .slice(0, 22);
    assert.equal(versionOf([host]), before);
    assert.notEqual(versionOf([{ ...host, reported_status: 'DRAINING' }]), before);
  });
});
