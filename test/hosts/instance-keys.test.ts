import assert from 'node:assert/strict';
import { test } from 'node:test';
import { instanceKey, parseInstanceKey } from '../../src/hosts/instance-keys.js';

test('an instance key is the IP in ip mode, ip:port in ip_port mode with IPv6 in brackets', () => {
  assert.equal(instanceKey('ip', '10.0.0.1', 80), '10.0.0.1');
  assert.equal(instanceKey('ip', '2001:db8::1', 80), '2001:db8::1');
  assert.equal(instanceKey('ip_port', '10.0.0.1', 80), '10.0.0.1:80');
  assert.equal(instanceKey('ip_port', '2001:db8::1', 80), '[2001:db8::1]:80');
});

test('a stored key says which mode wrote it, and round-trips', () => {
  assert.deepEqual(parseInstanceKey('10.0.0.1'), { mode: 'ip', ip: '10.0.0.1' });
  // A bare IPv6 address ends in digits after a colon, and is still an IP, never ip:port.
  assert.deepEqual(parseInstanceKey('2001:db8::80'), { mode: 'ip', ip: '2001:db8::80' });
  assert.deepEqual(parseInstanceKey('10.0.0.1:8080'), { mode: 'ip_port', ip: '10.0.0.1', port: 8080 });
  assert.deepEqual(parseInstanceKey('[2001:db8::1]:65535'), { mode: 'ip_port', ip: '2001:db8::1', port: 65535 });
  for (const [ip, port] of [
    ['10.0.0.1', 1],
    ['fd00::1', 443],
  ] as const) {
    assert.deepEqual(parseInstanceKey(instanceKey('ip_port', ip, port)), { mode: 'ip_port', ip, port });
  }
});

test('anything else is no key: one spelling per instance, ports in range', () => {
  for (const key of [
    '',
    'users',
    '10.0.0.1:',
    '10.0.0.1:0',
    '10.0.0.1:65536',
    '10.0.0.1:080',
    '[10.0.0.1]:80',
    '2001:db8::1]:80',
    '[2001:db8::1]',
    'host:80',
  ]) {
    assert.equal(parseInstanceKey(key), undefined, key);
  }
});
