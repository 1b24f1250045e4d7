import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import { ManualClock } from '../../src/clock.js';
import { HostEvents } from '../../src/hosts/host-events.js';
import { HostService } from '../../src/hosts/host-service.js';
import { formatCheckIn } from '../../src/hosts/model.js';
import { ServiceDirectory } from '../../src/hosts/service-directory.js';
import { MemoryHostStore } from '../../src/store/memory-host-store.js';
import { RecordingStats } from '../helpers/stats.js';
import { waitFor } from '../helpers/registry.js';

const REFRESH_MS = 60_000;

/** A directory over a memory store and a manual clock; `elsewhere` writes as another replica would (nobody here is told). */
function directoryWith() {
  const store = new MemoryHostStore();
  const clock = new ManualClock();
  const log = pino({ level: 'silent' });
  const events = new HostEvents(log);
  const hostService = new HostService({
    events,
    store,
    clock,
    hostTtlSeconds: 30,
    cacheType: 'null',
    cacheTtlSeconds: 0,
    stats: new RecordingStats(),
    log,
  });
  const directory = new ServiceDirectory({ hostService, events, clock, log, refreshIntervalMs: REFRESH_MS });
  const elsewhere = (service: string) =>
    store.heartbeat({
      service,
      ip_address: '10.0.0.1',
      port: 80,
      revision: 'r1',
      service_repo_name: '',
      tags: {},
      last_check_in: formatCheckIn(clock.now()),
    });
  const names = async () => (await directory.list({ limit: 100 })).services.map((summary) => summary.service);
  return { clock, directory, elsewhere, names };
}

describe('ServiceDirectory', () => {
  test('what other replicas wrote is listed after the refresh interval, and not before', async () => {
    const { clock, elsewhere, names } = directoryWith();
    assert.deepEqual(await names(), []);
    clock.advance(REFRESH_MS - 1);
    await elsewhere('orders'); // checked in now, so live for HOST_TTL (30 s)
    assert.deepEqual(await names(), [], 'the summary is kept until the interval is over');
    clock.advance(1);
    await waitFor('the refresh lists orders', async () => (await names()).includes('orders'), 2_000);
  });

  test('after the wall clock steps back, the refresh still comes (not an hour later)', async () => {
    const { clock, elsewhere, names } = directoryWith();
    assert.deepEqual(await names(), []);
    clock.set(clock.now() - 3_600_000);
    await elsewhere('orders');
    await waitFor('the refresh lists orders', async () => (await names()).includes('orders'), 2_000);
  });
});
