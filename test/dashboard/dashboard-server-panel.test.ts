import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { Browser, Page } from 'playwright-core';
import { ManualClock } from '../../src/clock.js';
import { TYPE_URL } from '../../src/xds/protos.js';
import { RawXdsStream } from '../helpers/ads-client.js';
import { eventually, launchBrowser, newPage, screenshot } from '../helpers/browser.js';
import { register, startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { text } from '../helpers/dashboard-page.js';

describe('dashboard server panel in headless Chromium', () => {
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

  test('the server panel shows version, uptime, heartbeats per minute, expiry protection and xDS clients', async () => {
    const clock = new ManualClock(Date.now());
    server = await startRegistry({
      clock,
      env: {
        HOST_TTL: '10',
        EXPIRY_PROTECTION: 'true',
        EXPIRY_PROTECTION_MIN_HOSTS: '3',
        XDS_PORT: '0',
        XDS_LISTEN_ADDRESS: '127.0.0.1',
      },
    });
    const xdsPort = await server.registry.startXds();
    for (const ip of ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4'])
      assert.equal((await register(server.url, 'web', { ip })).status, 200);

    page = await newPage(browser);
    await page.goto(`${server.url}/ui/`);
    await eventually(async () => assert.equal(await text(page as Page, '#server-heartbeats'), '4'));
    assert.equal(await text(page, '#server-version'), `0.1.0 (Node.js ${process.version})`);
    assert.match(await text(page, '#server-uptime'), /^\d+ s$/);
    assert.equal(await text(page, '#server-totals'), '1 service · 4 hosts');
    assert.match(await text(page, '#server-protection'), /^armed \(more than 50% of a service's hosts/);
    assert.equal(await text(page, '#server-xds'), '0 clients');
    assert.equal(await page.locator('#xds-clients').isVisible(), false);

    // An Envoy connects and asks for the service's endpoints.
    const client = new grpc.Client(`127.0.0.1:${xdsPort}`, grpc.credentials.createInsecure());
    const stream = new RawXdsStream(client);
    try {
      stream.send({
        node: { id: 'envoy-edge-7', cluster: 'edge' },
        type_url: TYPE_URL.clusterLoadAssignment,
        resource_names: ['web'],
      });
      stream.ack(await stream.next(), ['web']);
      await eventually(async () => assert.equal(await text(page as Page, '#server-xds'), '1 client'));
      await eventually(async () => {
        const cells = await (page as Page).locator('#xds-clients-body td').allInnerTexts();
        assert.deepEqual(
          [cells[0], cells[1], cells[2], cells[4], cells[5]],
          ['envoy-edge-7', 'edge', 'ADS', '1', 'up to date'],
        );
      });

      // Three of four hosts stop heartbeating at once: protection holds them, and the panel says so.
      clock.advance(6_000);
      assert.equal((await register(server.url, 'web', { ip: '10.0.0.4' })).status, 200);
      clock.advance(6_000);
      await fetch(`${server.url}/v1/registration/web`);
      await eventually(async () => assert.equal(await text(page as Page, '#server-protection'), 'ACTIVE for web'));
      // Heartbeats older than a minute no longer count.
      clock.advance(61_000);
      await eventually(async () => assert.equal(await text(page as Page, '#server-heartbeats'), '0'));
      await screenshot(page, 'dashboard-server-panel');
    } finally {
      stream.close();
      client.close();
    }
  });
});
