import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { eventually, launchBrowser, newPage, screenshot } from '../helpers/browser.js';
import { startRegistry, TAGS, type RunningRegistry } from '../helpers/registry.js';
import { elementCount, hostRows, LONG_TASK_LIMIT_MS, registerAll, text } from '../helpers/dashboard-page.js';

describe('dashboard with 5,000 hosts in headless Chromium', () => {
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

  test('5,000 hosts: a bounded DOM, no refresh blocking the page over 50 ms, compressed answers, and the last host one scroll away', async (t) => {
    server = await startRegistry();
    const url = server.url;
    const hosts = Array.from({ length: 5000 }, (_, index) => ({
      ip: `10.1.${Math.floor(index / 250)}.${(index % 250) + 1}`,
      revision: index % 2 === 0 ? 'old-4f1c' : 'new-9b2e',
      tags: { ...TAGS, az: `us-east-1${'abc'[index % 3]}`, instance_id: `i-${index.toString(16).padStart(8, '0')}` },
    }));
    await registerAll(url, 'big', hosts, 64);

    page = await newPage(browser);
    // Every task over 50 ms the page runs, from the first byte on.
    await page.addInitScript(`
      window.longTasks = [];
      new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) window.longTasks.push(entry.duration);
      }).observe({ type: 'longtask', buffered: true });
    `);
    const started = Date.now();
    await page.goto(`${url}/ui/#/service/big`);
    await page.locator('#hosts-body [role=row]').first().waitFor({ state: 'attached', timeout: 15_000 });
    const firstRenderMs = Date.now() - started;
    assert.equal(
      await text(page, '#service-summary'),
      '5,000 hosts · 2 revisions (deploy in progress) · HOST_TTL 600 s',
    );
    assert.deepEqual(await page.locator('#az-list button').allInnerTexts(), [
      'us-east-1a · 1,667',
      'us-east-1b · 1,667',
      'us-east-1c · 1,666',
    ]);
    // Numeric order: 10.1.0.10 after 10.1.0.9, not after 10.1.0.1.
    assert.deepEqual(
      (await hostRows(page)).slice(0, 11).map((row) => row[0]),
      Array.from({ length: 11 }, (_, index) => `10.1.0.${index + 1}:9211`),
    );

    // Hosts keep heartbeating and a deploy rolls (125 hosts to the new revision each round), so
    // every poll brings a new list of all 5,000, not a 304, with hosts that changed. Bounded in
    // count and time: at most 40 rounds, one every 250 ms, for at most 20 s.
    const loadStartedAt = Date.now();
    let round = 0;
    const heartbeats = (async () => {
      for (; round < 40 && Date.now() - loadStartedAt < 20_000; round++) {
        const slice = hosts.slice((round * 125) % 5000, ((round * 125) % 5000) + 125);
        await registerAll(
          url,
          'big',
          slice.map((host) => ({ ...host, revision: 'new-9b2e' })),
          16,
        );
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    })();
    const readRefreshes = () =>
      (page as Page).evaluate(() =>
        performance
          .getEntriesByName('dashboard:refresh')
          .map((entry) => ({ what: (entry as unknown as { detail: string }).detail, ms: entry.duration })),
      );
    const before = (await readRefreshes()).length;
    const longTasksBefore = await page.evaluate(
      () => (globalThis as unknown as { longTasks: number[] }).longTasks.length,
    );
    const fullRefreshes = async () =>
      (await readRefreshes()).slice(before).filter((entry) => entry.what === 'hosts').length;
    await eventually(async () => {
      const fresh = await fullRefreshes();
      assert.ok(fresh >= 5, `${fresh} full refreshes so far`);
    }, 25_000);
    await heartbeats;
    const tasks = (await readRefreshes()).slice(before);
    const longTasks = (
      await page.evaluate(
        (from) => (globalThis as unknown as { longTasks: number[] }).longTasks.slice(from),
        longTasksBefore,
      )
    ).map(Math.round);
    const nodes = await elementCount(page);
    const taskMs = tasks.map((entry) => entry.ms).sort((a, b) => a - b);
    const median = taskMs[Math.floor(taskMs.length / 2)] ?? 0;
    const slowest = tasks
      .sort((a, b) => b.ms - a.ms)
      .slice(0, 5)
      .map((entry) => `${entry.what} ${entry.ms.toFixed(1)}`);
    t.diagnostic(
      `5,000 hosts: first rows ${firstRenderMs} ms after navigation; ${await fullRefreshes()} full refreshes in ` +
        `${tasks.length} tasks, median ${median.toFixed(1)} ms, slowest ${slowest.join(', ')} ms; ` +
        `long tasks meanwhile: [${longTasks.join(', ')}] ms; ${nodes} DOM elements; ${round} heartbeat rounds`,
    );
    assert.ok(nodes < 3_000, `${nodes} DOM elements`);
    assert.ok((await page.locator('#hosts-body [role=row]').count()) < 100, 'only the rows in view are drawn');
    // What the issue asks: no refresh blocks the page over 50 ms. A refresh is split into tasks
    // (parse, prepare in slices, summary, order), each timed by the page itself: every one of them
    // is held to 50 ms outright (on a quiet machine the slowest takes about 12 ms, under load
    // average 14 about 25). The browser's own long-task entries also count work outside the
    // refresh code (GC, layout): none appears on a quiet machine, but the suites share two cores
    // and stretch such work to 70-100 ms, so those are held to three times 50 ms. The page
    // before this design stalled 320 ms per refresh on a quiet machine and seconds on a busy one.
    const slowestTask = taskMs.at(-1) ?? 0;
    assert.ok(slowestTask < 50, `the slowest refresh task took ${slowestTask.toFixed(1)} ms`);
    assert.ok(median < 50, `the median refresh task took ${median.toFixed(1)} ms`);
    assert.ok(
      longTasks.every((ms) => ms < LONG_TASK_LIMIT_MS),
      `long tasks while refreshing: [${longTasks.join(', ')}] ms`,
    );

    // The answers are compressed: what came over the wire against what it decoded to.
    const transfer = (await page.evaluate(`(() => {
      const entries = performance
        .getEntriesByType('resource')
        .filter((entry) => entry.name.includes('/v1/ui/services/big/hosts') && entry.decodedBodySize > 0);
      const last = entries.at(-1);
      return last ? { encoded: last.encodedBodySize, decoded: last.decodedBodySize } : undefined;
    })()`)) as { encoded: number; decoded: number } | undefined;
    assert.ok(transfer, 'the host list was fetched');
    t.diagnostic(`host list: ${transfer.decoded} bytes of JSON, ${transfer.encoded} bytes on the wire`);
    assert.ok(transfer.encoded * 5 < transfer.decoded, `${transfer.encoded} of ${transfer.decoded} bytes`);
    const encoding = await page.evaluate(`(async () => {
      const response = await fetch('../v1/ui/services/big/hosts', { cache: 'no-store' });
      await response.arrayBuffer();
      return response.headers.get('content-encoding');
    })()`);
    assert.ok(encoding === 'br' || encoding === 'gzip', `content-encoding ${encoding}`);

    // The last host is one scroll away, drawn when scrolled to.
    await page.locator('#hosts-viewport').evaluate((viewport) => {
      viewport.scrollTop = viewport.scrollHeight;
    });
    await eventually(async () => {
      const rows = await hostRows(page as Page);
      assert.equal(rows.at(-1)?.[0], '10.1.19.250:9211');
    }, 5_000);
    assert.equal(await page.locator('#hosts-body [role=row]').last().isVisible(), true);
    assert.ok((await elementCount(page)) < 3_000);

    // A search over all 5,000 answers at once.
    await page.getByLabel('Search hosts').fill('10.1.7.');
    await eventually(async () => assert.equal(await text(page as Page, '#hosts-count'), '250 of 5,000 hosts'));
    assert.equal((await hostRows(page))[0]?.[0], '10.1.7.1:9211');
    await screenshot(page, 'dashboard-5000-hosts');
  });
});
