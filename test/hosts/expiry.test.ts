import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PROTECTION_RECHECK_MS, protectionHolds, selectLive, type ExpiryRules } from '../../src/hosts/expiry.js';
import { formatCheckIn, type Host } from '../../src/hosts/model.js';

const NOW = Date.UTC(2026, 11, 1, 12, 0, 0);
const TTL_MS = 10_000;

function host(service: string, ip: string, secondsAgo: number): Host {
  return {
    service,
    ip_address: ip,
    port: 80,
    revision: 'r',
    service_repo_name: '',
    last_check_in: formatCheckIn(NOW - secondsAgo * 1000),
    tags: {},
  };
}

const protection = { enabled: true, threshold: 0.5, minHosts: 3, maxSeconds: 60 };

describe('expiry rules (pure)', () => {
  test('live hosts are served until their first expiry; expired ones are to be swept', () => {
    const rules: ExpiryRules = { hostTtlMs: TTL_MS };
    const selection = selectLive(
      [host('a', '10.0.0.1', 2), host('a', '10.0.0.2', 11), host('a', '10.0.0.3', 5)],
      NOW,
      rules,
    );
    assert.deepEqual(
      selection.hosts.map((h) => h.ip_address),
      ['10.0.0.1', '10.0.0.3'],
    );
    assert.deepEqual(
      selection.toSweep.map((h) => h.ip_address),
      ['10.0.0.2'],
    );
    assert.equal(selection.validUntil, NOW - 5000 + TTL_MS);
    assert.equal(selection.protectedHosts, 0);
    assert.deepEqual(selection.services, [{ service: 'a', hosts: 3, expired: 1, protected: false }]);
  });

  test('a host exactly HOST_TTL old is still live; one millisecond later it is not', () => {
    const rules: ExpiryRules = { hostTtlMs: TTL_MS };
    assert.equal(selectLive([host('a', '10.0.0.1', 10)], NOW, rules).hosts.length, 1);
    assert.equal(selectLive([host('a', '10.0.0.1', 10)], NOW + 1, rules).hosts.length, 0);
  });

  test('protection holds past the threshold, per service, and keeps hosts up to maxSeconds past expiry', () => {
    const rules: ExpiryRules = { hostTtlMs: TTL_MS, protection };
    const hosts = [
      host('web', '10.0.0.1', 20),
      host('web', '10.0.0.2', 20),
      host('web', '10.0.0.3', 2),
      host('web', '10.0.0.4', 100), // beyond HOST_TTL + maxSeconds: swept even under protection
      host('db', '10.0.1.1', 20), // another service, alone: below minHosts, swept
    ];
    const selection = selectLive(hosts, NOW, rules);
    assert.deepEqual(selection.hosts.map((h) => h.ip_address).sort(), ['10.0.0.1', '10.0.0.2', '10.0.0.3']);
    assert.equal(selection.protectedHosts, 2);
    assert.deepEqual(selection.toSweep.map((h) => h.ip_address).sort(), ['10.0.0.4', '10.0.1.1']);
    assert.equal(selection.validUntil, NOW + PROTECTION_RECHECK_MS, 'a protected list is judged again soon');
    assert.deepEqual(
      selection.services.map((s) => [s.service, s.protected]),
      [
        ['web', true],
        ['db', false],
      ],
    );
  });

  test('protectionHolds: off, below minHosts, at the threshold and above it', () => {
    assert.equal(protectionHolds(undefined, 10, 9), false);
    assert.equal(protectionHolds({ ...protection, enabled: false }, 10, 9), false);
    assert.equal(protectionHolds(protection, 2, 2), false);
    assert.equal(protectionHolds(protection, 4, 2), false, 'exactly half is not more than half');
    assert.equal(protectionHolds(protection, 4, 3), true);
  });
});
