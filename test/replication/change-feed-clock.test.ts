import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ManualClock } from '../../src/clock.js';
import { ChangeFeed, type FeedEvents } from '../../src/replication/change-feed.js';
import { dynaliteStoreForSuite, silentLog } from '../helpers/dynamodb.js';
import { waitFor } from '../helpers/registry.js';

/**
 * The wall clock a replica stamps its change records with can step back (NTP, a VM restored):
 * the next change must still be recorded (and hinted) at once, not after the size of the step.
 * Before the fix, the spacing between records was computed from the clock alone, and a step
 * back of an hour held the next record, and the process's exit, for an hour.
 */

/** The registry's side of the feed: local changes are published through it by the test. */
class LocalChanges implements FeedEvents {
  private listener: ((service: string) => void) | undefined;
  onLocalChange(listener: (service: string) => void): () => void {
    this.listener = listener;
    return () => (this.listener = undefined);
  }
  publishRemoteChanges(): void {}
  publishResync(): void {}
  change(service: string): void {
    this.listener?.(service);
  }
}

const opened = dynaliteStoreForSuite();

describe('the change feed when the wall clock steps back', { timeout: 60_000 }, () => {
  test('a change right after a step back of an hour is stored at once', async () => {
    const changeLog = opened().store.changeLog;
    assert.ok(changeLog);
    const clock = new ManualClock();
    const events = new LocalChanges();
    const feed = new ChangeFeed({
      changeLog,
      events,
      clock,
      log: silentLog,
      intervalMs: 60_000,
      lookbackMs: 10_000,
      hostLifetimeMs: 3_600_000,
      ownUrl: () => 'http://a.invalid',
    });
    feed.start();
    try {
      const stored = async (service: string, since: number) =>
        (await changeLog.read(since)).changes.some((record) => record.services.includes(service));
      const first = clock.now();
      events.change('before-the-step');
      await waitFor('the first change is stored', () => stored('before-the-step', first - 1_000), 5_000);
      clock.set(first - 3_600_000);
      events.change('after-the-step');
      await waitFor(
        'the change after the step back is stored',
        () => stored('after-the-step', first - 3_601_000),
        2_000,
      );
    } finally {
      await feed.close();
    }
  });
});
