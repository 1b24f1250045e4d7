import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { xdsProtos } from '../../src/xds/protos.js';
import { register, startRegistry, TAGS, type RunningRegistry } from '../helpers/registry.js';

/**
 * Every service without hosts shares one empty snapshot, so nothing a stranger names is kept
 * per name; what differs by name (the body's `service`, its length, an xDS resource's name) must
 * still be that name's, through the fast path and the Fastify routes alike.
 */
for (const fastPaths of [true, false]) {
  describe(`services without hosts (${fastPaths ? 'fast paths' : 'Fastify routes only'})`, () => {
    let server: RunningRegistry;
    before(async () => {
      server = await startRegistry({ fastPaths });
    });
    after(async () => server.close());

    test('each empty name gets its own body and length, all with the one empty-list ETag', async () => {
      const etags = new Set<string>();
      for (const name of ['a', 'a-much-longer-name', 'a', 'b']) {
        for (let read = 0; read < 2; read++) {
          const response = await fetch(`${server.url}/v1/registration/${name}`);
          assert.equal(response.status, 200);
          const text = await response.text();
          assert.deepEqual(JSON.parse(text), { env: 'development', hosts: [], service: name });
          assert.equal(response.headers.get('content-length'), String(Buffer.byteLength(text)));
          etags.add(response.headers.get('etag') ?? '');
        }
      }
      assert.equal(etags.size, 1);
      const repo = await fetch(`${server.url}/v1/registration/repo/nobody-repo`);
      assert.deepEqual(await repo.json(), { env: 'development', hosts: [], service_repo_name: 'nobody-repo' });
    });

    test('a service that loses its last host answers empty under its own name, and fills again', async () => {
      assert.equal((await register(server.url, 'comes-and-goes', { ip: '10.0.0.1', tags: TAGS })).status, 200);
      const listed = (await (await fetch(`${server.url}/v1/registration/comes-and-goes`)).json()) as {
        hosts: unknown[];
      };
      assert.equal(listed.hosts.length, 1);
      assert.equal(
        (await fetch(`${server.url}/v1/registration/comes-and-goes/10.0.0.1`, { method: 'DELETE' })).status,
        200,
      );
      assert.deepEqual(await (await fetch(`${server.url}/v1/registration/comes-and-goes`)).json(), {
        env: 'development',
        hosts: [],
        service: 'comes-and-goes',
      });
      assert.equal((await register(server.url, 'comes-and-goes', { ip: '10.0.0.2', tags: TAGS })).status, 200);
      const again = (await (await fetch(`${server.url}/v1/registration/comes-and-goes`)).json()) as {
        hosts: { ip_address: string }[];
      };
      assert.deepEqual(
        again.hosts.map((host) => host.ip_address),
        ['10.0.0.2'],
      );
    });

    test('xDS: each empty service is a ClusterLoadAssignment of its own name', async () => {
      const type = xdsProtos().root.lookupType('envoy.config.endpoint.v3.ClusterLoadAssignment');
      for (const name of ['empty-one', 'empty-two', 'empty-one']) {
        const resource = await server.registry.xds.cache.endpoints(name);
        assert.equal(resource.name, name);
        assert.equal((type.decode(resource.body) as unknown as { cluster_name: string }).cluster_name, name);
      }
    });
  });
}
