import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import type { Heartbeat, Host } from '../../src/hosts/model.js';
import type { HostStore } from '../../src/hosts/host-store.js';
import { INSTANCE_KEY_MODES, instanceKey, PortKeyedStore } from '../../src/hosts/instance-keys.js';

/** A fresh, isolated store for one test, and how to throw it away. */
export interface StoreUnderTest {
  readonly store: HostStore;
  dispose(): Promise<void>;
}

export interface ContractOptions {
  /** Opens an empty store; every test gets its own. */
  open(): Promise<StoreUnderTest>;
  /** Closes a store and opens it again over the same data; set for stores that persist. */
  reopen?(previous: StoreUnderTest): Promise<StoreUnderTest>;
  /** Runs once before and after the suite (start and stop a server). */
  setup?(): Promise<void>;
  teardown?(): Promise<void>;
}

export function heartbeatOf(overrides: Partial<Heartbeat> = {}): Heartbeat {
  return {
    service: 'users',
    ip_address: '10.0.0.1',
    port: 8080,
    revision: 'r1',
    service_repo_name: 'users-repo',
    last_check_in: '2026-11-28 06:40:12.345678',
    tags: { az: 'us-east-1a', region: 'us-east-1', instance_id: 'i-1' },
    ...overrides,
  };
}

function byIp(hosts: readonly Host[]): Host[] {
  return [...hosts].sort((a, b) => a.ip_address.localeCompare(b.ip_address));
}

/**
 * The behaviour every HostStore must have, run unchanged against each backend
 * (InMemory, InFile, DynamoDB, and a plugin), in each INSTANCE_KEY mode: in `ip_port` mode the
 * store is seen through PortKeyedStore, as the server sees it, and records are addressed by
 * their `ip:port` key.
 */
export function hostStoreContract(name: string, options: ContractOptions): void {
  before(async () => options.setup?.());
  after(async () => options.teardown?.());
  for (const mode of INSTANCE_KEY_MODES) {
    describe(`HostStore contract: ${name}, INSTANCE_KEY=${mode}`, () => {
      modeContract(mode, options);
    });
  }
}

