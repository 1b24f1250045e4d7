import { networkInterfaces } from 'node:os';
import type { FastifyInstance } from 'fastify';
import ipaddr from 'ipaddr.js';
import type { Logger } from 'pino';
import { buildApp, type AppDependencies } from './app.js';
import { systemClock, type Clock } from './clock.js';
import { ConfigError, type Config } from './config.js';
import { Authorizer } from './http/auth.js';
import { ChangeFeed, hintSender } from './replication/change-feed.js';
import { OwnedExpiries } from './replication/owned-expiries.js';
import { ReadRetries, type Freshness } from './hosts/freshness.js';
import { HostEvents } from './hosts/host-events.js';
import { HostService } from './hosts/host-service.js';
import { checkStoredInstanceKeys, InstanceKeyMismatchError, PortKeyedStore } from './hosts/instance-keys.js';
import { ServiceDirectory, type ServiceTotals } from './hosts/service-directory.js';
import { Metrics } from './metrics.js';
import { Readiness } from './readiness.js';
import { fanOut, StatsdStats, type RegistryStats } from './stats.js';
import { instrumentStore } from './store/instrumented-host-store.js';
import { createStore, storeDescription } from './store/create-store.js';
import type { HostStore } from './hosts/host-store.js';
import { XdsGrpcServer } from './xds/grpc-server.js';
import { XdsSnapshotCache } from './xds/snapshot-cache.js';
import { XdsStreamServer } from './xds/stream-server.js';

/** While draining, connections that finish their last request are closed this soon after. */
const IDLE_SWEEP_MS = 50;

/** Everything one discovery process runs, wired together; `close` releases it in order. */
export interface Registry {
  readonly app: FastifyInstance;
  readonly hostService: HostService;
  readonly serviceDirectory: ServiceDirectory;
  readonly store: HostStore;
  /** How this replica learns of its peers' changes; absent with a store of one process or CHANGE_FEED=false. */
  readonly changeFeed: ChangeFeed | undefined;
  /** What `GET /readyz` reports; `startXds` and the caller's listen come first, then `markStarted`. */
  readonly readiness: Readiness;
  readonly xds: {
    readonly cache: XdsSnapshotCache;
    readonly streamServer: XdsStreamServer;
    /** Absent when `XDS_ENABLED=false`; not yet bound until `start` resolves. */
    readonly grpcServer: XdsGrpcServer | undefined;
  };
  /** Binds the xDS gRPC server (when enabled); resolves with its port. The HTTP app is listened on by the caller. */
  startXds(): Promise<number | undefined>;
  close(): Promise<void>;
}

export interface ComposeOverrides {
  readonly clock?: Clock;
  readonly store?: HostStore;
  readonly stats?: RegistryStats & { close?(): Promise<void> };
  /** Longest time between full re-reads of the services summary (tests shorten it). */
  readonly serviceRefreshIntervalMs?: number;
  /** Whether the hot GET and heartbeat are answered before Fastify (default: yes). */
  readonly fastPaths?: boolean;
  /** Readiness's storage probe interval in ms (tests shorten it). */
  readonly readinessProbeIntervalMs?: number;
  /** Run on the app's root before its routes (tests add hooks here, as a later change might). */
  readonly beforeRoutes?: AppDependencies['beforeRoutes'];
}

/**
 * The xDS gRPC port takes no credentials of its own: mutual TLS is its lock. With reads locked
 * on HTTP (AUTH_READ_*) but that port open, every watched service's endpoints are still one
 * stream away from anyone who can connect, so this says so at start-up. Undefined: nothing to say.
 */
export function xdsExposureWarning(config: Config): string | undefined {
  if (!config.xds.enabled || config.xds.tls?.ca !== undefined) return undefined;
  if (!new Authorizer(config.auth).isProtected('read')) return undefined;
  const transport = config.xds.tls ? 'TLS without client certificates' : 'plaintext';
  return (
    `read credentials (AUTH_READ_*) lock the HTTP API only: the xDS port ${config.xds.port} (${transport}) ` +
    "serves every service's endpoints to anyone who connects. Set XDS_TLS_CA_FILE (with XDS_TLS_CERT_FILE and " +
    'XDS_TLS_KEY_FILE) so only proxies with a certificate from that CA connect, or XDS_ENABLED=false.'
  );
}

/**
 * Writes (heartbeats, deletes, weights) need no credential until one is configured, as with the
 * original; on an address other hosts can reach, that lets anyone who can connect register,
 * re-weight and delete hosts. Undefined when writes are locked or only loopback can reach them.
 */
