import assert from 'node:assert/strict';
import { copyFile, mkdir } from 'node:fs/promises';
import { after, afterEach, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { ManualClock } from '../../src/clock.js';
import { eventually, launchBrowser, newPage, screenshot } from '../helpers/browser.js';
import { register, startRegistry, TAGS, type RunningRegistry } from '../helpers/registry.js';
import { hostRows, registerAll, serviceRows, text } from '../helpers/dashboard-page.js';

describe('dashboard in headless Chromium', () => {
  let browser: Browser;
  let server: RunningRegistry | undefined;
  let page: Page | undefined;
  before(async () => {
    browser = await launchBrowser();
  });
  after(async () => browser?.close());
  afterEach(async () => {
    await page?.context().close();
    page = undefined;
    await server?.close();
    server = undefined;
  });

  test('the services list shows every service with its host count and revisions, and the filter narrows it', async () => {
    server = await startRegistry({ env: { APPLICATION_ENV: 'staging' } });
    await registerAll(server.url, 'users', [
      { ip: '10.0.0.1', revision: 'a1b2c3d', service_repo_name: 'users-repo' },
      { ip: '10.0.0.2', revision: 'a1b2c3d', service_repo_name: 'users-repo' },
      { ip: '10.0.0.3', revision: 'e4f5a6b', service_repo_name: 'users-repo' },
    ]);
    await registerAll(server.url, 'orders', [{ ip: '10.0.1.1', service_repo_name: 'orders-repo' }]);
    await registerAll(server.url, 'payments', [
      { ip: '10.0.2.1', service_repo_name: 'payments-repo' },
      { ip: '10.0.2.2', service_repo_name: 'payments-repo' },
    ]);

    page = await newPage(browser);
    await page.goto(`${server.url}/ui`);
    await eventually(async () =>
      assert.deepEqual(await serviceRows(page as Page), [
        ['orders', '1', '1', 'orders-repo'],
        ['payments', '2', '1', 'payments-repo'],
        ['users', '3', '2deploying', 'users-repo'],
      ]),
    );
    assert.equal(await text(page, '#services-count'), '3 services');
    assert.equal(await text(page, '#env'), 'staging');
    assert.equal(await page.locator('#banner').isVisible(), false, 'no read-only banner without write credentials');
    await screenshot(page, 'dashboard-services');

    await page.getByLabel('Filter services').fill('PAY');
    await eventually(async () =>
      assert.deepEqual(await serviceRows(page as Page), [['payments', '2', '1', 'payments-repo']]),
    );
    assert.equal(await text(page, '#services-count'), '1 service');
    // The filter is kept in the URL: a reload (or the link, shared) shows the same list.
    await eventually(async () => assert.equal(new URL((page as Page).url()).hash, '#/?q=PAY'));
    await page.reload();
    await eventually(async () =>
      assert.deepEqual(await serviceRows(page as Page), [['payments', '2', '1', 'payments-repo']]),
    );
    assert.equal(await page.getByLabel('Filter services').inputValue(), 'PAY');
    await page.getByLabel('Filter services').fill('nothing-like-this');
    await eventually(async () =>
      assert.equal(await text(page as Page, '#services-empty'), 'No service matches “nothing-like-this”.'),
    );

    // A service registering while the page is open appears at the next poll.
    await page.getByLabel('Filter services').fill('');
    await registerAll(server.url, 'search', [{ ip: '10.0.3.1' }]);
    await eventually(async () =>
      assert.deepEqual(
        (await serviceRows(page as Page)).map((row) => row[0]),
        ['orders', 'payments', 'search', 'users'],
      ),
    );
  });

  test('a service page shows each host, the revision split of a deploy, weight, canary and heartbeat age against HOST_TTL', async () => {
    // Check-ins spread over the last minutes: the clock is set back before each registration.
    const base = Date.now();
    const clock = new ManualClock(base);
    server = await startRegistry({ env: { HOST_TTL: '600', APPLICATION_ENV: 'production' }, clock });
    const hosts = [
      { ip: '10.0.4.11', age: 4, revision: '7d3f9a2', az: 'eu-west-1a' },
      { ip: '10.0.4.12', age: 22, revision: '7d3f9a2', az: 'eu-west-1b' },
      { ip: '10.0.4.13', age: 95, revision: '7d3f9a2', az: 'eu-west-1c' },
      { ip: '10.0.4.14', age: 310, revision: '7d3f9a2', az: 'eu-west-1a' },
      { ip: '10.0.4.15', age: 540, revision: '7d3f9a2', az: 'eu-west-1b' },
      { ip: '10.0.4.16', age: 12, revision: 'c41e08b', az: 'eu-west-1c', canary: true },
      { ip: '10.0.4.17', age: 48, revision: 'c41e08b', az: 'eu-west-1a' },
    ];
    for (const host of hosts) {
      clock.set(base - host.age * 1000);
      const tags = {
        ...TAGS,
        az: host.az,
        region: 'eu-west-1',
        instance_id: `i-${host.ip}`,
        ...(host.canary ? { canary: true, team: 'checkout-sre' } : {}),
      };
      assert.equal(
        (
          await register(server.url, 'checkout', {
            ip: host.ip,
            port: 8443,
            revision: host.revision,
            service_repo_name: 'checkout-repo',
            tags,
          })
        ).status,
        200,
      );
    }
    clock.set(base);
    const weight = await fetch(`${server.url}/v1/loadbalancing/checkout/10.0.4.16`, {
      method: 'POST',
      body: new URLSearchParams({ load_balancing_weight: '5' }),
    });
    assert.equal(weight.status, 204);
    await registerAll(server.url, 'users', [{ ip: '10.0.0.1' }]);

    page = await newPage(browser);
    await page.goto(`${server.url}/ui/`);
    await page.getByRole('link', { name: 'checkout' }).click();
    await eventually(async () => assert.equal((await hostRows(page as Page)).length, 7));
    assert.equal(await text(page, '#service-name'), 'checkout');
    assert.equal(
      await text(page, '#service-summary'),
      '7 hosts · 2 revisions (deploy in progress) · 1 canary · HOST_TTL 600 s',
    );
    assert.deepEqual(await page.locator('#revision-list li').allInnerTexts(), [
      '7d3f9a2 · 5 hosts (71%)',
      'c41e08b · 2 hosts (29%)',
    ]);

    // Hosts per availability zone, largest first.
    assert.deepEqual(await page.locator('#az-list button').allInnerTexts(), [
      'eu-west-1a · 3',
      'eu-west-1b · 2',
      'eu-west-1c · 2',
    ]);

    const rows = await hostRows(page);
    assert.deepEqual(
      rows.map((row) => row.slice(0, 7)),
      [
        ['10.0.4.11:8443', 'eu-west-1a / eu-west-1', 'i-10.0.4.11', '7d3f9a2', '—', '—', ''],
        ['10.0.4.12:8443', 'eu-west-1b / eu-west-1', 'i-10.0.4.12', '7d3f9a2', '—', '—', ''],
        ['10.0.4.13:8443', 'eu-west-1c / eu-west-1', 'i-10.0.4.13', '7d3f9a2', '—', '—', ''],
        ['10.0.4.14:8443', 'eu-west-1a / eu-west-1', 'i-10.0.4.14', '7d3f9a2', '—', '—', ''],
        ['10.0.4.15:8443', 'eu-west-1b / eu-west-1', 'i-10.0.4.15', '7d3f9a2', '—', '—', ''],
        ['10.0.4.16:8443', 'eu-west-1c / eu-west-1', 'i-10.0.4.16', 'c41e08b', '5', 'canary', 'team=checkout-sre'],
        ['10.0.4.17:8443', 'eu-west-1a / eu-west-1', 'i-10.0.4.17', 'c41e08b', '—', '—', ''],
      ],
    );
    // Heartbeat ages: a bar out of HOST_TTL and the age in words, within a few seconds of the truth.
    const meters = await page.$$eval('#hosts-body meter', (all) =>
      all.map((meter) => ({ value: Number(meter.getAttribute('value')), max: Number(meter.getAttribute('max')) })),
    );
    assert.deepEqual(
      meters.map((meter) => meter.max),
      hosts.map(() => 600),
    );
    for (const [index, host] of hosts.entries()) {
      const shown = meters[index]?.value ?? -1;
      assert.ok(Math.abs(shown - host.age) < 5, `${host.ip}: bar at ${shown} s, check-in ${host.age} s ago`);
    }
    assert.match(rows[4]?.[7] ?? '', /^9 min \d+ s ago$/);
    await screenshot(page, 'dashboard-service');
    if (process.env.UPDATE_DOCS_SCREENSHOT) {
      await mkdir('docs', { recursive: true });
      await copyFile('test-artifacts/dashboard-service.png', 'docs/dashboard.png');
    }

    await page.getByRole('link', { name: 'All services' }).click();
    await eventually(async () =>
      assert.deepEqual(
        (await serviceRows(page as Page)).map((row) => row[0]),
        ['checkout', 'users'],
      ),
    );
  });

  test('a host that stops heartbeating disappears from the page after HOST_TTL', async () => {
    server = await startRegistry({ env: { HOST_TTL: '2' } });
    const url = server.url;
    await registerAll(url, 'users', [{ ip: '10.0.0.1' }, { ip: '10.0.0.2' }]);
    // 10.0.0.2 keeps heartbeating; 10.0.0.1 stopped after its first.
    const keepAlive = setInterval(() => void register(url, 'users', { ip: '10.0.0.2' }), 400);
    try {
      page = await newPage(browser);
      await page.goto(`${url}/ui/#/service/users`);
      await eventually(async () =>
        assert.deepEqual(
          (await hostRows(page as Page)).map((row) => row[0]),
          ['10.0.0.1:9211', '10.0.0.2:9211'],
        ),
      );
      await eventually(
        async () =>
          assert.deepEqual(
            (await hostRows(page as Page)).map((row) => row[0]),
            ['10.0.0.2:9211'],
          ),
        10_000,
      );
      assert.equal(await text(page, '#service-summary'), '1 host · 1 revision · HOST_TTL 2 s');
      await screenshot(page, 'dashboard-after-expiry');
      await page.getByRole('link', { name: 'All services' }).click();
      await eventually(async () =>
        assert.deepEqual(await serviceRows(page as Page), [['users', '1', '1', 'users-repo']]),
      );
    } finally {
      clearInterval(keepAlive);
    }
  });

  test('hosts sort by numeric address, revision and heartbeat age, search and AZ narrow them, and the URL keeps all of it', async () => {
    const base = Date.now();
    const clock = new ManualClock(base);
    server = await startRegistry({ clock });
    // Text order would put 10.0.0.10 before 10.0.0.2 and 9.0.0.1 last; numbers put it first.
    const hosts = [
      { ip: '10.0.0.10', age: 30, revision: 'b2', az: 'az-a', instance: 'i-aaa' },
      { ip: '10.0.0.2', age: 5, revision: 'a1', az: 'az-b', instance: 'i-bbb' },
      { ip: '9.0.0.1', age: 200, revision: 'a1', az: 'az-a', instance: 'i-ccc' },
      { ip: '10.0.0.9', age: 90, revision: 'c3', az: 'az-b', instance: 'i-ddd' },
      { ip: 'fd00::10', age: 1, revision: 'a1', az: 'az-a', instance: 'i-eee' },
      { ip: 'fd00::2', age: 60, revision: 'b2', az: 'az-c', instance: 'i-fff' },
    ];
    for (const host of hosts) {
      clock.set(base - host.age * 1000);
      const tags = { az: host.az, region: 'r-1', instance_id: host.instance };
      assert.equal((await register(server.url, 'web', { ip: host.ip, revision: host.revision, tags })).status, 200);
    }
    clock.set(base);
    const addresses = async () => (await hostRows(page as Page)).map((row) => row[0]);

    page = await newPage(browser);
    await page.goto(`${server.url}/ui/#/service/web`);
    await eventually(async () =>
      assert.deepEqual(await addresses(), [
        '9.0.0.1:9211',
        '10.0.0.2:9211',
        '10.0.0.9:9211',
        '10.0.0.10:9211',
        '[fd00::2]:9211',
        '[fd00::10]:9211',
      ]),
    );
    assert.equal(await page.locator('[data-sort=address]').getAttribute('aria-sort'), 'ascending');

    // Heartbeat age: the first click shows the oldest first.
    await page.getByRole('button', { name: 'Last heartbeat' }).click();
    await eventually(async () =>
      assert.deepEqual(await addresses(), [
        '9.0.0.1:9211',
        '10.0.0.9:9211',
        '[fd00::2]:9211',
        '10.0.0.10:9211',
        '10.0.0.2:9211',
        '[fd00::10]:9211',
      ]),
    );
    assert.equal(await page.locator('[data-sort=age]').getAttribute('aria-sort'), 'descending');
    await page.getByRole('button', { name: 'Last heartbeat' }).click();
    await eventually(async () => assert.equal((await addresses())[0], '[fd00::10]:9211'));

    // Revision, ties by address.
    await page.getByRole('button', { name: 'Revision' }).click();
    await eventually(async () =>
      assert.deepEqual(await addresses(), [
        '9.0.0.1:9211',
        '10.0.0.2:9211',
        '[fd00::10]:9211',
        '10.0.0.10:9211',
        '[fd00::2]:9211',
        '10.0.0.9:9211',
      ]),
    );

    // Search over address, instance, revision, AZ and tags; then one AZ of what it found.
    await page.getByLabel('Search hosts').fill('a1');
    await eventually(async () =>
      assert.deepEqual(await addresses(), ['9.0.0.1:9211', '10.0.0.2:9211', '[fd00::10]:9211']),
    );
    assert.equal(await text(page, '#hosts-count'), '3 of 6 hosts');
    assert.deepEqual(await page.locator('#az-list button').allInnerTexts(), ['az-a · 3', 'az-b · 2', 'az-c · 1']);
    await page.getByRole('button', { name: 'az-a · 3' }).click();
    await eventually(async () => assert.deepEqual(await addresses(), ['9.0.0.1:9211', '[fd00::10]:9211']));
    assert.equal(await page.getByRole('button', { name: 'az-a · 3' }).getAttribute('aria-pressed'), 'true');
    await page.getByLabel('Search hosts').fill('I-EEE');
    await eventually(async () => assert.deepEqual(await addresses(), ['[fd00::10]:9211']));
    await page.getByLabel('Search hosts').fill('a1');
    await eventually(async () => assert.deepEqual(await addresses(), ['9.0.0.1:9211', '[fd00::10]:9211']));

    // All of it is in the URL, and a reload comes back to the same view.
    await eventually(async () =>
      assert.equal(new URL((page as Page).url()).hash, '#/service/web?q=a1&az=az-a&sort=revision'),
    );
    await page.reload();
    await eventually(async () => assert.deepEqual(await addresses(), ['9.0.0.1:9211', '[fd00::10]:9211']));
    assert.equal(await page.getByLabel('Search hosts').inputValue(), 'a1');
    assert.equal(await page.locator('[data-sort=revision]').getAttribute('aria-sort'), 'ascending');
    assert.equal(await page.getByRole('button', { name: 'az-a · 3' }).getAttribute('aria-pressed'), 'true');
    await screenshot(page, 'dashboard-search-sort');

    // A link with the choices opens straight on them, descending order included.
    await page.goto(`${server.url}/ui/#/service/web?sort=address&dir=desc`);
    await page.reload();
    await eventually(async () => assert.equal((await addresses())[0], '[fd00::10]:9211'));
    assert.equal(await page.locator('[data-sort=address]').getAttribute('aria-sort'), 'descending');
  });

  test('each host shows its status, and the status filter narrows the list and stays in the URL', async () => {
    server = await startRegistry();
    await registerAll(server.url, 'drain', [{ ip: '10.0.0.1' }, { ip: '10.0.0.2' }, { ip: '10.0.0.3' }]);
    await register(server.url, 'drain', { ip: '10.0.0.2', status: 'DRAINING' });
    const put = await fetch(`${server.url}/v1/registration/drain/10.0.0.3/status`, {
      method: 'PUT',
      body: new URLSearchParams({ status: 'OUT_OF_SERVICE' }),
    });
    assert.equal(put.status, 204);
    const statuses = async () => (await hostRows(page as Page)).map((row) => [row[0], row.at(-1)]);

    page = await newPage(browser);
    await page.goto(`${server.url}/ui/#/service/drain`);
    await eventually(async () =>
      assert.deepEqual(await statuses(), [
        ['10.0.0.1:9211', 'UP'],
        ['10.0.0.2:9211', 'DRAINING'],
        ['10.0.0.3:9211', 'OUT_OF_SERVICE'],
      ]),
    );
    await page.getByLabel('Filter hosts by status').selectOption('DRAINING');
    await eventually(async () => assert.deepEqual(await statuses(), [['10.0.0.2:9211', 'DRAINING']]));
    assert.equal(await text(page, '#hosts-count'), '1 of 3 hosts');
    await eventually(async () => assert.match(new URL((page as Page).url()).hash, /status=DRAINING/));
    await page.reload();
    await eventually(async () => assert.deepEqual(await statuses(), [['10.0.0.2:9211', 'DRAINING']]));
    assert.equal(await page.getByLabel('Filter hosts by status').inputValue(), 'DRAINING');

    // A status change shows at the next refresh.
    const cleared = await fetch(`${server.url}/v1/registration/drain/10.0.0.3/status`, { method: 'DELETE' });
    assert.equal(cleared.status, 204);
    await page.getByLabel('Filter hosts by status').selectOption('');
    await eventually(async () =>
      assert.deepEqual(await statuses(), [
        ['10.0.0.1:9211', 'UP'],
        ['10.0.0.2:9211', 'DRAINING'],
        ['10.0.0.3:9211', 'UP'],
      ]),
    );
  });

  test('with write credentials configured the page says it is read-only', async () => {
    server = await startRegistry({ env: { AUTH_ADMIN_PASSWORD: 'operators-only-please' } });
    page = await newPage(browser);
    await page.goto(`${server.url}/ui/`);
    await page.locator('#banner').waitFor({ state: 'visible' });
    assert.equal(await text(page, '#banner'), 'Writes on this registry need credentials. This dashboard is read-only.');
    assert.equal(
      await text(page, '#services-empty'),
      'No services yet. Services appear here when their hosts heartbeat.',
    );
  });
});
