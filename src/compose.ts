import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp } from './app.js';
import { systemClock, type Clock } from './clock.js';
import type { Config } from './config.js';
import { HostService, type RegistryStats } from './hosts/host-service.js';
import { StatsdStats } from './stats.js';
import { createStore } from './store/create-store.js';
import type { HostStore } from './store/host-store.js';

/** Everything one discovery process runs, wired together; `close` releases it in order. */
export interface Registry {
  readonly app: FastifyInstance;
  readonly hostService: HostService;
  readonly store: HostStore;
  close(): Promise<void>;
}

export interface ComposeOverrides {
  readonly clock?: Clock;
  readonly store?: HostStore;
  readonly stats?: RegistryStats & { close?(): Promise<void> };
}

/** The composition root: config -> store -> host service -> front ends. Tests pass overrides for time and storage. */
export async function composeRegistry(config: Config, log: Logger, overrides: ComposeOverrides = {}): Promise<Registry> {
  const store = overrides.store ?? (await createStore(config, log));
  const stats = overrides.stats ?? new StatsdStats({ ...config.statsd, log });
  const hostService = new HostService({
    store,
    clock: overrides.clock ?? systemClock,
    hostTtlSeconds: config.hostTtlSeconds,
    cacheType: config.cacheType,
    cacheTtlSeconds: config.cacheTtlSeconds,
    stats,
    log,
    autoIpAllowedRanges: config.autoIpAllowedRanges,
    trustedProxyHops: config.trustedProxyHops,
    staleReadMaxSeconds: config.staleReadMaxSeconds,
  });
  const app = await buildApp({
    hostService,
    log,
    applicationEnv: config.applicationEnv,
    debug: config.debug,
    bodyLimitBytes: config.bodyLimitBytes,
  });
  let closing: Promise<void> | undefined;
  return {
    app,
    hostService,
    store,
    close: () =>
      (closing ??= (async () => {
        await app.close();
        await store.close();
        await stats.close?.();
      })()),
  };
}
