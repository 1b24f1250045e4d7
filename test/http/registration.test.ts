import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { listHosts, register, startRegistry, TAGS, type RunningRegistry } from '../helpers/registry.js';

describe('v1 registration API', () => {
  let server: RunningRegistry;
  before(async () => {
    server = await startRegistry({ env: { APPLICATION_ENV: 'staging' } });
  });
  after(async () => server.close());

  test('GET /healthcheck answers 200 OK', async () => {
    const response = await fetch(`${server.url}/healthcheck`);
    assert.equal(response.status, 200);
    assert.equal(await response.text(), 'OK');
  });

  test('an unknown service answers 200 with no hosts, not 404', async () => {
    const response = await fetch(`${server.url}/v1/registration/nobody-here`);
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { service: 'nobody-here', env: 'staging', hosts: [] });
  });

  test('a form heartbeat answers 200 {} and the host is listed with every field of the original', async () => {
    const response = await register(server.url, 'users');
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), {});
    const body = await listHosts(server.url, 'users');
    assert.equal(body.service, 'users');
    assert.equal(body.env, 'staging');
    assert.equal(body.hosts.length, 1);
    const [host] = body.hosts;
    assert.deepEqual(Object.keys(host!).sort(), [
      'ip_address',
      'last_check_in',
      'port',
      'revision',
      'service',
      'service_repo_name',
      'tags',
    ]);
    assert.equal(host!.ip_address, '10.0.3.17');
    assert.equal(host!.port, 9211);
    assert.equal(host!.revision, '2f1c0e9');
    assert.equal(host!.service, 'users');
    assert.equal(host!.service_repo_name, 'users-repo');
    assert.deepEqual(host!.tags, TAGS);
    assert.match(String(host!.last_check_in), /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}$/);
  });

  test('the body is written with sorted keys, as Flask jsonify wrote it', async () => {
    await register(server.url, 'sorted', { tags: { region: 'r', az: 'a', instance_id: 'i', zeta: 1, alpha: 2 } });
    const text = await (await fetch(`${server.url}/v1/registration/sorted`)).text();
    assert.match(
      text,
      /^\{"env":"staging","hosts":\[\{"ip_address":"10\.0\.3\.17","last_check_in":"[^"]+","port":9211,"revision":"2f1c0e9","service":"sorted","service_repo_name":"users-repo","tags":\{"alpha":2,"az":"a","instance_id":"i","region":"r","zeta":1\}\}\],"service":"sorted"\}$/,
    );
  });

  test('last_check_in is the UTC time of the heartbeat', async () => {
    const before = Date.now();
    await register(server.url, 'clock');
    const after = Date.now();
    const [host] = (await listHosts(server.url, 'clock')).hosts;
    const seen = Date.parse(String(host!.last_check_in).replace(' ', 'T').slice(0, 23) + 'Z');
    assert.ok(seen >= before - 1 && seen <= after + 1, `${host!.last_check_in} within the request`);
  });

  test('a multipart heartbeat (curl -F) is accepted', async () => {
    const body = new FormData();
    body.append('ip', '10.0.9.1');
    body.append('port', '81');
    body.append('revision', 'm1');
    body.append('tags', JSON.stringify(TAGS));
    const response = await fetch(`${server.url}/v1/registration/multipart`, { method: 'POST', body });
    assert.equal(response.status, 200);
    const [host] = (await listHosts(server.url, 'multipart')).hosts;
    assert.equal(host!.port, 81);
    assert.equal(host!.service_repo_name, '');
  });

  test('a JSON heartbeat is accepted with tags as an object or as a JSON string', async () => {
    for (const [ip, tags] of [
      ['10.0.8.1', TAGS],
      ['10.0.8.2', JSON.stringify(TAGS)],
    ] as const) {
      const response = await fetch(`${server.url}/v1/registration/json`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ip, port: 443, revision: 'j1', tags }),
      });
      assert.equal(response.status, 200, await response.clone().text());
    }
    const body = await listHosts(server.url, 'json');
    assert.deepEqual(
      body.hosts.map((host) => host.ip_address),
      ['10.0.8.1', '10.0.8.2'],
    );
    assert.deepEqual(body.hosts[1]!.tags, TAGS);
  });

  test('IPv6 hosts register, list and delete, in canonical form', async () => {
    assert.equal((await register(server.url, 'six', { ip: '2001:DB8:0:0:0:0:0:1' })).status, 200);
    assert.deepEqual(
      (await listHosts(server.url, 'six')).hosts.map((host) => host.ip_address),
      ['2001:db8::1'],
    );
    const removed = await fetch(`${server.url}/v1/registration/six/${encodeURIComponent('2001:db8::1')}`, {
      method: 'DELETE',
    });
    assert.equal(removed.status, 200);
    assert.deepEqual((await listHosts(server.url, 'six')).hosts, []);
  });

  test('hosts sending the same tags string keep their own tags', async () => {
    const tags = { ...TAGS, rack: { row: 4, slots: [1, 2] } };
    for (const ip of ['10.0.9.1', '10.0.9.2'])
      assert.equal((await register(server.url, 'twins', { ip, tags })).status, 200);
    const weighted = await fetch(`${server.url}/v1/loadbalancing/twins/10.0.9.1`, {
      method: 'POST',
      body: new URLSearchParams({ load_balancing_weight: '7' }),
    });
    assert.equal(weighted.status, 204);
    assert.equal(
      (await register(server.url, 'twins', { ip: '10.0.9.2', tags: { ...tags, canary: true } })).status,
      200,
    );
    const byIp = new Map((await listHosts(server.url, 'twins')).hosts.map((host) => [host.ip_address, host.tags]));
    assert.deepEqual(byIp.get('10.0.9.1'), { ...tags, load_balancing_weight: 7 });
    assert.deepEqual(byIp.get('10.0.9.2'), { ...tags, canary: true });
    // The same bad string is refused every time, not only the first.
    for (let attempt = 0; attempt < 2; attempt++)
      assert.equal((await register(server.url, 'twins', { ip: '10.0.9.3', tags: '{"az":"a"}' })).status, 400);
  });

  test('a second heartbeat updates port, revision and repo and merges tags', async () => {
    await register(server.url, 'merge', { tags: { ...TAGS, team: 'blue', canary: true } });
    await register(server.url, 'merge', {
      port: 9999,
      revision: 'next',
      service_repo_name: 'new-repo',
      tags: { ...TAGS, az: 'us-east-1b' },
    });
    const [host] = (await listHosts(server.url, 'merge')).hosts;
    assert.equal(host!.port, 9999);
    assert.equal(host!.revision, 'next');
    assert.equal(host!.service_repo_name, 'new-repo');
    assert.deepEqual(host!.tags, { ...TAGS, az: 'us-east-1b', team: 'blue', canary: true });
  });

  test('GET /v1/registration/repo/:repo lists the hosts of every service with that repo', async () => {
    await register(server.url, 'repo-a', { ip: '10.1.0.1', service_repo_name: 'mono' });
    await register(server.url, 'repo-b', { ip: '10.1.0.2', service_repo_name: 'mono' });
    await register(server.url, 'repo-c', { ip: '10.1.0.3', service_repo_name: 'elsewhere' });
    const response = await fetch(`${server.url}/v1/registration/repo/mono`);
    assert.equal(response.status, 200);
    const body = (await response.json()) as { service_repo_name: string; env: string; hosts: { service: string }[] };
    assert.equal(body.service_repo_name, 'mono');
    assert.equal(body.env, 'staging');
    assert.deepEqual(
      body.hosts.map((host) => host.service),
      ['repo-a', 'repo-b'],
    );
  });

  test('a service literally named "repo" is still a service', async () => {
    await register(server.url, 'repo', { ip: '10.2.0.1' });
    assert.deepEqual(
      (await listHosts(server.url, 'repo')).hosts.map((host) => host.ip_address),
      ['10.2.0.1'],
    );
  });

  test('DELETE removes the host: 200 {}, then 400 for the same host', async () => {
    await register(server.url, 'gone', { ip: '10.3.0.1' });
    await register(server.url, 'gone', { ip: '10.3.0.2' });
    const first = await fetch(`${server.url}/v1/registration/gone/10.3.0.1`, { method: 'DELETE' });
    assert.equal(first.status, 200);
    assert.deepEqual(await first.json(), {});
    assert.deepEqual(
      (await listHosts(server.url, 'gone')).hosts.map((host) => host.ip_address),
      ['10.3.0.2'],
    );
    const second = await fetch(`${server.url}/v1/registration/gone/10.3.0.1`, { method: 'DELETE' });
    assert.equal(second.status, 400);
    assert.match(((await second.json()) as { error: string }).error, /not found/);
  });

  test('DELETE with an invalid IP answers 400 naming ip_address', async () => {
    const response = await fetch(`${server.url}/v1/registration/gone/not-an-ip`, { method: 'DELETE' });
    assert.equal(response.status, 400);
    assert.match(((await response.json()) as { error: string }).error, /ip_address/);
  });

  test('DELETE without an IP answers a 4xx JSON error, not the original 500', async () => {
    const response = await fetch(`${server.url}/v1/registration/gone`, { method: 'DELETE' });
    assert.equal(response.status, 400);
    assert.match(((await response.json()) as { error: string }).error, /ip_address/);
  });

  test('an unknown route answers 404 with a JSON error', async () => {
    const response = await fetch(`${server.url}/v2/whatever`);
    assert.equal(response.status, 404);
    assert.ok(((await response.json()) as { error: string }).error);
  });
});
