import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config.js';

describe('xDS settings', () => {
  test('defaults: enabled on port 18000, the HTTP listen address, a 1 s poll', () => {
    const { xds } = loadConfig({ LISTEN_ADDRESS: '127.0.0.1' });
    assert.deepEqual(xds, {
      enabled: true,
      port: 18000,
      listenAddress: '127.0.0.1',
      pollIntervalMs: 1000,
      wildcardPollIntervalMs: 30_000,
      localityPriority: false,
      tls: undefined,
    });
  });

  test('XDS_PORT=0 picks a free port; XDS_ENABLED=false turns the gRPC server off', () => {
    const { xds } = loadConfig({ XDS_PORT: '0', XDS_ENABLED: 'false', XDS_LISTEN_ADDRESS: '::1' });
    assert.equal(xds.port, 0);
    assert.equal(xds.enabled, false);
    assert.equal(xds.listenAddress, '::1');
  });

  test('XDS_LOCALITY_PRIORITY reads like every other boolean setting', () => {
    for (const value of ['true', '1', 'yes']) {
      assert.equal(loadConfig({ XDS_LOCALITY_PRIORITY: value }).xds.localityPriority, true, value);
    }
    for (const value of ['false', '0', 'no']) {
      assert.equal(loadConfig({ XDS_LOCALITY_PRIORITY: value }).xds.localityPriority, false, value);
    }
  });

  test('an invalid xDS setting stops start-up with one line naming it', () => {
    for (const [name, value] of [
      ['XDS_PORT', '70000'],
      ['XDS_PORT', 'abc'],
      ['XDS_POLL_INTERVAL_MS', '10'],
      ['XDS_WILDCARD_POLL_INTERVAL_MS', '1.5'],
      ['XDS_ENABLED', 'maybe'],
      ['XDS_LOCALITY_PRIORITY', 'zone'],
    ] as const) {
      assert.throws(
        () => loadConfig({ [name]: value }),
        (error: unknown) => error instanceof ConfigError && error.message.includes(name),
        `${name}=${value}`,
      );
    }
  });
});

describe('a bench smoke run', () => {
  test('the xDS benchmark completes on a tiny load', { timeout: 60_000 }, async () => {
    const { runXdsBench } = await import('../../bench/xds-latency.js');
    const result = await runXdsBench({
      changes: 3,
      streams: 5,
      services: 3,
      fanoutChanges: 2,
      streamsPerChannel: 2,
      timeoutMs: 30_000,
    });
    assert.equal(result.latency.count, 3);
    assert.equal(result.fanout.count, 2);
  });
});
