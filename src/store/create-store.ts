import { access, readFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConfigError } from '../errors.js';
import type { Log } from '../logger.js';
import { lockApplicationDir } from './directory-lock.js';
import { FileHostStore } from './file-host-store.js';
import { HOST_STORE_METHODS, type HostStore } from '../hosts/host-store.js';
import { MemoryHostStore } from './memory-host-store.js';
import type { DynamoDbStoreSettings } from './dynamodb/create-dynamodb-store.js';

/**
 * What opening a store needs of the validated settings. compose.ts passes config.ts's whole
 * `Config`, so a plugin still receives every setting; this names the part the stores read.
 */
export interface StoreSettings extends DynamoDbStoreSettings {
  /** `DynamoDB`, `InMemory`, `InFile`, or the name of a plugin under `<applicationDir>/plugins/`. */
  readonly backendStorage: string;
}

/** What a plugin module receives: the validated settings and a logger. */
export interface PluginStoreContext {
  readonly config: StoreSettings;
  readonly log: Log;
}

/** Opens the backend `config.backendStorage` names. */
export async function createStore(config: StoreSettings, log: Log): Promise<HostStore> {
  switch (config.backendStorage) {
    case 'InMemory':
      return new MemoryHostStore();
    case 'InFile': {
      // Two processes appending to one journal would interleave and lose each other's writes.
      const lock = await lockApplicationDir(config.applicationDir, log);
      try {
        return await FileHostStore.open({
          directory: path.join(config.applicationDir, 'data', 'infile'),
          log,
          onClose: () => lock.release(),
        });
      } catch (error) {
        await lock.release();
        throw error;
      }
    }
    case 'DynamoDB': {
      const { createDynamoDbStore } = await import('./dynamodb/create-dynamodb-store.js');
      return createDynamoDbStore(config, log);
    }
    default:
      return loadPluginStore(config.backendStorage, { config, log });
  }
}

/**
 * Loads `<APPLICATION_DIR>/plugins/<name>/`: its package.json `main`, else `index.js` or
 * `index.mjs`. The module exports `createStore(context)` (named or default), which returns,
 * or resolves to, an object with every HostStore method.
 */
export async function loadPluginStore(name: string, context: PluginStoreContext): Promise<HostStore> {
  const folder = path.join(context.config.applicationDir, 'plugins', name);
  const entry = await findEntry(folder);
  if (!entry) {
    throw new ConfigError(
      `invalid setting BACKEND_STORAGE=${JSON.stringify(name)}: expected DynamoDB, InMemory, InFile, or a plugin folder ${folder} with index.js, index.mjs or a package.json main`,
    );
  }
  const module = (await import(pathToFileURL(entry).href)) as { createStore?: unknown; default?: unknown };
  const factory = typeof module.createStore === 'function' ? module.createStore : module.default;
  if (typeof factory !== 'function') {
    throw new ConfigError(`storage plugin ${name} (${entry}) must export a function createStore(context)`);
  }
  const store = (await factory(context)) as Partial<HostStore> | undefined;
  const missing = HOST_STORE_METHODS.filter((method) => typeof store?.[method] !== 'function');
  if (missing.length > 0) {
    throw new ConfigError(
      `storage plugin ${name} does not implement the storage interface: missing ${missing.join(', ')}`,
    );
  }
  return store as HostStore;
}

async function findEntry(folder: string): Promise<string | undefined> {
  const candidates: string[] = [];
  try {
    const manifest = JSON.parse(await readFile(path.join(folder, 'package.json'), 'utf8')) as { main?: string };
    if (manifest.main) candidates.push(path.join(folder, manifest.main));
  } catch {
    // no package.json: fall back to index files
  }
  candidates.push(path.join(folder, 'index.js'), path.join(folder, 'index.mjs'));
  for (const candidate of candidates) {
    try {
      await access(candidate);
      return candidate;
    } catch {
      // try the next one
    }
  }
  return undefined;
}

/** Where `config` keeps its records, in the words a start-up message uses. */
export function storeDescription(config: StoreSettings): string {
  switch (config.backendStorage) {
    case 'InMemory':
      return 'the InMemory store';
    case 'InFile':
      return `the InFile store in ${path.join(config.applicationDir, 'data', 'infile')}`;
    case 'DynamoDB':
      return `the DynamoDB table ${config.dynamodb.tableHosts}`;
    default:
      return `the storage plugin ${config.backendStorage}`;
  }
}
