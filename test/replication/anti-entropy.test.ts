import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { systemClock } from '../../src/clock.js';
import { changeKey } from '../../src/hosts/change-log.js';
import type { KeptView } from '../../src/hosts/freshness.js';
import { ChangeFeed, type FeedEvents } from '../../src/replication/change-feed.js';
import { dynaliteStoreForSuite, silentLog } from '../helpers/dynamodb.js';
import { waitFor } from '../helpers/registry.js';

/**
 * The change feed's anti-entropy check on a real change log (dynalite): a view read before a
 * peer's recorded change is read again even when the regular reads never applied that record
 * (here: a record stored long after it was stamped, behind every read's look-back), and a view
 * read after the change is left alone.
 */

class Recorder implements FeedEvents {
  readonly applied: string[] = [];
  onLocalChange(): () => void {
    return () => undefined;
  }
  publishRemoteChanges(services: Iterable<string>): void {
    this.applied.push(...services);
  }
  publishResync(): void {}
}

/** A kept view whose services were read at the given times. */
function viewOf(readAt: Record<string, number>): KeptView {
  return {
    keptReadAt: (service) => readAt[service],
    keptServices: () => Object.keys(readAt),
  };
}

/** A feed reading the change log every 100 ms with a 300 ms look-back, its views `view`, started. */
function startReader(recorder: Recorder, replica: string, antiEntropyIntervalMs: number, view: KeptView): ChangeFeed {
  const changeLog = opened().store.changeLog;
  assert.ok(changeLog, 'the DynamoDB store has a change log');
  const feed = new ChangeFeed({
    changeLog,
    events: recorder,
    clock: systemClock,
    log: silentLog,
    intervalMs: 100,
    lookbackMs: 300,
    hostLifetimeMs: 3_600_000,
    ownUrl: () => `http://${replica}.invalid`,
    antiEntropyIntervalMs,
    views: [view],
  });
  feed.start();
  return feed;
}

const opened = dynaliteStoreForSuite();

describe('anti-entropy', { timeout: 60_000 }, () => {
  test('a view read before a recorded change it never heard of is read again; one read after it is not', async () => {
    const log = opened().store.changeLog;
    assert.ok(log, 'the DynamoDB store has a change log');
    const now = systemClock.now();
    // Stamped 30 s ago, stored now: behind the 300 ms look-back of every regular read.
    const lateAt = now - 30_000;
    await log.append({ key: changeKey(lateAt, 'peer', 1), replica: 'peer', services: ['users', 'orders'], at: lateAt });
    const recorder = new Recorder();
    // `users` was read a minute ago (before the change); `orders` a second ago (after it).
    const feed = startReader(recorder, 'one', 500, viewOf({ users: now - 60_000, orders: now - 1_000 }));
    try {
      await waitFor('the anti-entropy check to re-read users', () =>
        recorder.applied.includes('users') ? true : undefined,
      );
      // Several more checks pass: orders, read after the change, is never re-read.
      await new Promise((resolve) => setTimeout(resolve, 1_200));
      assert.ok(!recorder.applied.includes('orders'), `re-read: ${JSON.stringify(recorder.applied)}`);
    } finally {
      await feed.close();
    }
  });

  test('without the check, the regular reads never apply a record stored behind their look-back', async () => {
    const log = opened().store.changeLog;
    assert.ok(log);
    const now = systemClock.now();
    const lateAt = now - 30_000;
    await log.append({ key: changeKey(lateAt, 'peer', 2), replica: 'peer', services: ['billing'], at: lateAt });
    const recorder = new Recorder();
    const feed = startReader(recorder, 'two', 3_600_000, viewOf({ billing: now - 60_000 }));
    try {
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      // What the anti-entropy check exists for: this view stays behind without it.
      assert.deepEqual(recorder.applied, []);
    } finally {
      await feed.close();
    }
  });
});
