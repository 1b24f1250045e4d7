import assert from 'node:assert/strict';
import { copyFile, mkdir } from 'node:fs/promises';
import { after, afterEach, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { ManualClock } from '../../src/clock.js';
import { eventually, launchBrowser, newPage, screenshot } from '../helpers/browser.js';
import { register, startRegistry, TAGS, type RunningRegistry } from '../helpers/registry.js';

/** What a person reads in the services table: one array of cell texts per row. */
function serviceRows(page: Page): Promise<string[][]> {
  return page.$$eval('#services-body tr', (rows) =>
    rows.map((row) => [...row.querySelectorAll('td')].map((cell) => (cell.textContent ?? '').trim())),
  );
}

/** What a person reads in the hosts table: one array of cell texts per row. */
function hostRows(page: Page): Promise<string[][]> {
  return page.$$eval('#hosts-body [role=row]', (rows) =>
    rows.map((row) => [...row.querySelectorAll('[role=cell]')].map((cell) => (cell.textContent ?? '').trim())),
  );
}

function text(page: Page, selector: string): Promise<string> {
  return page.locator(selector).innerText();
}

async function registerAll(
  url: string,
  service: string,
  hosts: Array<Record<string, string | number | object>>,
  concurrency = 32,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < hosts.length) {
      const fields = hosts[next++] as Record<string, string | number | object>;
      const response = await register(url, service, fields);
      assert.equal(response.status, 200, await response.text());
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

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
        ...(host.canary ? { canary: true } : {}),
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

    const rows = await hostRows(page);
    assert.deepEqual(
      rows.map((row) => row.slice(0, 5)),
      [
        ['10.0.4.11:8443', 'eu-west-1a / eu-west-1', '7d3f9a2', '—', '—'],
        ['10.0.4.12:8443', 'eu-west-1b / eu-west-1', '7d3f9a2', '—', '—'],
        ['10.0.4.13:8443', 'eu-west-1c / eu-west-1', '7d3f9a2', '—', '—'],
        ['10.0.4.14:8443', 'eu-west-1a / eu-west-1', '7d3f9a2', '—', '—'],
        ['10.0.4.15:8443', 'eu-west-1b / eu-west-1', '7d3f9a2', '—', '—'],
        ['10.0.4.16:8443', 'eu-west-1c / eu-west-1', 'c41e08b', '5', 'canary'],
        ['10.0.4.17:8443', 'eu-west-1a / eu-west-1', 'c41e08b', '—', '—'],
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
    assert.match(rows[4]?.[5] ?? '', /^9 min \d+ s ago$/);
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

  test('a service of 5,000 hosts renders within a bounded time and scrolls to its last host', async (t) => {
    server = await startRegistry();
    const hosts = Array.from({ length: 5000 }, (_, index) => ({
      ip: `10.1.${Math.floor(index / 250)}.${(index % 250) + 1}`,
      revision: index % 2 === 0 ? 'old-4f1c' : 'new-9b2e',
    }));
    await registerAll(server.url, 'big', hosts, 64);

    page = await newPage(browser);
    const started = Date.now();
    await page.goto(`${server.url}/ui/#/service/big`);
    await page.locator('#hosts-body [role=row]').nth(4999).waitFor({ state: 'attached', timeout: 15_000 });
    const renderMs = Date.now() - started;
    assert.equal(await page.locator('#hosts-body [role=row]').count(), 5000);
    t.diagnostic(`5,000 hosts on screen ${renderMs} ms after navigation`);
    assert.ok(renderMs < 8_000, `took ${renderMs} ms`);
    assert.equal(
      await text(page, '#service-summary'),
      '5,000 hosts · 2 revisions (deploy in progress) · HOST_TTL 600 s',
    );
    assert.deepEqual(await page.locator('#revision-list li').allInnerTexts(), [
      'new-9b2e · 2,500 hosts (50%)',
      'old-4f1c · 2,500 hosts (50%)',
    ]);

    // A poll that finds nothing changed does not rebuild the rows: the same elements stay.
    await page
      .locator('#hosts-body [role=row]')
      .first()
      .evaluate((row) => row.setAttribute('data-seen', '1'));
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    assert.equal(await page.locator('#hosts-body [data-seen]').count(), 1);

    const last = page.locator('#hosts-body [role=row]').last();
    await last.scrollIntoViewIfNeeded();
    // Rows off screen are not rendered (content-visibility) until scrolled to, which takes a frame.
    await eventually(
      async () => assert.equal((await last.locator('[role=cell]').first().innerText()).trim(), '10.1.9.99:9211'),
      5_000,
    );
    assert.equal(await last.isVisible(), true);
    await screenshot(page, 'dashboard-5000-hosts');
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
