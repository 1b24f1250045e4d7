import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatCheckIn, mergeTags, parseCheckIn } from '../../src/hosts/model.js';
import { canonicalIp, parseWeight } from '../../src/hosts/validation.js';

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
    for (const bad of ['0', '101', '1.5', 'x', '1e1', -1, 2.5]) assert.throws(() => parseWeight(bad), String(bad));
  });
});
