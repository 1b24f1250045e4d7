import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startXdsCaller, type XdsCaller } from '../helpers/xds-caller-process.js';
import { startBackend } from '../helpers/grpc-backend.js';
import {
  deregister,
  hostAt,
  registerOrThrow,
  startRegistry,
  waitFor,
  type RunningRegistry,
} from '../helpers/registry.js';

const SERVICE = 'zoned';
/** Where each backend runs: two zones of region-1, and region-2. The client runs in region-1/az-a. */
const PLACEMENT = {
  '127.0.0.2': { region: 'region-1', az: 'az-a' },
  '127.0.0.3': { region: 'region-1', az: 'az-a' },
  '127.0.0.4': { region: 'region-1', az: 'az-b' },
  '127.0.0.5': { region: 'region-2', az: 'az-c' },
} as const;
type Ip = keyof typeof PLACEMENT;
/** Calls per sample: enough for round robin to reach every host of a priority several times. */
const SAMPLE_CALLS = 20;

/**
 * gRPC's own proxyless xDS client (@grpc/grpc-js-xds, in a child process) stating its locality in its bootstrap
 * node, against discovery with XDS_LOCALITY_PRIORITY=true: it must call its own zone only while
 * the zone has hosts, then the rest of its region, then the other region, as hosts are deleted
 * through the v1 API. Without the setting (or with a locality ignored) its calls spread over
 * every host from the start.
 */
describe('a real gRPC xDS client fails over by locality', { timeout: 90_000 }, () => {
  let running: RunningRegistry;
  const backends = new Map<Ip, Awaited<ReturnType<typeof startBackend>>>();
  let client: XdsCaller;

  /** Names reached by SAMPLE_CALLS calls in a row; a failed call counts as `error`. */
  async function reached(): Promise<Set<string>> {
    return new Set(await client.call(SAMPLE_CALLS));
  }

  /** Waits until calls reach exactly `expected`, then checks a further sample reaches nothing else. */
  async function callsReachOnly(expected: readonly Ip[]): Promise<void> {
    const want = [...expected].sort();
    await waitFor(`calls to reach exactly ${want.join(', ')}`, async () => {
      const names = [...(await reached())].sort();
      return JSON.stringify(names) === JSON.stringify(want);
    });
    assert.deepEqual([...(await reached())].sort(), want);
  }

  before(async () => {
    running = await startRegistry({ xds: true, env: { XDS_LOCALITY_PRIORITY: 'true' } });
    for (const [ip, tags] of Object.entries(PLACEMENT) as [Ip, (typeof PLACEMENT)[Ip]][]) {
      const backend = await startBackend(ip);
      backends.set(ip, backend);
      await registerOrThrow(running.url, SERVICE, hostAt(ip, backend.port, { ...tags }));
    }
    const bootstrap = {
      xds_servers: [
        {
          server_uri: `127.0.0.1:${running.xdsPort}`,
          channel_creds: [{ type: 'insecure' }],
          server_features: ['xds_v3'],
        },
      ],
      node: { id: 'grpc-zone-a', cluster: 'tests', locality: { region: 'region-1', zone: 'az-a' } },
    };
    client = await startXdsCaller(bootstrap, `xds:///${SERVICE}`);
  });

  after(async () => {
    await client?.close();
    await running?.close();
    await Promise.all([...backends.values()].map((backend) => backend.close()));
  });

  test('while its zone has hosts, the client calls only its own zone', async () => {
    await callsReachOnly(['127.0.0.2', '127.0.0.3']);
    const other = [backends.get('127.0.0.4'), backends.get('127.0.0.5')].map((backend) => backend?.calls());
    assert.deepEqual(other, [0, 0], 'no call reached another zone or region');
  });

  test("after its zone's hosts are deleted, calls move to the other zone of its region", async () => {
    await deregister(running.url, SERVICE, '127.0.0.2');
    await callsReachOnly(['127.0.0.3']);
    await deregister(running.url, SERVICE, '127.0.0.3');
    await callsReachOnly(['127.0.0.4']);
    assert.equal(backends.get('127.0.0.5')?.calls(), 0, 'the other region received no call');
  });

  test('after its region empties, calls move to the other region', async () => {
    await deregister(running.url, SERVICE, '127.0.0.4');
    await callsReachOnly(['127.0.0.5']);
  });

  test('when its zone has hosts again, calls come back to it', async () => {
    const backend = backends.get('127.0.0.2');
    assert.ok(backend);
    await registerOrThrow(running.url, SERVICE, hostAt('127.0.0.2', backend.port, { ...PLACEMENT['127.0.0.2'] }));
    await callsReachOnly(['127.0.0.2']);
  });
});
