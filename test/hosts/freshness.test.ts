import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ReadRetries, RETRY_MAX_MS, RETRY_MIN_MS } from '../../src/hosts/freshness.js';
import { silentLog } from '../helpers/dynamodb.js';
import { waitFor } from '../helpers/registry.js';

/** The one freshness rule's retries: a failed read is tried again, sooner when storage answers, until it succeeds. */

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('ReadRetries', () => {
  test('a failed read is retried after a back-off that doubles, up to the cap, until it succeeds', async () => {
    const retries = new ReadRetries(silentLog);
    const triedAt: number[] = [];
    const started = performance.now();
    let failuresLeft = 3;
    const read = () => {
      triedAt.push(performance.now() - started);
      if (failuresLeft-- > 0) retries.failed('xds:users', read);
      else retries.succeeded('xds:users');
    };
    retries.failed('xds:users', read);
    assert.ok(retries.isPending('xds:users'));
    // 250 + 500 + 1,000 + 2,000 ms of back-off (three failures after the first), then one success.
    await waitFor(
      () => `a fourth try, tried at ${JSON.stringify(triedAt)}`,
      () => triedAt.length >= 4,
      RETRY_MIN_MS * 15 + 2_000,
    );
    assert.equal(triedAt.length, 4, `tried at ${JSON.stringify(triedAt)}`);
    const gaps = triedAt.map((at, index) => at - (index === 0 ? 0 : (triedAt[index - 1] as number)));
    for (const [index, gap] of gaps.entries())
      assert.ok(
        gap >= Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** index) - 20,
        `gap ${index} was ${gap} ms: ${JSON.stringify(gaps)}`,
      );
    assert.equal(retries.size, 0, 'nothing left to retry once a read succeeded');
    retries.close();
  });

  test('storage answering another read retries every waiting view at once', async () => {
    const retries = new ReadRetries(silentLog);
    let tries = 0;
    const read = () => {
      tries++;
      retries.succeeded('due:orders');
    };
    retries.failed('due:orders', read);
    retries.failed('due:orders', read); // back-off now 500 ms
    retries.failed('due:orders', read); // 1,000 ms
    // The point: no retry comes before the back-off ends (it is 1,000 ms now)...
    await sleep(RETRY_MIN_MS + 50);
    assert.equal(tries, 0);
    retries.answered();
    // ...but one comes at once when storage answers another read, long before the back-off ends.
    await waitFor('the retry after storage answered', () => tries > 0, 500, 5);
    assert.equal(tries, 1, 'retried at once, not at the end of its back-off');
    assert.equal(retries.size, 0);
    retries.close();
  });

  test('the back-off never exceeds its cap, and a forgotten view is never retried', async () => {
    const retries = new ReadRetries(silentLog);
    let tries = 0;
    for (let failure = 0; failure < 20; failure++) retries.failed('xds:cap', () => tries++);
    const started = performance.now();
    await waitFor('the capped retry', () => tries > 0, RETRY_MAX_MS + 1_000, 20);
    assert.equal(tries, 1);
    assert.ok(performance.now() - started <= RETRY_MAX_MS + 300, 'capped');
    retries.failed('xds:gone', () => assert.fail('a forgotten view was retried'));
    retries.forget('xds:gone');
    // The point: a window past its first retry passes without it.
    await sleep(RETRY_MIN_MS + 100);
    retries.close();
  });
});
