import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { ManualClock } from '../../src/clock.js';
import { HostService } from '../../src/hosts/host-service.js';
import { EXPIRY_PROTECTION_HEADER } from '../../src/http/host-list-response.js';
import { MemoryHostStore } from '../../src/store/memory-host-store.js';
import { RecordingStats, register, startRegistry, type RunningRegistry } from '../helpers/registry.js';

describe('expiry protection', () => {
  let server: RunningRegistry | undefined;
  afterEach(async () => server?.close());

  const PROTECTED = {
    HOST_TTL: '10',
    EXPIRY_PROTECTION: 'true',
    EXPIRY_PROTECTION_THRESHOLD: '0.5',
    EXPIRY_PROTECTION_MIN_HOSTS: '3',
    EXPIRY_PROTECTION_MAX_SECONDS: '60',
  };

  async function fleet(url: string, ips: string[]) {
    for (const ip of ips) assert.equal((await register(url, 'web', { ip })).status, 200);
  }
  async function read(url: string) {
    const response = await fetch(`${url}/v1/registration/web`);
    const body = (await response.json()) as { hosts: { ip_address: string }[] };
    return { ips: body.hosts.map((host) => host.ip_address), header: response.headers.get(EXPIRY_PROTECTION_HEADER) };
  }

  test('above the threshold (a partition), hosts past HOST_TTL are kept, marked and counted, and stay stored', async () => {
    const clock = new ManualClock();
    const store = new MemoryHostStore();
    const stats = new RecordingStats();
    server = await startRegistry({ env: PROTECTED, clock, store, stats });
    await fleet(server.url, ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4']);
    clock.advance(5_000);
    await fleet(server.url, ['10.0.0.4']);
    clock.advance(6_000); // 3 of 4 (75%) missed their heartbeat
    const seen = await read(server.url);
    assert.deepEqual(seen.ips, ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4']);
    assert.equal(seen.header, '3 hosts past HOST_TTL kept');
    assert.equal((await store.listByService('web')).hosts.length, 4, 'nothing was swept');
    assert.ok(stats.count('service.host.protected.web') >= 1);
    assert.equal(stats.count('service.host.sweep.web'), 0);
  });

  test('a list read before the partition says so too once its hosts are past HOST_TTL (not the list kept from before)', async () => {
    const clock = new ManualClock();
    server = await startRegistry({ env: { ...PROTECTED, CACHE_TYPE: 'simple', CACHE_TTL: '3600' }, clock });
    await fleet(server.url, ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4']);
    clock.advance(5_000);
    await fleet(server.url, ['10.0.0.4']);
    const before = await read(server.url);
    assert.equal(before.header, null, 'every host live');
    clock.advance(6_000); // the same four hosts, the same check-ins; three of them now past HOST_TTL
    const during = await read(server.url);
    assert.deepEqual(during.ips, ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4']);
    assert.equal(during.header, '3 hosts past HOST_TTL kept');
  });

  test('at or below the threshold (hosts dying one by one), expiry works as usual', async () => {
    const clock = new ManualClock();
    const store = new MemoryHostStore();
    server = await startRegistry({ env: PROTECTED, clock, store });
    await fleet(server.url, ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4']);
    clock.advance(5_000);
    await fleet(server.url, ['10.0.0.3', '10.0.0.4']);
    clock.advance(6_000); // 2 of 4 (50%): not more than the threshold
    const seen = await read(server.url);
    assert.deepEqual(seen.ips, ['10.0.0.3', '10.0.0.4']);
    assert.equal(seen.header, null);
    assert.equal((await store.listByService('web')).hosts.length, 2, 'the expired hosts were swept');
  });

  test('when heartbeats return, protection ends and the hosts that stayed silent expire', async () => {
    const clock = new ManualClock();
    server = await startRegistry({ env: PROTECTED, clock });
    await fleet(server.url, ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4']);
    clock.advance(11_000);
    assert.equal((await read(server.url)).header, '4 hosts past HOST_TTL kept');
    await fleet(server.url, ['10.0.0.1', '10.0.0.2', '10.0.0.3']); // the partition heals; one host really died
    clock.advance(1_001);
    const seen = await read(server.url);
    assert.deepEqual(seen.ips, ['10.0.0.1', '10.0.0.2', '10.0.0.3']);
    assert.equal(seen.header, null);
  });

  test('protection keeps hosts for at most EXPIRY_PROTECTION_MAX_SECONDS past HOST_TTL', async () => {
    const clock = new ManualClock();
    server = await startRegistry({ env: PROTECTED, clock });
    await fleet(server.url, ['10.0.0.1', '10.0.0.2', '10.0.0.3']);
    clock.advance(10_000 + 60_000);
    assert.equal((await read(server.url)).ips.length, 3);
    clock.advance(1);
    assert.deepEqual((await read(server.url)).ips, []);
  });

  test('a service whose protected hosts all expired is forgotten, so a later partition is announced again', async () => {
    const clock = new ManualClock();
    const lines: string[] = [];
    const log = {
      debug: () => undefined,
      info: (_: object, msg?: string) => lines.push(`info ${msg}`),
      warn: (_: object, msg?: string) => lines.push(`warn ${msg}`),
      error: () => undefined,
    };
    const service = new HostService({
      store: new MemoryHostStore(),
      clock,
      hostTtlSeconds: 10,
      cacheType: 'null',
      cacheTtlSeconds: 30,
      stats: new RecordingStats(),
      log,
      expiryProtection: { enabled: true, threshold: 0.5, minHosts: 3, maxSeconds: 60 },
    });
    const fleetOf = async () => {
      for (const ip of ['10.0.0.1', '10.0.0.2', '10.0.0.3']) {
        await service.heartbeat({
          service: 'web',
          ip_address: ip,
          port: 80,
          revision: 'r',
          service_repo_name: '',
          tags: { az: 'a', region: 'r', instance_id: ip },
        });
      }
    };
    await fleetOf();
    clock.advance(11_000);
    assert.equal((await service.listByService('web')).protectedHosts, 3);
    clock.advance(60_000); // past EXPIRY_PROTECTION_MAX_SECONDS: swept
    assert.equal((await service.listByService('web')).hosts.length, 0);
    assert.equal((await service.listByService('web')).hosts.length, 0);
    await fleetOf();
    clock.advance(11_000);
    assert.equal((await service.listByService('web')).protectedHosts, 3);
    const active = lines.filter((line) => line.includes('expiry protection active'));
    assert.equal(active.length, 2, lines.join('\n'));
  });

  test('off by default: the original expiry behaviour stays', async () => {
    const clock = new ManualClock();
    server = await startRegistry({ env: { HOST_TTL: '10' }, clock });
    await fleet(server.url, ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4']);
    clock.advance(11_000);
    assert.deepEqual((await read(server.url)).ips, []);
  });

  test('services below the minimum size are never protected', async () => {
    const clock = new ManualClock();
    server = await startRegistry({ env: PROTECTED, clock });
    await fleet(server.url, ['10.0.0.1', '10.0.0.2']);
    clock.advance(11_000);
    assert.deepEqual((await read(server.url)).ips, []);
  });
});
