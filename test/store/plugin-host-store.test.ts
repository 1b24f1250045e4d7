import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import { ConfigError, loadConfig } from '../../src/config.js';
import { createStore } from '../../src/store/create-store.js';
import { hostStoreContract } from '../contract/host-store.contract.js';
import { tempDir } from '../helpers/temp-dir.js';

/** A storage plugin as a user would write one: plain JavaScript, no imports from discovery. */
const MAP_PLUGIN = `
export function createStore({ config }) {
  const hosts = new Map();
  const key = (service, ip) => service + '\\u0000' + ip;
  const mergeTags = (a, b) => Object.assign(Object.create(null), a, b);
  const plain = (tags) => JSON.parse(JSON.stringify(tags));
  return {
    pluginSawDir: config.applicationDir,
    async heartbeat(hb) {
      const previous = hosts.get(key(hb.service, hb.ip_address));
      const current = { ...hb, tags: plain(previous ? mergeTags(previous.tags, hb.tags) : hb.tags) };
      if (previous?.status_override !== undefined) current.status_override = previous.status_override;
      hosts.set(key(hb.service, hb.ip_address), current);
      return { previous, current };
    },
    async get(service, ip) { return hosts.get(key(service, ip)); },
    async listByService(service) { return { hosts: [...hosts.values()].filter((h) => h.service === service) }; },
    async listByRepo(repo) { return [...hosts.values()].filter((h) => repo !== '' && h.service_repo_name === repo); },
    async listServices() { return [...new Set([...hosts.values()].map((h) => h.service))]; },
    async delete(service, ip) { const h = hosts.get(key(service, ip)); hosts.delete(key(service, ip)); return h; },
    async deleteIfCheckInIs(service, ip, at) {
      const h = hosts.get(key(service, ip));
      if (!h || h.last_check_in !== at) return false;
      hosts.delete(key(service, ip));
      return true;
    },
    async updateTags(service, ip, tags) {
      const h = hosts.get(key(service, ip));
      if (!h) return undefined;
      const updated = { ...h, tags: plain(mergeTags(h.tags, tags)) };
      hosts.set(key(service, ip), updated);
      return updated;
    },
    async setStatusOverride(service, ip, status) {
      const h = hosts.get(key(service, ip));
      if (!h) return undefined;
      const { status_override, ...updated } = h;
      if (status !== undefined) updated.status_override = status;
      hosts.set(key(service, ip), updated);
      return updated;
    },
    async close() {},
  };
}
`;

async function pluginDir(name: string, files: Record<string, string>) {
  const dir = await tempDir();
  const folder = path.join(dir.path, 'plugins', name);
  await mkdir(folder, { recursive: true });
  for (const [file, text] of Object.entries(files)) await writeFile(path.join(folder, file), text);
  return dir;
}

const log = pino({ level: 'silent' });

hostStoreContract('plugin loaded from APPLICATION_DIR/plugins', {
  async open() {
    const dir = await pluginDir('mapstore', { 'index.mjs': MAP_PLUGIN });
    const store = await createStore(loadConfig({ BACKEND_STORAGE: 'mapstore', APPLICATION_DIR: dir.path }), log);
    return {
      store,
      dispose: async () => {
        await store.close();
        await dir.remove();
      },
    };
  },
});

describe('plugin loading', () => {
  test('the plugin receives the settings and is found through package.json main', async () => {
    const dir = await pluginDir('viamain', { 'package.json': '{"main": "lib/store.mjs"}' });
    await mkdir(path.join(dir.path, 'plugins', 'viamain', 'lib'));
    await writeFile(path.join(dir.path, 'plugins', 'viamain', 'lib', 'store.mjs'), MAP_PLUGIN);
    const store = (await createStore(
      loadConfig({ BACKEND_STORAGE: 'viamain', APPLICATION_DIR: dir.path }),
      log,
    )) as unknown as { pluginSawDir: string };
    assert.equal(store.pluginSawDir, dir.path);
    await dir.remove();
  });

  test('a missing plugin folder stops start-up with a clear error', async () => {
    const dir = await tempDir();
    await assert.rejects(
      createStore(loadConfig({ BACKEND_STORAGE: 'absent', APPLICATION_DIR: dir.path }), log),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.match(error.message, /BACKEND_STORAGE="absent"/);
        return true;
      },
    );
    await dir.remove();
  });

  test('a plugin missing interface methods is refused, naming them', async () => {
    const dir = await pluginDir('partial', {
      'index.js': 'export default () => ({ async get() {}, async close() {} });',
    });
    await writeFile(path.join(dir.path, 'plugins', 'partial', 'package.json'), '{"type": "module"}');
    await assert.rejects(
      createStore(loadConfig({ BACKEND_STORAGE: 'partial', APPLICATION_DIR: dir.path }), log),
      /missing heartbeat, listByService/,
    );
    await dir.remove();
  });
});
