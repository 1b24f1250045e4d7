import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { listHosts, register } from '../helpers/registry.js';
import { runDiscoveryToExit, spawnDiscovery } from '../helpers/process.js';
import { tempDir } from '../helpers/temp-dir.js';

describe('the discovery process', () => {
  for (const [env, name] of [
    [{ HOST_TTL: 'soon' }, 'HOST_TTL'],
    [{ BACKEND_STORAGE: 'Cassandra!' }, 'BACKEND_STORAGE'],
    [{ DEBUG: 'perhaps' }, 'DEBUG'],
    [{ CACHE_TTL: '-1' }, 'CACHE_TTL'],
  ] as const) {
    test(`a wrong ${name} stops start-up with one line naming it`, async () => {
      const { code, stderr, stdout } = await runDiscoveryToExit({ ...env, BACKEND_STORAGE: env.BACKEND_STORAGE ?? 'InMemory' });
      assert.equal(code, 1);
      assert.equal(stdout, '');
      const lines = stderr.trim().split('\n');
      assert.equal(lines.length, 1, stderr);
      assert.match(lines[0]!, new RegExp(`^discovery: invalid setting ${name}=`));
    });
  }

  test('an unknown plugin backend stops start-up with one line', async () => {
    const dir = await tempDir();
    const { code, stderr } = await runDiscoveryToExit({ BACKEND_STORAGE: 'nosuchplugin', APPLICATION_DIR: dir.path });
    assert.equal(code, 1);
    assert.equal(stderr.trim().split('\n').length, 1, stderr);
    assert.match(stderr, /BACKEND_STORAGE="nosuchplugin"/);
    await dir.remove();
  });

  test('InFile: every registration answered 200 before a SIGKILL mid-storm is there after restart', async () => {
    const dir = await tempDir();
    const env = { BACKEND_STORAGE: 'InFile', APPLICATION_DIR: dir.path };
    for (let round = 0; round < 3; round++) {
      const server = await spawnDiscovery(env);
      const acknowledged: string[] = [];
      const storm = Array.from({ length: 300 }, (_, index) => {
        const ip = `10.${round}.${Math.floor(index / 250)}.${index % 250}`;
        return register(server.url, 'storm', { ip })
          .then((response) => {
            if (response.status === 200) acknowledged.push(ip);
          })
          .catch(() => undefined); // cut off by the kill: never acknowledged
      });
      // Kill once part of the storm has been answered, while the rest is in flight.
      while (acknowledged.length < 50 * (round + 1)) await new Promise((resolve) => setTimeout(resolve, 1));
      await server.stop('SIGKILL');
      await Promise.all(storm);
      const restarted = await spawnDiscovery(env);
      const listed = new Set((await listHosts(restarted.url, 'storm')).hosts.map((host) => host.ip_address));
      const lost = acknowledged.filter((ip) => !listed.has(ip));
      assert.deepEqual(lost, [], `round ${round}: ${lost.length} of ${acknowledged.length} acknowledged registrations lost`);
      assert.equal(await restarted.stop('SIGTERM'), 0);
    }
    await dir.remove();
  });

  test('SIGTERM shuts down cleanly with exit code 0', async () => {
    const server = await spawnDiscovery({ BACKEND_STORAGE: 'InMemory' });
    assert.equal((await fetch(`${server.url}/healthcheck`)).status, 200);
    assert.equal(await server.stop('SIGTERM'), 0);
  });
});
