import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../src/config.js';

describe('settings', () => {
  test('defaults are those of the original service (README, Settings)', () => {
    const config = loadConfig({}, '/srv/discovery');
    assert.equal(config.hostTtlSeconds, 600);
    assert.equal(config.cacheTtlSeconds, 30);
    assert.equal(config.cacheType, 'null');
    assert.equal(config.backendStorage, 'DynamoDB');
    assert.equal(config.applicationDir, '/srv/discovery');
    assert.equal(config.applicationEnv, 'development');
    assert.equal(config.debug, true);
    assert.equal(config.logLevel, 'debug');
    assert.equal(config.port, 8080);
    assert.equal(config.dynamodb.url, '');
    assert.equal(config.dynamodb.createTablesInApp, false);
    assert.equal(config.dynamodb.connectionPoolSize, 100);
    assert.equal(config.statsd.host, 'localhost');
    assert.equal(config.statsd.port, 8125);
    assert.equal(config.trustedProxyHops, 1);
    assert.deepEqual(
      config.autoIpAllowedRanges.map(([range, bits]) => `${range.toString()}/${bits}`),
      ['192.168.0.0/16'],
    );
  });

  test('booleans parse as booleans: false, 0 and no are false', () => {
    for (const word of ['false', 'False', '0', 'no', 'off'])
      assert.equal(loadConfig({ DEBUG: word }).debug, false, word);
    for (const word of ['true', 'TRUE', '1', 'yes', 'on']) assert.equal(loadConfig({ DEBUG: word }).debug, true, word);
    assert.equal(loadConfig({ DYNAMODB_CREATE_TABLES_IN_APP: 'true' }).dynamodb.createTablesInApp, true);
  });

  test('log levels map case-insensitively, WARNING and WARN alike, CRITICAL to fatal', () => {
    assert.equal(loadConfig({ LOG_LEVEL: 'warning' }).logLevel, 'warn');
    assert.equal(loadConfig({ LOG_LEVEL: 'WARN' }).logLevel, 'warn');
    assert.equal(loadConfig({ LOG_LEVEL: 'Info' }).logLevel, 'info');
    assert.equal(loadConfig({ LOG_LEVEL: 'CRITICAL' }).logLevel, 'fatal');
  });

  test('built-in backends are matched case-insensitively; other names are plugins', () => {
    assert.equal(loadConfig({ BACKEND_STORAGE: 'inmemory' }).backendStorage, 'InMemory');
    assert.equal(loadConfig({ BACKEND_STORAGE: 'InFile' }).backendStorage, 'InFile');
    assert.equal(loadConfig({ BACKEND_STORAGE: 'my-redis' }).backendStorage, 'my-redis');
  });

  const invalid: Array<[Record<string, string>, string, RegExp]> = [
    [{ HOST_TTL: 'ten' }, 'HOST_TTL', /number/],
    [{ HOST_TTL: '-1' }, 'HOST_TTL', />= 0/],
    [{ CACHE_TTL: '-5' }, 'CACHE_TTL', />= 0/],
    [{ CACHE_TYPE: 'redis' }, 'CACHE_TYPE', /simple, null/],
    [{ BACKEND_STORAGE: '../etc' }, 'BACKEND_STORAGE', /DynamoDB, InMemory, InFile/],
    [{ DEBUG: 'maybe' }, 'DEBUG', /true\/false/],
    [{ LOG_LEVEL: 'chatty' }, 'LOG_LEVEL', /debug, info/],
    [{ PORT: '70000' }, 'PORT', /0\.\.65535/],
    [{ PORT: '80.5' }, 'PORT', /integer/],
    [{ CONNECTION_POOL_SIZE: '0' }, 'CONNECTION_POOL_SIZE', /integer/],
    [{ STATSD_PORT: 'x' }, 'STATSD_PORT', /integer/],
    [{ AUTO_IP_ALLOWED_RANGES: '192.168.0.0' }, 'AUTO_IP_ALLOWED_RANGES', /CIDR/],
    [{ TRUSTED_PROXY_HOPS: '-1' }, 'TRUSTED_PROXY_HOPS', /integer/],
    [{ CHANGE_FEED: 'sometimes' }, 'CHANGE_FEED', /true\/false/],
    [{ CHANGE_FEED_INTERVAL_MS: '50' }, 'CHANGE_FEED_INTERVAL_MS', /100\.\.60000/],
    [{ PEER_URL: 'ftp://10.0.0.1' }, 'PEER_URL', /http:\/\/ or https:\/\//],
  ];
  for (const [env, name, accepted] of invalid) {
    test(`${name}=${Object.values(env)[0]} is refused with one line naming it and what it accepts`, () => {
      assert.throws(
        () => loadConfig(env),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError);
          assert.ok(error.message.startsWith(`invalid setting ${name}=`), error.message);
          assert.match(error.message, accepted);
          assert.equal(error.message.includes('\n'), false);
          return true;
        },
      );
    });
  }

  test('the change feed is on with a 1.5 s read interval; PEER_TOKEN is a credential, never echoed', () => {
    const config = loadConfig({});
    assert.deepEqual(config.changeFeed, { enabled: true, intervalMs: 1500, peerUrl: '', peerToken: undefined });
    assert.equal(loadConfig({ PEER_URL: 'http://10.0.4.12:8080' }).changeFeed.peerUrl, 'http://10.0.4.12:8080');
    assert.throws(
      () => loadConfig({ PEER_TOKEN: 'short' }),
      (error: unknown) =>
        error instanceof ConfigError && /PEER_TOKEN/.test(error.message) && !error.message.includes('short'),
    );
  });

  test('the config is frozen', () => {
    const config = loadConfig({});
    assert.throws(() => {
      (config as { port: number }).port = 1;
    });
  });
});
