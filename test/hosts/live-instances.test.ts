import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ManualClock } from '../../src/clock.js';
import { InvalidInputError, NotFoundError } from '../../src/errors.js';
import type { HostStore } from '../../src/hosts/host-store.js';
import { PortKeyedStore, type InstanceKeyMode } from '../../src/hosts/instance-keys.js';
import { LiveInstances } from '../../src/hosts/live-instances.js';
import { formatCheckIn } from '../../src/hosts/model.js';
import { MemoryHostStore } from '../../src/store/memory-host-store.js';

const LIFETIME_MS = 30_000;

/** A store keyed as `mode` keys instances (compose.ts wraps it the same way for ip_port), a clock, and the rule over them. */
function instancesWith(mode: InstanceKeyMode) {
  const memory = new MemoryHostStore();
  const store: HostStore = mode === 'ip_port' ? new PortKeyedStore(memory) : memory;
  const clock = new ManualClock();
  const instances = new LiveInstances({ store, instanceKey: mode, hostLifetimeMs: LIFETIME_MS });
  const beat = (ip: string, port: number) =>
    store.heartbeat({
      service: 'users',
      ip_address: ip,
      port,
      revision: 'r1',
      service_repo_name: '',
      tags: {},
      last_check_in: formatCheckIn(clock.now()),
    });
  /** The ports `writeLive` reaches at an address (writing nothing). */
  const livePorts = async (ip: string, port?: number) =>
    (await instances.writeLive('users', ip, port, clock.now(), async (_key, host) => host)).map(
      ({ before }) => before.port,
    );
  return { store, clock, instances, beat, livePorts };
}

describe('LiveInstances, INSTANCE_KEY=ip', () => {
  test('an IP names its one host; with the port it listens on, the same host', async () => {
    const { beat, livePorts } = instancesWith('ip');
    await beat('10.0.0.1', 8080);
    await beat('10.0.0.2', 9090);
    assert.deepEqual(await livePorts('10.0.0.1'), [8080]);
    assert.deepEqual(await livePorts('10.0.0.1', 8080), [8080]);
  });

  test('a port the host at that IP does not listen on is a 400 that says which port it does', async () => {
    const { instances, beat, livePorts } = instancesWith('ip');
    await beat('10.0.0.1', 8080);
    await assert.rejects(livePorts('10.0.0.1', 9999), (error: unknown) => {
      assert.ok(error instanceof InvalidInputError);
      assert.equal(
        error.message,
        "Host 10.0.0.1 of service 'users' listens on port 8080, not 9999 (INSTANCE_KEY=ip keeps one instance per IP).",
      );
      return true;
    });
    await assert.rejects(instances.keysAt('users', '10.0.0.1', 9999), InvalidInputError);
  });

  test('a delete names the key without reading; weight and status reach only live hosts, else 404', async () => {
    const { clock, instances, beat, livePorts } = instancesWith('ip');
    await beat('10.0.0.1', 8080);
    clock.advance(LIFETIME_MS + 1);
    assert.deepEqual(await instances.keysAt('users', '10.0.0.1', undefined), ['10.0.0.1']);
    assert.deepEqual(await instances.keysAt('users', '10.9.9.9', undefined), ['10.9.9.9']);
    await assert.rejects(livePorts('10.0.0.1'), NotFoundError);
    await assert.rejects(livePorts('10.9.9.9'), NotFoundError);
  });
});

describe('LiveInstances, INSTANCE_KEY=ip_port', () => {
  test('an IP alone names every live instance at it, and no other IP', async () => {
    const { clock, beat, livePorts } = instancesWith('ip_port');
    await beat('10.0.0.1', 7000);
    clock.advance(LIFETIME_MS);
    await beat('10.0.0.1', 8080);
    await beat('10.0.0.1', 8081);
    await beat('10.0.0.2', 8080);
    clock.advance(1);
    assert.deepEqual((await livePorts('10.0.0.1')).sort(), [8080, 8081], 'the expired instance on 7000 is left out');
  });

  test('an IP and port name that one instance', async () => {
    const { beat, livePorts, instances } = instancesWith('ip_port');
    await beat('10.0.0.1', 8080);
    await beat('10.0.0.1', 8081);
    assert.deepEqual(await livePorts('10.0.0.1', 8081), [8081]);
    assert.equal((await instances.keysAt('users', '10.0.0.1', 8081)).length, 1);
  });

  test('a delete of an IP alone names every stored instance there, expired ones included', async () => {
    const { clock, beat, instances } = instancesWith('ip_port');
    await beat('10.0.0.1', 8080);
    await beat('10.0.0.1', 8081);
    clock.advance(LIFETIME_MS + 1);
    assert.equal((await instances.keysAt('users', '10.0.0.1', undefined)).length, 2);
    assert.deepEqual(await instances.keysAt('users', '10.0.0.3', undefined), []);
  });

  test('a write that finds its record gone (removed meanwhile) leaves a 404 when none was written', async () => {
    const { clock, beat, instances } = instancesWith('ip_port');
    await beat('10.0.0.1', 8080);
    await assert.rejects(
      instances.writeLive('users', '10.0.0.1', undefined, clock.now(), async () => undefined),
      NotFoundError,
    );
  });
});
