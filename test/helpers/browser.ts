import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

/** Debian's chromium package, which npm test's scripts/system-tools.mjs installs; no browser is downloaded. */
export const CHROMIUM_PATH = '/usr/bin/chromium';
/** Where screenshots go; git-ignored. */
export const ARTIFACTS_DIR = path.resolve('test-artifacts');
/** Every browser wait in the tests is bounded by this unless a test says otherwise. */
export const BROWSER_TIMEOUT_MS = 15_000;

/**
 * A cold Chromium start on a busy 2-core machine once took longer than 15 s in CI; starting is
 * given this long, and one more try, before a test fails on it.
 */
const LAUNCH_TIMEOUT_MS = 45_000;

/** A headless Chromium with the flags CI runs it with (no sandbox in containers, no background traffic). */
export async function launchBrowser(): Promise<Browser> {
  const launch = () =>
    chromium.launch({
      executablePath: CHROMIUM_PATH,
      timeout: LAUNCH_TIMEOUT_MS,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--no-first-run',
      ],
    });
  try {
    return await launch();
  } catch (error) {
    if ((error as Error).name !== 'TimeoutError') throw error;
    return launch();
  }
}

/** A fresh page (own cookies and cache) whose waits are all bounded. */
export async function newPage(browser: Browser, viewport = { width: 1280, height: 800 }): Promise<Page> {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.setDefaultTimeout(BROWSER_TIMEOUT_MS);
  page.setDefaultNavigationTimeout(BROWSER_TIMEOUT_MS);
  return page;
}

/** Saves a screenshot under test-artifacts/ and returns its path. */
export async function screenshot(page: Page, name: string, fullPage = false): Promise<string> {
  await mkdir(ARTIFACTS_DIR, { recursive: true });
  const file = path.join(ARTIFACTS_DIR, `${name}.png`);
  await page.screenshot({ path: file, fullPage });
  return file;
}

/**
 * Retries `assertion` every 50 ms until it passes, and throws its last failure after `timeoutMs`:
 * for what a live page shows after its next poll.
 */
export async function eventually(assertion: () => Promise<void>, timeoutMs = BROWSER_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await assertion();
      return;
    } catch (error) {
      if (Date.now() >= deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}
