import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { register } from './registry.js';

/** What a person reads in the services table: one array of cell texts per row. */
export function serviceRows(page: Page): Promise<string[][]> {
  return page.$$eval('#services-body tr', (rows) =>
    rows.map((row) => [...row.querySelectorAll('td')].map((cell) => (cell.textContent ?? '').trim())),
  );
}

/** What a person reads in the hosts table: one array of cell texts per row. */
export function hostRows(page: Page): Promise<string[][]> {
  return page.$$eval('#hosts-body [role=row]', (rows) =>
    rows.map((row) => [...row.querySelectorAll('[role=cell]')].map((cell) => (cell.textContent ?? '').trim())),
  );
}

/** No browser task (refresh code, GC, layout) may take this long while 5,000 hosts refresh: 50 ms, three times over for a shared machine; the refresh tasks themselves are held to 50. */
export const LONG_TASK_LIMIT_MS = 150;

/** Elements in the page's document. */
export async function elementCount(page: Page): Promise<number> {
  return (await page.evaluate('document.getElementsByTagName("*").length')) as number;
}

export function text(page: Page, selector: string): Promise<string> {
  return page.locator(selector).innerText();
}

export async function registerAll(
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
