import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../src/config.js';

describe('DynamoDB and stale-read settings', () => {
  test('defaults: no DYNAMODB_URL, stale reads for 300 s', () => {
    const config = loadConfig({}, '/srv/discovery');
    assert.equal(config.dynamodb.url, '');
    assert.equal(config.staleReadMaxSeconds, 300);
  });

  test('DYNAMODB_URL must be an http(s) URL', () => {
    assert.equal(loadConfig({ DYNAMODB_URL: 'http://127.0.0.1:4567' }, '/').dynamodb.url, 'http://127.0.0.1:4567');
    assert.throws(
      () => loadConfig({ DYNAMODB_URL: 'localhost:4567' }, '/'),
      (error: unknown) => error instanceof ConfigError && /DYNAMODB_URL/.test(error.message),
    );
    assert.throws(() => loadConfig({ DYNAMODB_URL: 'not a url' }, '/'), ConfigError);
  });

  test('STALE_READ_MAX_SECONDS is a non-negative integer; 0 turns stale reads off', () => {
    assert.equal(loadConfig({ STALE_READ_MAX_SECONDS: '0' }, '/').staleReadMaxSeconds, 0);
    assert.throws(
      () => loadConfig({ STALE_READ_MAX_SECONDS: '-1' }, '/'),
      (error: unknown) => error instanceof ConfigError && /STALE_READ_MAX_SECONDS/.test(error.message),
    );
    assert.throws(() => loadConfig({ STALE_READ_MAX_SECONDS: 'soon' }, '/'), ConfigError);
  });

  test('DYNAMODB_ITEM_LAYOUT is original or discovery (any case); unset, it is learnt from the table', () => {
    assert.equal(loadConfig({}, '/').dynamodb.itemLayout, undefined);
    assert.equal(loadConfig({ DYNAMODB_ITEM_LAYOUT: 'Original' }, '/').dynamodb.itemLayout, 'original');
    assert.equal(loadConfig({ DYNAMODB_ITEM_LAYOUT: 'discovery' }, '/').dynamodb.itemLayout, 'discovery');
    assert.throws(
      () => loadConfig({ DYNAMODB_ITEM_LAYOUT: 'pynamodb' }, '/'),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.message === 'invalid setting DYNAMODB_ITEM_LAYOUT="pynamodb": expected one of original, discovery',
    );
  });
});
