import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import * as grpcXds from '@grpc/grpc-js-xds';
import { startBackend, who } from '../helpers/grpc-backend.js';
import {
  deregister,
  hostAt,
  registerOrThrow,
  startRegistry,
  waitFor,
  type RunningRegistry,
} from '../helpers/registry.js';

/** Short, so the expiry test waits seconds, not minutes. */
const HOST_TTL_SECONDS = 2;
/** Heartbeats of the hosts meant to stay alive, well inside the TTL. */
const HEARTBEAT_MS = 300;
const SERVICE = 'echo';

/**
 * gRPC's own proxyless xDS client (@grpc/grpc-js-xds), nobody here wrote it, dialling
 * `xds:///echo` against our control plane on loopback, with real backends on 127.0.0.2-4
 * registered through the v1 HTTP API. One client for the whole file: it must follow every
 * change without being restarted.
 */
describe('a real gRPC xDS client follows the registry', { timeout: 90_000 }, () => {
  let running: RunningRegistry;
  const backends = new Map<string, Awaited<ReturnType<typeof startBackend>>>();
  const alive = new Set<string>();
  let heartbeats: NodeJS.Timeout | undefined;
  let client: grpc.Client;

  /** Names reached by `count` calls in a row; a failed call counts as `error`. */
  async function reached(count: number): Promise<Set<string>> {
    const names = new Set<string>();
    for (let i = 0; i < count; i++) {
      const answer = await who(client);
      names.add(answer.name ?? 'error');
    }
    return names;
  }

  async function heartbeat(ip: string): Promise<void> {
    const backend = backends.get(ip);
    if (!backend) throw new Error(`no backend ${ip}`);
    await registerOrThrow(running.url, SERVICE, hostAt(ip, backend.port));
  }

  before(async () => {
    running = await startRegistry({ xds: true, env: { HOST_TTL: String(HOST_TTL_SECONDS) } });
    for (const ip of ['127.0.0.2', '127.0.0.3', '127.0.0.4']) backends.set(ip, await startBackend(ip));
    heartbeats = setInterval(() => {
      for (const ip of alive) heartbeat(ip).catch(() => undefined);
    }, HEARTBEAT_MS);
    process.env.GRPC_XDS_BOOTSTRAP_CONFIG = JSON.stringify({
      xds_servers: [
        {
          server_uri: `127.0.0.1:${running.xdsPort}`,
          channel_creds: [{ type: 'insecure' }],
          server_features: ['xds_v3'],
        },
      ],
      node: { id: 'grpc-xds-client-test', cluster: 'tests', locality: { region: 'region-1', zone: 'az-1' } },
    });
    grpcXds.register();
  });

  after(async () => {
    clearInterval(heartbeats);
    client?.close();
    await running?.close();
    await Promise.all([...backends.values()].map((backend) => backend.close()));
  });

  test('a client dialling xds:///echo reaches both registered hosts', async () => {
    for (const ip of ['127.0.0.2', '127.0.0.3']) {
      await heartbeat(ip);
      alive.add(ip);
    }
    client = new grpc.Client(`xds:///${SERVICE}`, grpc.credentials.createInsecure());
    await waitFor(
      'calls to reach 127.0.0.2 and 127.0.0.3',
      async () => {
        const names = await reached(10);
        return names.has('127.0.0.2') && names.has('127.0.0.3');
      },
      20_000,
    );
    const clients = (await (await fetch(`${running.url}/v1/xds/clients`)).json()) as {
      clients: {
        node: { id: string } | null;
        resources: { type_url: string; resource_names: string[]; up_to_date: boolean }[];
      }[];
    };
    const ours = clients.clients.find((entry) => entry.node?.id === 'grpc-xds-client-test');
    assert.ok(ours, 'the admin view lists the client by node id');
    const types = ours.resources.map((entry) => entry.type_url.split('.').at(-1));
    assert.deepEqual([...types].sort(), ['Cluster', 'ClusterLoadAssignment', 'Listener']);
    for (const entry of ours.resources) assert.deepEqual(entry.resource_names, [SERVICE]);
  });

  test('after a DELETE, calls stop reaching the removed host', async () => {
    alive.delete('127.0.0.3');
    await deregister(running.url, SERVICE, '127.0.0.3');
    await waitFor('calls to reach only 127.0.0.2', async () => {
      const names = await reached(10);
      return names.size === 1 && names.has('127.0.0.2');
    });
  });

  test('a newly registered host starts receiving calls', async () => {
    await heartbeat('127.0.0.4');
    alive.add('127.0.0.4');
    await waitFor('calls to reach 127.0.0.4', async () => (await reached(10)).has('127.0.0.4'));
  });

  test('a DRAINING host gets no new calls, an OUT_OF_SERVICE one is not served, and clearing the override brings it back', async () => {
    const setStatus = async (status: string | undefined) => {
      const response = await fetch(`${running.url}/v1/registration/${SERVICE}/127.0.0.4/status`, {
        method: status === undefined ? 'DELETE' : 'PUT',
        ...(status === undefined
          ? {}
          : { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ status }) }),
      });
      assert.equal(response.status, 204);
    };
    const onlyTwo = async () => {
      const names = await reached(10);
      return names.size === 1 && names.has('127.0.0.2');
    };
    await setStatus('DRAINING');
    await waitFor('calls to leave the draining 127.0.0.4', onlyTwo);
    // It keeps heartbeating meanwhile (alive), and stays out: the override survives heartbeats.
    await new Promise((resolve) => setTimeout(resolve, HEARTBEAT_MS * 3));
    assert.ok(await onlyTwo(), 'a draining host received calls');
    await setStatus('OUT_OF_SERVICE');
    await new Promise((resolve) => setTimeout(resolve, HEARTBEAT_MS * 2));
    assert.ok(await onlyTwo(), 'an out-of-service host received calls');
    await setStatus(undefined);
    await waitFor('calls to reach 127.0.0.4 again', async () => (await reached(10)).has('127.0.0.4'));
  });

  test('after a host expires (no heartbeat for HOST_TTL), calls stop reaching it', async () => {
    alive.delete('127.0.0.4');
    const stoppedAt = Date.now();
    await waitFor(
      'calls to reach only 127.0.0.2',
      async () => {
        const names = await reached(10);
        return names.size === 1 && names.has('127.0.0.2');
      },
      HOST_TTL_SECONDS * 1000 + 10_000,
    );
    assert.ok(
      Date.now() - stoppedAt >= HOST_TTL_SECONDS * 1000 - HEARTBEAT_MS,
      'the host was not dropped before it expired',
    );
  });
});
