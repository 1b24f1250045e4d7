import { readFileSync } from 'node:fs';

/**
 * The `version` of this package's package.json, read once. Resolved from this module, whose
 * built form lives at `dist/src/`, like the dashboard's static folder.
 */
export const PACKAGE_VERSION: string = (() => {
  const text = readFileSync(new URL('../../package.json', import.meta.url), 'utf8');
  const version = (JSON.parse(text) as { version?: unknown }).version;
  return typeof version === 'string' ? version : 'unknown';
})();