export function openWritesWarning(config: Config): string | undefined {
  if (new Authorizer(config.auth).isProtected('register')) return undefined;
  if (isLoopback(config.listenAddress)) return undefined;
  return (
    `writes are not authenticated and the HTTP port listens on ${config.listenAddress}:${config.port}: ` +
    'anyone who can connect can register, re-weight and delete hosts. Set AUTH_REGISTER_TOKENS and ' +
    'AUTH_ADMIN_TOKENS (or the _PASSWORD settings; docs/operations.md), or LISTEN_ADDRESS=127.0.0.1.'
  );
}

/**
 * Peers POST hints to this replica with PEER_TOKEN; with writes locked and no token set, every
 * hint is refused and peers see this replica's changes only at their next read of the log.
 */
export function peerTokenWarning(config: Config, followsFeed: boolean): string | undefined {
  if (!followsFeed || config.changeFeed.peerToken !== undefined) return undefined;
  if (!new Authorizer(config.auth).isProtected('register')) return undefined;
  return (
    'writes are locked but PEER_TOKEN is not set: change hints between replicas are refused, so changes ' +
    'reach other replicas only at their next read of the change log (CHANGE_FEED_INTERVAL_MS). Set PEER_TOKEN ' +
    'to a token listed in AUTH_REGISTER_TOKENS on every replica.'
  );
}

/**
 * This replica's base URL as peers reach it: PEER_URL, or the listening port at the address the
 * server is bound to when that is one address, else at this machine's first non-loopback IPv4
 * address. Undefined until the server listens.
 */
