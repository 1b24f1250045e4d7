import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { buildApp, type AppDependencies } from '../../src/app.js';
import { ManualClock } from '../../src/clock.js';
import type { AuthConfig } from '../../src/http/auth.js';
import { HostService } from '../../src/hosts/host-service.js';
import { ServiceDirectory } from '../../src/hosts/service-directory.js';
import { Metrics } from '../../src/metrics.js';
import { NO_STATS } from '../../src/stats.js';
import { MemoryHostStore } from '../../src/store/memory-host-store.js';

export const OPEN: AuthConfig = { passwords: {}, tokens: { read: [], register: [], admin: [] } };

/** The real app (every route, metrics, debug logging when asked), with `beforeRoutes` run on its root. */
export async function realApp(
  options: Pick<AppDependencies, 'beforeRoutes' | 'fastPaths'> & { auth?: AuthConfig; level?: string },
): Promise<{ app: FastifyInstance; close(): Promise<void> }> {
  const log = pino({ level: options.level ?? 'silent' });
  const clock = new ManualClock();
  const hostService = new HostService({
    store: new MemoryHostStore(),
    clock,
    hostTtlSeconds: 30,
    cacheType: 'null',
    cacheTtlSeconds: 30,
    stats: NO_STATS,
    log,
  });
  const serviceDirectory = new ServiceDirectory({ hostService, events: hostService.events, clock, log });
  const app = await buildApp({
    hostService,
    log,
    applicationEnv: 'test',
    debug: false,
    bodyLimitBytes: 4096,
    auth: options.auth ?? OPEN,
    autoIp: { allowedRanges: [], trustedProxyHops: 0 },
    serviceDirectory,
    metrics: new Metrics(),
    fastPaths: options.fastPaths,
    beforeRoutes: options.beforeRoutes,
  });
  return {
    app,
    close: async () => {
      await app.close();
      serviceDirectory.close();
    },
  };
}
