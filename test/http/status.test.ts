import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { form, listHosts, register, startRegistry, type RunningRegistry } from '../helpers/registry.js';

const JSON_HEADERS = { 'content-type': 'application/json' };

for (const fastPaths of [true, false]) {
  describe(`instance status (fast paths ${fastPaths ? 'on' : 'off'})`, () => {
    let server: RunningRegistry;
    before(async () => {
      server = await startRegistry({ fastPaths });
    });
    after(async () => server.close());

    const get = (path: string, headers: Record<string, string> = {}) =>
      fetch(`${server.url}/v1/registration/${path}`, { headers });
    const putStatus = (path: string, body?: URLSearchParams | string, headers: Record<string, string> = {}) =>
      fetch(`${server.url}/v1/registration/${path}/status`, { method: 'PUT', body, headers });
    const clearStatus = (path: string) => fetch(`${server.url}/v1/registration/${path}/status`, { method: 'DELETE' });
    const statuses = async (service: string, query = 'all') => {
      const response = await get(`${service}?status=${query}`);
      assert.equal(response.status, 200);
      const body = (await response.json()) as { hosts: Array<{ ip_address: string; status: string }> };
      return body.hosts.map((host) => [host.ip_address, host.status]);
    };

    test('while every host is UP the plain read is byte for byte what it was, ETag included', async () => {
      await register(server.url, 'plain', { ip: '10.0.0.1' });
      await register(server.url, 'plain', { ip: '10.0.0.2', status: 'UP' });
      const before = await get('plain');
      const text = await before.text();
      assert.doesNotMatch(text, /"status"/);
      // A host's explicit UP is no word at all: the same list a plain heartbeat gives.
      await register(server.url, 'plain', { ip: '10.0.0.2' });
      const again = await get('plain');
      const withoutCheckIns = (body: string) => body.replace(/"last_check_in":"[^"]*"/g, '"last_check_in":""');
      assert.equal(withoutCheckIns(await again.text()), withoutCheckIns(text));
      assert.equal(again.headers.get('etag'), before.headers.get('etag'));
    });

    test('a heartbeat may say DRAINING or OUT_OF_SERVICE: the plain read lists UP hosts only, ?status=all lists every one with its status', async () => {
      await register(server.url, 'drain', { ip: '10.0.0.1' });
      await register(server.url, 'drain', { ip: '10.0.0.2', status: 'DRAINING' });
      await register(server.url, 'drain', { ip: '10.0.0.3', status: 'OUT_OF_SERVICE' });
      const plain = await listHosts(server.url, 'drain');
      assert.deepEqual(
        plain.hosts.map((host) => host.ip_address),
        ['10.0.0.1'],
      );
      assert.equal(Object.hasOwn(plain.hosts[0] ?? {}, 'status'), false);
      assert.deepEqual(await statuses('drain'), [
        ['10.0.0.1', 'UP'],
        ['10.0.0.2', 'DRAINING'],
        ['10.0.0.3', 'OUT_OF_SERVICE'],
      ]);
      assert.deepEqual(await statuses('drain', 'DRAINING'), [['10.0.0.2', 'DRAINING']]);
      assert.deepEqual(await statuses('drain', 'UP'), [['10.0.0.1', 'UP']]);
      // The next heartbeat without a status is UP again.
      await register(server.url, 'drain', { ip: '10.0.0.2' });
      assert.deepEqual(
        (await listHosts(server.url, 'drain')).hosts.map((host) => host.ip_address),
        ['10.0.0.1', '10.0.0.2'],
      );
    });

    test('the status key sits in sorted order, between service_repo_name and tags', async () => {
      await register(server.url, 'order', { ip: '10.0.0.1' });
      const text = await (await get('order?status=all')).text();
      assert.match(text, /"service_repo_name":"users-repo","status":"UP","tags":\{/);
    });

    test('a JSON heartbeat carries status too; an unknown status is a 400 naming the field and changes nothing', async () => {
      const json = await fetch(`${server.url}/v1/registration/jsonstatus`, {
        method: 'POST',
        headers: JSON_HEADERS,
        body: JSON.stringify({
          ip: '10.0.0.1',
          port: 80,
          revision: 'r',
          tags: { az: 'a', region: 'r', instance_id: 'i' },
          status: 'DRAINING',
        }),
      });
      assert.equal(json.status, 200);
      assert.deepEqual(await statuses('jsonstatus'), [['10.0.0.1', 'DRAINING']]);
      for (const status of ['draining', 'DOWN', '', 'UP '.repeat(20)]) {
        const response = await register(server.url, 'jsonstatus', { ip: '10.0.0.1', status });
        assert.equal(response.status, 400, `status ${JSON.stringify(status)}`);
        const body = (await response.json()) as { error: string };
        assert.match(body.error, /status/);
      }
      const numeric = await fetch(`${server.url}/v1/registration/jsonstatus`, {
        method: 'POST',
        headers: JSON_HEADERS,
        body: JSON.stringify({ ip: '10.0.0.1', port: 80, revision: 'r', tags: {}, status: 3 }),
      });
      assert.equal(numeric.status, 400);
      assert.match(((await numeric.json()) as { error: string }).error, /status/);
      assert.deepEqual(await statuses('jsonstatus'), [['10.0.0.1', 'DRAINING']]);
    });

    test('an override (PUT …/status, 204) wins over the host, survives its heartbeats, and DELETE (204) clears it', async () => {
      await register(server.url, 'ops', { ip: '10.0.0.1' });
      await register(server.url, 'ops', { ip: '10.0.0.2', status: 'DRAINING' });
      const put = await putStatus('ops/10.0.0.1', form({ status: 'OUT_OF_SERVICE' }));
      assert.equal(put.status, 204);
      assert.equal(await put.text(), '');
      const json = await putStatus('ops/10.0.0.2', JSON.stringify({ status: 'UP' }), JSON_HEADERS);
      assert.equal(json.status, 204);
      await register(server.url, 'ops', { ip: '10.0.0.1' });
      await register(server.url, 'ops', { ip: '10.0.0.2', status: 'DRAINING' });
      assert.deepEqual(await statuses('ops'), [
        ['10.0.0.1', 'OUT_OF_SERVICE'],
        ['10.0.0.2', 'UP'],
      ]);
      assert.deepEqual(
        (await listHosts(server.url, 'ops')).hosts.map((host) => host.ip_address),
        ['10.0.0.2'],
      );
      const cleared = await clearStatus('ops/10.0.0.1');
      assert.equal(cleared.status, 204);
      assert.equal((await clearStatus('ops/10.0.0.2')).status, 204);
      assert.deepEqual(await statuses('ops'), [
        ['10.0.0.1', 'UP'],
        ['10.0.0.2', 'DRAINING'],
      ]);
    });

    test('the :port variant must name the stored port (else 400); an unknown host is a 404 as for a weight', async () => {
      await register(server.url, 'ported', { ip: '10.0.0.1', port: 9211 });
      assert.equal((await putStatus('ported/10.0.0.1/9211', form({ status: 'DRAINING' }))).status, 204);
      assert.deepEqual(await statuses('ported'), [['10.0.0.1', 'DRAINING']]);
      const wrongPort = await putStatus('ported/10.0.0.1/9999', form({ status: 'UP' }));
      assert.equal(wrongPort.status, 400);
      assert.match(((await wrongPort.json()) as { error: string }).error, /port 9211/);
      const badPort = await putStatus('ported/10.0.0.1/eighty', form({ status: 'UP' }));
      assert.equal(badPort.status, 400);
      assert.match(((await badPort.json()) as { error: string }).error, /'port'/);
      assert.equal((await clearStatus('ported/10.0.0.1/9211')).status, 204);
      assert.deepEqual(await statuses('ported'), [['10.0.0.1', 'UP']]);
      for (const path of ['ported/10.0.0.9', 'nobody/10.0.0.1', 'ported/not-an-ip']) {
        const response = await putStatus(path, form({ status: 'DRAINING' }));
        assert.equal(response.status, 404, path);
        assert.deepEqual(await response.json(), { error: 'Host not found' });
        assert.equal((await clearStatus(path)).status, 404, path);
      }
      assert.deepEqual(await statuses('ported'), [['10.0.0.1', 'UP']]);
      assert.deepEqual(await statuses('nobody'), []);
    });

    test('an override without a valid status is a 400 naming the field and changes nothing', async () => {
      await register(server.url, 'badput', { ip: '10.0.0.1' });
      for (const body of [undefined, form({}), form({ status: 'down' }), JSON.stringify({ status: 7 })]) {
        const response = await putStatus('badput/10.0.0.1', body, typeof body === 'string' ? JSON_HEADERS : {});
        assert.equal(response.status, 400);
        assert.match(((await response.json()) as { error: string }).error, /status/);
      }
      assert.deepEqual(await statuses('badput'), [['10.0.0.1', 'UP']]);
    });

    test('an unknown ?status= is a 400 naming the field', async () => {
      await register(server.url, 'query', { ip: '10.0.0.1' });
      for (const query of ['ALL', 'down', '']) {
        const response = await get(`query?status=${query}`);
        assert.equal(response.status, 400, query);
        assert.match(((await response.json()) as { error: string }).error, /'status'/);
      }
      const repo = await fetch(`${server.url}/v1/registration/repo/users-repo?status=nope`);
      assert.equal(repo.status, 400);
    });

    test('each view has its own ETag: 304 for its own, 200 for the plain read, and a status change moves them', async () => {
      await register(server.url, 'etags', { ip: '10.0.0.1' });
      await register(server.url, 'etags', { ip: '10.0.0.2' });
      const plain = (await get('etags')).headers.get('etag') ?? '';
      const all = (await get('etags?status=all')).headers.get('etag') ?? '';
      assert.notEqual(all, plain);
      assert.equal((await get('etags?status=all', { 'if-none-match': all })).status, 304);
      assert.equal((await get('etags', { 'if-none-match': all })).status, 200);
      assert.equal((await get('etags?status=all', { 'if-none-match': plain })).status, 200);
      assert.equal((await get('etags', { 'if-none-match': plain })).status, 304);

      await register(server.url, 'etags', { ip: '10.0.0.2', status: 'DRAINING' });
      const drained = await get('etags', { 'if-none-match': plain });
      assert.equal(drained.status, 200, 'a host left the plain list');
      assert.equal((await get('etags?status=all', { 'if-none-match': all })).status, 200);
      const plainNow = drained.headers.get('etag') ?? '';
      assert.equal((await get('etags', { 'if-none-match': plainNow })).status, 304);
    });

    test('the repo read lists UP hosts only unless asked', async () => {
      await register(server.url, 'repoa', { ip: '10.0.0.1', service_repo_name: 'status-repo' });
      await register(server.url, 'repob', { ip: '10.0.0.2', service_repo_name: 'status-repo', status: 'DRAINING' });
      const plain = (await (await fetch(`${server.url}/v1/registration/repo/status-repo`)).json()) as {
        hosts: Array<{ service: string }>;
      };
      assert.deepEqual(
        plain.hosts.map((host) => host.service),
        ['repoa'],
      );
      const all = (await (await fetch(`${server.url}/v1/registration/repo/status-repo?status=all`)).json()) as {
        hosts: Array<{ service: string; status: string }>;
      };
      assert.deepEqual(
        all.hosts.map((host) => [host.service, host.status]),
        [
          ['repoa', 'UP'],
          ['repob', 'DRAINING'],
        ],
      );
    });
  });
}

describe('instance status and expiry', () => {
  test('a DRAINING or OUT_OF_SERVICE host still expires when it stops heartbeating', async () => {
    const { ManualClock } = await import('../../src/clock.js');
    const clock = new ManualClock();
    const server = await startRegistry({ clock });
    try {
      await register(server.url, 'fading', { ip: '10.0.0.1', status: 'DRAINING' });
      await register(server.url, 'fading', { ip: '10.0.0.2' });
      const put = await fetch(`${server.url}/v1/registration/fading/10.0.0.2/status`, {
        method: 'PUT',
        body: form({ status: 'OUT_OF_SERVICE' }),
      });
      assert.equal(put.status, 204);
      clock.advance((server.config.hostTtlSeconds + 1) * 1000);
      const all = (await (await fetch(`${server.url}/v1/registration/fading?status=all`)).json()) as {
        hosts: unknown[];
      };
      assert.deepEqual(all.hosts, []);
    } finally {
      await server.close();
    }
  });
});

describe('instance status with INSTANCE_KEY=ip_port and HEARTBEAT_WRITE_INTERVAL', () => {
  test('an override by ip:port sets one instance, by ip every instance at the IP', async () => {
    const server = await startRegistry({ env: { INSTANCE_KEY: 'ip_port' } });
    try {
      await register(server.url, 'fleet', { ip: '10.0.0.1', port: 8001 });
      await register(server.url, 'fleet', { ip: '10.0.0.1', port: 8002 });
      const put = (path: string, status: string) =>
        fetch(`${server.url}/v1/registration/fleet/${path}/status`, { method: 'PUT', body: form({ status }) });
      const statuses = async () =>
        (
          (await (await fetch(`${server.url}/v1/registration/fleet?status=all`)).json()) as {
            hosts: Array<{ port: number; status: string }>;
          }
        ).hosts
          .map((host) => [host.port, host.status])
          .sort();
      assert.equal((await put('10.0.0.1/8002', 'DRAINING')).status, 204);
      assert.deepEqual(await statuses(), [
        [8001, 'UP'],
        [8002, 'DRAINING'],
      ]);
      assert.equal((await put('10.0.0.1', 'OUT_OF_SERVICE')).status, 204);
      assert.deepEqual(await statuses(), [
        [8001, 'OUT_OF_SERVICE'],
        [8002, 'OUT_OF_SERVICE'],
      ]);
      assert.equal((await put('10.0.0.1/8003', 'UP')).status, 404);
      const cleared = await fetch(`${server.url}/v1/registration/fleet/10.0.0.1/8001/status`, { method: 'DELETE' });
      assert.equal(cleared.status, 204);
      assert.deepEqual(await statuses(), [
        [8001, 'UP'],
        [8002, 'OUT_OF_SERVICE'],
      ]);
    } finally {
      await server.close();
    }
  });

  test('a heartbeat that changes its status is written at once, whatever the write interval', async () => {
    const server = await startRegistry({ env: { HEARTBEAT_WRITE_INTERVAL: '60' } });
    try {
      await register(server.url, 'quiet', { ip: '10.0.0.1' });
      await register(server.url, 'quiet', { ip: '10.0.0.1', status: 'DRAINING' });
      const all = (await (await fetch(`${server.url}/v1/registration/quiet?status=all`)).json()) as {
        hosts: Array<{ status: string }>;
      };
      assert.deepEqual(
        all.hosts.map((host) => host.status),
        ['DRAINING'],
      );
      await register(server.url, 'quiet', { ip: '10.0.0.1' });
      assert.equal((await listHosts(server.url, 'quiet')).hosts.length, 1, 'back to UP at once');
    } finally {
      await server.close();
    }
  });
});