export function ownUrl(config: Config, app: FastifyInstance): string | undefined {
  if (config.changeFeed.peerUrl !== '') return config.changeFeed.peerUrl;
  const address = app.server.address();
  if (address === null || typeof address === 'string') return undefined;
  const host = reachableHost(address.address);
  return `${config.httpTls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
}

function reachableHost(boundAddress: string): string {
  if (boundAddress !== '0.0.0.0' && boundAddress !== '::') return boundAddress;
  for (const addresses of Object.values(networkInterfaces()))
    for (const address of addresses ?? []) if (address.family === 'IPv4' && !address.internal) return address.address;
  return '127.0.0.1';
}

function isLoopback(address: string): boolean {
  if (address === 'localhost') return true;
  try {
    return ipaddr.process(address).range() === 'loopback';
  } catch {
    return false;
  }
}

/** The composition root: config -> store -> host service -> front ends. Tests pass overrides for time and storage. */
export async function composeRegistry(
  config: Config,
  log: Logger,
  overrides: ComposeOverrides = {},
): Promise<Registry> {
  let xdsStreams = () => 0;
  let feedPeers = () => 0;
  let serviceTotals = (): ServiceTotals => ({
    services: 0,
    hosts: 0,
    hostsByStatus: { UP: 0, DRAINING: 0, OUT_OF_SERVICE: 0 },
  });
  const metrics = new Metrics({
    liveHosts: () => serviceTotals().hosts,
    liveHostsByStatus: () => serviceTotals().hostsByStatus,
    liveServices: () => serviceTotals().services,
    xdsStreams: () => xdsStreams(),
    feedPeers: () => feedPeers(),
  });
  const stored = overrides.store ?? (await createStore(config, log));
  try {
    await checkStoredInstanceKeys(stored, config.instanceKey, storeDescription(config), log);
  } catch (error) {
    await stored.close().catch(() => undefined);
    if (error instanceof InstanceKeyMismatchError) throw new ConfigError(error.message);
    throw error;
  }
  const store = instrumentStore(config.instanceKey === 'ip_port' ? new PortKeyedStore(stored) : stored, metrics);
  const statsd = overrides.stats ?? new StatsdStats({ ...config.statsd, log });
  const stats = fanOut(statsd, metrics);
  const clock = overrides.clock ?? systemClock;
  const startedAt = clock.now();
  // Replicas on one table follow the change feed instead of re-reading what they serve: the one
  // choice of how every kept view stays right (src/hosts/freshness.ts).
  const changeLog = config.changeFeed.enabled ? store.changeLog : undefined;
  const freshness: Freshness = { kind: changeLog ? 'feed' : 'poll', retries: new ReadRetries(log) };
  // The one publisher of what changed: the host lists (subscribed first, by HostService), the xDS
  // cache, the service directory and the change feed all hear of changes here.
  const events = new HostEvents(log);
  const hostService: HostService = new HostService({
    events,
    store,
    clock,
    hostTtlSeconds: config.hostTtlSeconds,
    instanceKey: config.instanceKey,
    heartbeatWriteIntervalSeconds: config.heartbeatWriteIntervalSeconds,
    cacheType: config.cacheType,
    cacheTtlSeconds: config.cacheTtlSeconds,
    stats,
    log,
    expiryProtection: config.expiryProtection,
    staleReadMaxSeconds: config.staleReadMaxSeconds,
    freshness,
    // Under the feed nobody re-reads a quiet service, so the replica that wrote a host's check-in
    // judges it when it is due.
    expiryOwner: changeLog
      ? new OwnedExpiries({ clock, onDue: (services) => hostService.expiry.judgeDue(services) })
      : undefined,
  });
  const xdsCache = new XdsSnapshotCache({
    hostService,
    events,
    clock,
    log,
    pollIntervalMs: config.xds.pollIntervalMs,
    wildcardPollIntervalMs: config.xds.wildcardPollIntervalMs,
    localityPriority: config.xds.localityPriority,
    freshness,
  });
  const serviceDirectory = new ServiceDirectory({
    hostService,
    events,
    clock,
    log,
    refreshIntervalMs: overrides.serviceRefreshIntervalMs,
    retries: freshness.retries,
  });
  // The feed asks for this replica's URL once the app (built below, with the feed's route) listens.
  const built: { app?: FastifyInstance } = {};
  const changeFeed = changeLog
    ? new ChangeFeed({
        changeLog,
        events,
        clock,
        log,
        intervalMs: config.changeFeed.intervalMs,
        hostLifetimeMs: hostService.hostLifetimeMs,
        ownUrl: () => (built.app ? ownUrl(config, built.app) : undefined),
        sendHint: hintSender(config.changeFeed.peerToken),
        observer: metrics,
        retries: freshness.retries,
        views: [hostService, xdsCache, serviceDirectory],
      })
    : undefined;
  if (changeFeed) feedPeers = () => changeFeed.peerIds().length;
  const peerWarning = peerTokenWarning(config, changeFeed !== undefined);
  if (peerWarning) log.warn({ fix: ['PEER_TOKEN'] }, peerWarning);
  const streamServer = new XdsStreamServer({ cache: xdsCache, log, stats });
  const xdsWarning = xdsExposureWarning(config);
  if (xdsWarning) log.warn({ fix: ['XDS_TLS_CA_FILE', 'XDS_ENABLED=false'] }, xdsWarning);
  const grpcServer = config.xds.enabled
    ? new XdsGrpcServer({
        streamServer,
        log,
        host: config.xds.listenAddress,
        port: config.xds.port,
        tls: config.xds.tls,
      })
    : undefined;
  serviceTotals = () => serviceDirectory.totals();
  xdsStreams = () => streamServer.clients().length;
  const readiness = new Readiness({
    probe: () => hostService.pingStorage(),
    probeIntervalMs: overrides.readinessProbeIntervalMs,
  });
  const httpApp = await buildApp({
    readiness,
    hostService,
    log,
    applicationEnv: config.applicationEnv,
    debug: config.debug,
    bodyLimitBytes: config.bodyLimitBytes,
    auth: config.auth,
    autoIp: { allowedRanges: config.autoIpAllowedRanges, trustedProxyHops: config.trustedProxyHops },
    tls: config.httpTls,
    xds: { cache: xdsCache, streamServer },
    serviceDirectory,
    metrics,
    fastPaths: overrides.fastPaths,
    beforeRoutes: overrides.beforeRoutes,
    accessLog: config.accessLog,
    server: { clock, startedAt, xdsEnabled: config.xds.enabled },
    changeFeed,
  });
  built.app = httpApp;
  changeFeed?.start();
  let closing: Promise<void> | undefined;
  return {
    app: httpApp,
    hostService,
    serviceDirectory,
    store,
    changeFeed,
    readiness,
    xds: { cache: xdsCache, streamServer, grpcServer },
    startXds: async () => grpcServer?.start(),
    close: () =>
      (closing ??= (async () => {
        // Load balancers see /readyz turn 503 and stop sending while everything still answers
        // (not after a failed start: nothing was sent traffic).
        const wasServing = readiness.phase === 'serving';
        readiness.markDraining();
        if (wasServing && config.drainSeconds > 0)
          await new Promise((resolve) => setTimeout(resolve, config.drainSeconds * 1000));
        // xDS first: its streams end cleanly so clients move to another replica while this one drains.
        streamServer.closeAll();
        await grpcServer?.close();
        xdsCache.close();
        // Node closes idle keep-alive connections once, when closing starts; a connection whose
        // request was still in flight then would hold the server open until its keep-alive timeout.
        const closeIdle = setInterval(() => httpApp.server.closeIdleConnections(), IDLE_SWEEP_MS);
        try {
          await httpApp.close();
        } finally {
          clearInterval(closeIdle);
        }
        // After the last write: its record is stored, then peers stop hinting this replica.
        await changeFeed?.close();
        hostService.close();
        serviceDirectory.close();
        freshness.retries.close();
        await store.close();
        await statsd.close?.();
      })()),
  };
}