function modeContract(mode: (typeof INSTANCE_KEY_MODES)[number], options: ContractOptions): void {
  {
    let subject: StoreUnderTest;
    let store: HostStore;
    /** The key an instance is addressed by in this mode. */
    const at = (ip: string, port = 8080) => instanceKey(mode, ip, port);
    const seen = (raw: HostStore) => (mode === 'ip' ? raw : new PortKeyedStore(raw));

    beforeEach(async () => {
      subject = await options.open();
      store = seen(subject.store);
    });
    afterEach(async () => subject.dispose());

    test('a heartbeat of a new host creates it and reports no previous record', async () => {
      const result = await store.heartbeat(heartbeatOf());
      assert.equal(result.previous, undefined);
      assert.deepEqual(result.current, { ...heartbeatOf(), tags: { ...heartbeatOf().tags } });
      assert.deepEqual(await store.get('users', at('10.0.0.1')), result.current);
    });

    test('a heartbeat replaces port, revision, repo and check-in and merges tags', async () => {
      await store.heartbeat(
        heartbeatOf({ tags: { az: 'a', region: 'r', instance_id: 'i', load_balancing_weight: 7, team: 'x' } }),
      );
      // In ip_port mode another port is another instance (tested below): here the port stays.
      const port = mode === 'ip' ? 9090 : 8080;
      const result = await store.heartbeat(
        heartbeatOf({
          port,
          revision: 'r2',
          service_repo_name: 'other-repo',
          last_check_in: '2026-11-28 06:41:00.000001',
          tags: { az: 'b', region: 'r', instance_id: 'i', canary: true },
        }),
      );
      assert.equal(result.previous?.port, 8080);
      const expected = {
        service: 'users',
        ip_address: '10.0.0.1',
        port,
        revision: 'r2',
        service_repo_name: 'other-repo',
        last_check_in: '2026-11-28 06:41:00.000001',
        tags: { az: 'b', region: 'r', instance_id: 'i', canary: true, load_balancing_weight: 7, team: 'x' },
      };
      assert.deepEqual(result.current, expected);
      assert.deepEqual(await store.get('users', at('10.0.0.1')), expected);
    });

    test('tag values of every JSON type come back as stored', async () => {
      const tags = {
        az: 'a',
        region: 'r',
        instance_id: 'i',
        canary: false,
        n: 1.5,
        z: null,
        list: [1, 'two'],
        nested: { deep: { x: true } },
      };
      await store.heartbeat(heartbeatOf({ tags }));
      assert.deepEqual((await store.get('users', at('10.0.0.1')))?.tags, tags);
    });

    test('one record per (service, ip): the same ip in two services is two hosts', async () => {
      await store.heartbeat(heartbeatOf());
      await store.heartbeat(heartbeatOf({ service: 'orders' }));
      await store.heartbeat(heartbeatOf());
      assert.equal((await store.listByService('users')).hosts.length, 1);
      assert.equal((await store.listByService('orders')).hosts.length, 1);
    });

    test('listByService returns every host of the service and nothing of others', async () => {
      await store.heartbeat(heartbeatOf({ ip_address: '10.0.0.1' }));
      await store.heartbeat(heartbeatOf({ ip_address: '10.0.0.2' }));
      await store.heartbeat(heartbeatOf({ ip_address: 'fd00::1' }));
      await store.heartbeat(heartbeatOf({ service: 'orders', ip_address: '10.0.0.9' }));
      const { hosts } = await store.listByService('users');
      assert.deepEqual(
        byIp(hosts).map((host) => host.ip_address),
        ['10.0.0.1', '10.0.0.2', 'fd00::1'],
      );
      assert.deepEqual((await store.listByService('nobody')).hosts, []);
    });

    test('a change token, when given, changes on every write to the service', async () => {
      const empty = await store.listByService('users');
      if (empty.changeToken === undefined) return;
      await store.heartbeat(heartbeatOf());
      const first = await store.listByService('users');
      await store.heartbeat(heartbeatOf({ last_check_in: '2026-11-28 06:41:00.000000' }));
      const second = await store.listByService('users');
      await store.updateTags('users', at('10.0.0.1'), { load_balancing_weight: 3 });
      const third = await store.listByService('users');
      assert.notEqual(first.changeToken, empty.changeToken);
      assert.notEqual(second.changeToken, first.changeToken);
      assert.notEqual(third.changeToken, second.changeToken);
      assert.equal((await store.listByService('users')).changeToken, third.changeToken);
    });

    test('currentChangeToken, when offered, is always what listByService would give', async () => {
      const current = store.currentChangeToken?.bind(store);
      if (current === undefined) return;
      const expectSame = async () => assert.equal(current('users'), (await store.listByService('users')).changeToken);
      await expectSame();
      await store.heartbeat(heartbeatOf());
      await expectSame();
      await store.updateTags('users', at('10.0.0.1'), { load_balancing_weight: 3 });
      await expectSame();
      await store.deleteIfCheckInIs('users', at('10.0.0.1'), 'not its check-in');
      await expectSame();
      await store.delete('users', at('10.0.0.1'));
      await expectSame();
      assert.equal(current('nobody'), (await store.listByService('nobody')).changeToken);
    });

    test('listByRepo finds hosts of every service with that repo, and only those', async () => {
      await store.heartbeat(heartbeatOf({ service: 'users', ip_address: '10.0.0.1', service_repo_name: 'shared' }));
      await store.heartbeat(heartbeatOf({ service: 'orders', ip_address: '10.0.0.2', service_repo_name: 'shared' }));
      await store.heartbeat(
        heartbeatOf({ service: 'billing', ip_address: '10.0.0.3', service_repo_name: 'billing-repo' }),
      );
      await store.heartbeat(heartbeatOf({ service: 'lonely', ip_address: '10.0.0.4', service_repo_name: '' }));
      const hosts = await store.listByRepo('shared');
      assert.deepEqual(hosts.map((host) => host.service).sort(), ['orders', 'users']);
      assert.deepEqual(await store.listByRepo('nope'), []);
    });

    test('a host that changes repo leaves the old repo listing', async () => {
      await store.heartbeat(heartbeatOf({ service_repo_name: 'old' }));
      await store.heartbeat(heartbeatOf({ service_repo_name: 'new' }));
      assert.deepEqual(await store.listByRepo('old'), []);
      assert.equal((await store.listByRepo('new')).length, 1);
      await store.heartbeat(heartbeatOf({ service_repo_name: '' }));
      assert.deepEqual(await store.listByRepo('new'), []);
    });

    test('listServices names each service with a host', async () => {
      await store.heartbeat(heartbeatOf({ service: 'users' }));
      await store.heartbeat(heartbeatOf({ service: 'orders' }));
      await store.heartbeat(heartbeatOf({ service: 'orders', ip_address: '10.0.0.2' }));
      assert.deepEqual([...(await store.listServices())].sort(), ['orders', 'users']);
    });

    test('delete removes the record and returns it; deleting again returns undefined', async () => {
      await store.heartbeat(heartbeatOf());
      const removed = await store.delete('users', at('10.0.0.1'));
      assert.equal(removed?.ip_address, '10.0.0.1');
      assert.equal(await store.get('users', at('10.0.0.1')), undefined);
      assert.equal(await store.delete('users', at('10.0.0.1')), undefined);
      assert.deepEqual(await store.listByRepo('users-repo'), []);
      assert.deepEqual([...(await store.listServices())], []);
    });

    test('deleteIfCheckInIs removes only a record still at the judged check-in', async () => {
      await store.heartbeat(heartbeatOf({ last_check_in: '2026-11-28 06:00:00.000000' }));
      // A fresh heartbeat lands after the host was judged expired:
      await store.heartbeat(heartbeatOf({ last_check_in: '2026-11-28 06:30:00.000000' }));
      assert.equal(await store.deleteIfCheckInIs('users', at('10.0.0.1'), '2026-11-28 06:00:00.000000'), false);
      assert.notEqual(await store.get('users', at('10.0.0.1')), undefined);
      assert.equal(await store.deleteIfCheckInIs('users', at('10.0.0.1'), '2026-11-28 06:30:00.000000'), true);
      assert.equal(await store.get('users', at('10.0.0.1')), undefined);
      assert.equal(await store.deleteIfCheckInIs('users', at('10.0.0.1'), '2026-11-28 06:30:00.000000'), false);
    });

    test('updateTags sets tags without touching other fields, and a later heartbeat keeps them', async () => {
      await store.heartbeat(heartbeatOf());
      const updated = await store.updateTags('users', at('10.0.0.1'), { load_balancing_weight: 42 });
      assert.equal(updated?.tags.load_balancing_weight, 42);
      assert.equal(updated?.last_check_in, heartbeatOf().last_check_in);
      assert.equal(updated?.tags.az, 'us-east-1a');
      await store.heartbeat(heartbeatOf({ last_check_in: '2026-11-28 06:50:00.000000' }));
      const after = await store.get('users', at('10.0.0.1'));
      assert.equal(after?.tags.load_balancing_weight, 42);
      assert.equal(after?.last_check_in, '2026-11-28 06:50:00.000000');
    });

    test('updateTags on a missing host creates nothing', async () => {
      assert.equal(await store.updateTags('users', at('10.0.0.1'), { load_balancing_weight: 5 }), undefined);
      assert.equal(await store.get('users', at('10.0.0.1')), undefined);
      assert.deepEqual((await store.listByService('users')).hosts, []);
    });

    test("a heartbeat's status word is stored, replaced by the next, and absent means UP", async () => {
      const first = await store.heartbeat(heartbeatOf({ reported_status: 'DRAINING' }));
      assert.equal(first.current.reported_status, 'DRAINING');
      assert.equal((await store.get('users', at('10.0.0.1')))?.reported_status, 'DRAINING');
      await store.heartbeat(heartbeatOf({ reported_status: 'OUT_OF_SERVICE' }));
      assert.equal((await store.get('users', at('10.0.0.1')))?.reported_status, 'OUT_OF_SERVICE');
      const up = await store.heartbeat(heartbeatOf());
      assert.equal(up.previous?.reported_status, 'OUT_OF_SERVICE');
      const stored = await store.get('users', at('10.0.0.1'));
      // An UP host's record has exactly the fields it had before statuses existed.
      assert.deepEqual(stored, { ...heartbeatOf(), tags: { ...heartbeatOf().tags } });
      assert.equal(Object.hasOwn(stored ?? {}, 'reported_status'), false);
    });

    test('setStatusOverride sets and clears the override without touching other fields, and heartbeats keep it', async () => {
      await store.heartbeat(heartbeatOf({ reported_status: 'DRAINING' }));
      const set = await store.setStatusOverride('users', at('10.0.0.1'), 'OUT_OF_SERVICE');
      assert.equal(set?.status_override, 'OUT_OF_SERVICE');
      assert.equal(set?.reported_status, 'DRAINING');
      assert.equal(set?.last_check_in, heartbeatOf().last_check_in);
      const heartbeat = await store.heartbeat(heartbeatOf({ last_check_in: '2026-11-28 06:50:00.000000' }));
      // What the heartbeat answers is the record it left: the override with it.
      assert.equal(heartbeat.current.status_override, 'OUT_OF_SERVICE');
      assert.equal(heartbeat.previous?.status_override, 'OUT_OF_SERVICE');
      const afterHeartbeat = await store.get('users', at('10.0.0.1'));
      assert.equal(afterHeartbeat?.status_override, 'OUT_OF_SERVICE');
      assert.equal(afterHeartbeat?.reported_status, undefined);
      assert.equal(afterHeartbeat?.last_check_in, '2026-11-28 06:50:00.000000');
      assert.equal((await store.listByService('users')).hosts[0]?.status_override, 'OUT_OF_SERVICE');
      const cleared = await store.setStatusOverride('users', at('10.0.0.1'), undefined);
      assert.equal(Object.hasOwn(cleared ?? {}, 'status_override'), false);
      assert.deepEqual(await store.get('users', at('10.0.0.1')), {
        ...heartbeatOf({ last_check_in: '2026-11-28 06:50:00.000000' }),
        tags: { ...heartbeatOf().tags },
      });
    });

    test('setStatusOverride on a missing host creates nothing', async () => {
      assert.equal(await store.setStatusOverride('users', at('10.0.0.1'), 'DRAINING'), undefined);
      assert.equal(await store.get('users', at('10.0.0.1')), undefined);
      assert.deepEqual((await store.listByService('users')).hosts, []);
    });

    test('concurrent override writes and heartbeats on one host lose neither', async () => {
      await store.heartbeat(heartbeatOf());
      await Promise.all([
        store.setStatusOverride('users', at('10.0.0.1'), 'DRAINING'),
        store.heartbeat(
          heartbeatOf({ last_check_in: '2026-11-28 07:00:00.000000', reported_status: 'OUT_OF_SERVICE' }),
        ),
      ]);
      const host = await store.get('users', at('10.0.0.1'));
      assert.equal(host?.status_override, 'DRAINING');
      assert.equal(host?.reported_status, 'OUT_OF_SERVICE');
      assert.equal(host?.last_check_in, '2026-11-28 07:00:00.000000');
    });

    test('concurrent heartbeats of many hosts are all kept', async () => {
      const ips = Array.from({ length: 100 }, (_, index) => `10.1.${Math.floor(index / 250)}.${index % 250}`);
      await Promise.all(ips.map((ip) => store.heartbeat(heartbeatOf({ ip_address: ip }))));
      assert.equal((await store.listByService('users')).hosts.length, ips.length);
    });

    test('concurrent tag updates and heartbeats on one host lose neither', async () => {
      await store.heartbeat(heartbeatOf());
      await Promise.all([
        store.updateTags('users', at('10.0.0.1'), { load_balancing_weight: 9 }),
        store.heartbeat(heartbeatOf({ last_check_in: '2026-11-28 07:00:00.000000', revision: 'r9' })),
      ]);
      const host = await store.get('users', at('10.0.0.1'));
      assert.equal(host?.tags.load_balancing_weight, 9);
      assert.equal(host?.last_check_in, '2026-11-28 07:00:00.000000');
      assert.equal(host?.revision, 'r9');
    });

    if (mode === 'ip')
      test('INSTANCE_KEY=ip: a heartbeat from a known IP on another port updates the one host', async () => {
        await store.heartbeat(heartbeatOf({ port: 8080 }));
        await store.heartbeat(heartbeatOf({ port: 9090 }));
        const { hosts } = await store.listByService('users');
        assert.deepEqual(
          hosts.map((host) => [host.ip_address, host.port]),
          [['10.0.0.1', 9090]],
        );
      });

    if (mode === 'ip_port')
      test('INSTANCE_KEY=ip_port: each port of an IP is an instance of its own, addressed by its key', async () => {
        await store.heartbeat(heartbeatOf({ port: 8080, revision: 'a' }));
        await store.heartbeat(heartbeatOf({ port: 9090, revision: 'b' }));
        await store.heartbeat(heartbeatOf({ ip_address: 'fd00::1', port: 8080 }));
        const listed = (await store.listByService('users')).hosts.map((host) => [host.ip_address, host.port]);
        assert.deepEqual(
          listed.sort(),
          [
            ['10.0.0.1', 8080],
            ['10.0.0.1', 9090],
            ['fd00::1', 8080],
          ],
          'served with the IP in ip_address, never the key',
        );
        assert.equal((await store.get('users', at('10.0.0.1', 9090)))?.revision, 'b');
        assert.equal((await store.get('users', at('fd00::1')))?.ip_address, 'fd00::1');
        await store.updateTags('users', at('10.0.0.1', 9090), { load_balancing_weight: 5 });
        assert.equal((await store.get('users', at('10.0.0.1', 8080)))?.tags.load_balancing_weight, undefined);
        assert.equal((await store.delete('users', at('10.0.0.1', 8080)))?.port, 8080);
        assert.deepEqual((await store.listByService('users')).hosts.map((host) => host.port).sort(), [8080, 9090]);
        assert.equal((await store.listByRepo('users-repo')).length, 2);
        // The documented layout: the store itself files the instance under `ip:port`, IPv6 in brackets.
        assert.equal((await subject.store.get('users', '10.0.0.1:9090'))?.ip_address, '10.0.0.1:9090');
        assert.equal((await subject.store.get('users', '[fd00::1]:8080'))?.ip_address, '[fd00::1]:8080');
      });

    test('close is idempotent', async () => {
      await store.close();
      await store.close();
    });

    if (options.reopen) {
      const reopen = options.reopen;
      test('every acknowledged write is there after reopening', async () => {
        await store.heartbeat(heartbeatOf({ ip_address: '10.0.0.1' }));
        await store.heartbeat(heartbeatOf({ ip_address: '10.0.0.2' }));
        await store.heartbeat(heartbeatOf({ ip_address: '10.0.0.3', service: 'orders', service_repo_name: 'shop' }));
        await store.updateTags('users', at('10.0.0.2'), { load_balancing_weight: 11 });
        await store.setStatusOverride('users', at('10.0.0.2'), 'DRAINING');
        await store.heartbeat(heartbeatOf({ ip_address: '10.0.0.2', reported_status: 'OUT_OF_SERVICE' }));
        await store.delete('users', at('10.0.0.1'));
        subject = await reopen(subject);
        store = seen(subject.store);
        assert.deepEqual(
          byIp((await store.listByService('users')).hosts).map((host) => [
            host.ip_address,
            host.tags.load_balancing_weight,
            host.status_override,
            host.reported_status,
          ]),
          [['10.0.0.2', 11, 'DRAINING', 'OUT_OF_SERVICE']],
        );
        assert.equal((await store.listByRepo('shop'))[0]?.ip_address, '10.0.0.3');
      });
    }
  }
}
