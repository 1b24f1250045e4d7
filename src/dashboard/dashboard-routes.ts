import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import compress from '@fastify/compress';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import Type from 'typebox';
import type { Clock } from '../clock.js';
import type { HostSnapshot } from '../hosts/host-lists.js';
import type { HostService } from '../hosts/host-service.js';
import { effectiveStatus, INSTANCE_STATUSES, parseCheckIn, sortedKeys, type Host } from '../hosts/model.js';
import { ErrorBody, NAME_MAX_LENGTH, NotModified, ServiceParams, SERVICES_LIMIT_MAX } from '../http/schemas.js';
import type { ServiceDirectory } from '../hosts/service-directory.js';
import type { Authorizer } from '../http/auth.js';
import { ifNoneMatchIncludes } from '../http/etag.js';
import type { ClientStatus } from '../xds/stream-server.js';

export interface DashboardRoutesOptions {
  readonly authorizer: Authorizer;
  readonly applicationEnv: string;
  readonly hostService: HostService;
  readonly serviceDirectory: ServiceDirectory;
  /** What the server panel shows about this process. */
  readonly server: ServerFacts;
  /** Folder of the page's files; DASHBOARD_STATIC_DIR unless a test says otherwise. */
  readonly staticDir?: string;
}

/** What this process is, for the server panel; every function is a read-only look at an object compose.ts built. */
export interface ServerFacts {
  readonly version: string;
  readonly clock: Clock;
  /** Epoch ms the registry was composed. */
  readonly startedAt: number;
  readonly xdsEnabled: boolean;
  /** The connected xDS streams (XdsStreamServer.clients). */
  readonly xdsClients: () => readonly ClientStatus[];
}

/**
 * The page's files, next to this module: the build (scripts/build.mjs) mirrors
 * `src/dashboard/static/` into `dist/src/dashboard/static/`, so the built server, and the
 * installed package, which carries only `dist/`, serve what was built with them.
 */
export const DASHBOARD_STATIC_DIR = fileURLToPath(new URL('./static/', import.meta.url));

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

/**
 * Everything from this origin only and nothing inline: the page builds markup from registry data
 * (service names, tags), so even a missed escape could not run script or load anything.
 */
const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

interface StaticFile {
  readonly body: Buffer;
  readonly contentType: string;
  readonly etag: string;
}

/**
 * The dashboard at `/ui/`: a few static files (plain HTML, CSS and a JS module, no build step)
 * and the page's own JSON under `/v1/ui/`: `config` (settings), `server` (the server panel),
 * `services` (the service list) and `services/:service/hosts` (one service's hosts in the form
 * the page draws them). The page has its own endpoints, rather than the public v1 ones, so that
 * its answers can be compressed: `@fastify/compress` is registered in this plugin's scope only,
 * because a global onSend hook would reach the v1 routes, whose hottest two bypass Fastify's
 * hooks through the fast paths (src/http/fast-paths.ts) and must stay as they are. The data is
 * the domain's (HostService, ServiceDirectory), under the same expiry rules as every read.
 *
 * A tiny route over a fixed set of files read once at start-up, rather than a static-file
 * plugin: there is no path to traverse and nothing to read from disk per request. Every route
 * needs the read role: the JSON is registry data, and the page itself, though it holds none, is
 * behind it too so that the browser asks for the credential when the page is opened and reuses it
 * for the API calls (a challenge first met by a script's fetch is handled unevenly).
 */
export const dashboardRoutes: FastifyPluginAsyncTypebox<DashboardRoutesOptions> = async (app, options) => {
  const files = loadStaticFiles(options.staticDir ?? DASHBOARD_STATIC_DIR);
  const { hostService, serviceDirectory, server } = options;

  // This plugin's scope only (it is not wrapped in fastify-plugin): see the comment above.
  await app.register(compress, {
    global: true,
    encodings: ['br', 'gzip'],
    threshold: COMPRESS_THRESHOLD_BYTES,
    globalDecompression: false,
  });

  const config = {
    env: options.applicationEnv,
    host_ttl_seconds: hostService.hostTtlSeconds,
    writes_protected: options.authorizer.writesProtected,
  };
  app.get(
    '/v1/ui/config',
    {
      config: { access: 'read' },
      schema: {
        summary: "The dashboard's settings: env, HOST_TTL, whether writes need a credential",
        operationId: 'getDashboardConfig',
        tags: ['dashboard'],
        response: {
          200: Type.Object({
            env: Type.String(),
            host_ttl_seconds: Type.Number({ description: 'HOST_TTL' }),
            writes_protected: Type.Boolean({ description: 'whether writes need a credential' }),
          }),
        },
      },
    },
    async (_request, reply) => reply.header('cache-control', 'no-cache').send(config),
  );

  app.get(
    '/v1/ui/server',
    {
      config: { access: 'read' },
      schema: {
        summary: "The dashboard's server panel: version, uptime, heartbeat rate, expiry protection, xDS clients",
        operationId: 'getDashboardServer',
        tags: ['dashboard'],
        response: { 200: ServerPanel },
      },
    },
    async (_request, reply) => {
      // Brings the totals up to date with local changes (from memory after the first build); a
      // storage failure leaves the last summary, which is still worth showing.
      await serviceDirectory.list({ limit: 1 }).catch(() => undefined);
      const now = server.clock.now();
      const protection = hostService.readouts.expiryProtectionStatus();
      const totals = serviceDirectory.totals();
      const clients = server.xdsClients();
      return reply.header('cache-control', 'no-store').send({
        version: server.version,
        env: options.applicationEnv,
        node_version: process.version,
        started_at: new Date(server.startedAt).toISOString(),
        uptime_seconds: Math.max(0, Math.floor((now - server.startedAt) / 1000)),
        heartbeats_last_minute: hostService.readouts.heartbeatsLastMinute(),
        services: totals.services,
        hosts: totals.hosts,
        host_ttl_seconds: hostService.hostTtlSeconds,
        expiry_protection: {
          enabled: protection.enabled,
          threshold: protection.threshold,
          min_hosts: protection.minHosts,
          max_seconds: protection.maxSeconds,
          protected_services: [...protection.protectedServices],
        },
        xds: {
          enabled: server.xdsEnabled,
          clients: clients.map((client) => ({
            stream_id: client.stream_id,
            kind: client.kind,
            peer: client.peer,
            connected_at: client.connected_at,
            node_id: client.node?.id ?? '',
            cluster: client.node?.cluster ?? '',
            user_agent: client.node?.user_agent ?? '',
            resources: client.resources.reduce((sum, type) => sum + type.resource_names.length, 0),
            up_to_date: client.resources.every((type) => type.up_to_date),
            nack_count: client.resources.reduce((sum, type) => sum + type.nack_count, 0),
          })),
        },
      });
    },
  );

  app.get(
    '/v1/ui/services',
    {
      config: { access: 'read' },
      schema: {
        summary: "The dashboard's service list: summaries by name, filtered, compressed",
        operationId: 'listDashboardServices',
        tags: ['dashboard'],
        querystring: DashboardServicesQuery,
        response: { 200: DashboardServiceList, 304: NotModified, 400: ErrorBody },
      },
    },
    async (request, reply) => {
      const { limit, filter } = request.query;
      const page = await serviceDirectory.list({ limit: limit ?? 500, filter: filter === '' ? undefined : filter });
      // The page is a function of the directory's version and the query, and the URL carries the query.
      const etag = `W/"${page.version}"`;
      return sendJson(request.headers['if-none-match'], reply, etag, () =>
        JSON.stringify({ services: page.services, total: page.total, more: page.nextAfter !== undefined }),
      );
    },
  );

  const hostsJson = new WeakMap<HostSnapshot, string>();
  // Stores that keep records in memory hand out the same host objects again: each encoded once.
  const hostJson = new WeakMap<Host, string>();
  const encodeOnce = (host: Host): string => {
    let json = hostJson.get(host);
    if (json === undefined) hostJson.set(host, (json = encodeHost(host)));
    return json;
  };
  const snapshotIds = new WeakMap<HostSnapshot, number>();
  let nextSnapshotId = 1;
  // Differs between processes, so an ETag from before a restart never matches.
  const epoch = createHash('sha256').update(`${process.pid}:${server.startedAt}:${Math.random()}`).digest('base64url');
  app.get(
    '/v1/ui/services/:service/hosts',
    {
      config: { access: 'read' },
      schema: {
        summary: "The dashboard's host list of a service: every live host with its check-in as epoch ms, compressed",
        operationId: 'listDashboardHosts',
        description:
          'The ETag names the exact list, check-ins included (a snapshot is shared while nothing changes), so an unchanged list answers 304.',
        tags: ['dashboard'],
        params: ServiceParams,
        response: { 200: DashboardHostList, 304: NotModified, 400: ErrorBody },
      },
    },
    async (request, reply) => {
      const { service } = request.params;
      const snapshot = await hostService.listByService(service);
      let id = snapshotIds.get(snapshot);
      if (id === undefined) snapshotIds.set(snapshot, (id = nextSnapshotId++));
      // The shared empty snapshot stands for every name without hosts: the URL tells them apart.
      const etag = `W/"${epoch.slice(0, 12)}.${id}"`;
      return sendJson(request.headers['if-none-match'], reply, etag, () => {
        let hosts = hostsJson.get(snapshot);
        if (hosts === undefined) {
          hosts = `[${snapshot.hosts.map(encodeOnce).join(',')}]`;
          hostsJson.set(snapshot, hosts);
        }
        return (
          `{"service":${JSON.stringify(service)},"now":${Math.round(server.clock.now())},` +
          `"host_ttl_seconds":${hostService.hostTtlSeconds},"protected_hosts":${snapshot.protectedHosts},` +
          `"stale_age_seconds":${snapshot.staleAgeSeconds ?? 'null'},"hosts":${hosts}}`
        );
      });
    },
  );

  // Relative, so the page also works behind a proxy that mounts discovery under a path prefix.
  app.get('/ui', { config: { access: 'read' }, schema: { hide: true } }, async (_request, reply) =>
    reply.redirect('ui/', 301),
  );

  app.get('/ui/', { config: { access: 'read' }, schema: { hide: true } }, async (request, reply) =>
    sendFile(request.headers['if-none-match'], reply, files.get('index.html')),
  );
  app.get(
    '/ui/:file',
    {
      config: { access: 'read' },
      schema: { hide: true, params: Type.Object({ file: Type.String({ maxLength: 64 }) }) },
    },
    async (request, reply) => sendFile(request.headers['if-none-match'], reply, files.get(request.params.file)),
  );

  /** The JSON `body()` makes, or 304 when `If-None-Match` names `etag`; the body is built only when sent. */
  function sendJson(ifNoneMatch: string | undefined, reply: FastifyReply, etag: string, body: () => string) {
    reply.header('etag', etag).header('cache-control', 'no-cache');
    if (ifNoneMatchIncludes(ifNoneMatch, etag)) return reply.code(304).send();
    return reply.header('content-type', 'application/json; charset=utf-8').send(body());
  }

  function sendFile(ifNoneMatch: string | undefined, reply: FastifyReply, file: StaticFile | undefined) {
    if (!file) return reply.callNotFound();
    reply
      .header('etag', file.etag)
      // Revalidated on every load (a 304 costs nothing), so a new release shows at once.
      .header('cache-control', 'no-cache')
      .header('content-security-policy', CONTENT_SECURITY_POLICY)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer');
    if (ifNoneMatchIncludes(ifNoneMatch, file.etag)) return reply.code(304).send();
    return reply.header('content-type', file.contentType).send(file.body);
  }
};

/**
 * Answers smaller than this are sent as they are: compressing a few hundred bytes costs more
 * than it saves. A service list or a host list of any size is well above it.
 */
const COMPRESS_THRESHOLD_BYTES = 1024;

/** A page of the service list the dashboard draws; as `GET /v1/services` takes them. */
const DashboardServicesQuery = Type.Object({
  limit: Type.Optional(
    Type.Integer({ minimum: 1, maximum: SERVICES_LIMIT_MAX, default: 500, description: 'most services listed' }),
  ),
  filter: Type.Optional(
    Type.String({ maxLength: NAME_MAX_LENGTH, description: 'only services whose name contains this, ignoring case' }),
  ),
});

const DashboardServiceList = Type.Object({
  services: Type.Array(
    Type.Object({
      service: Type.String(),
      hosts: Type.Integer(),
      revisions: Type.Integer(),
      service_repo_names: Type.Array(Type.String()),
      statuses: Type.Object(
        { DRAINING: Type.Integer(), OUT_OF_SERVICE: Type.Integer(), UP: Type.Integer() },
        { description: 'live hosts by effective status' },
      ),
    }),
  ),
  total: Type.Integer({ description: 'services matching the filter' }),
  more: Type.Boolean({ description: 'whether more services match than were listed' }),
});

const DashboardHostList = Type.Object({
  service: Type.String(),
  now: Type.Integer({ description: "the server's clock, epoch ms: ages are now - check_in_ms" }),
  host_ttl_seconds: Type.Number(),
  protected_hosts: Type.Integer({ description: 'hosts past HOST_TTL kept by expiry protection' }),
  stale_age_seconds: Type.Union([Type.Integer(), Type.Null()], {
    description: 'set while storage is unavailable: seconds since the list was read',
  }),
  hosts: Type.Array(
    Type.Object({
      ip_address: Type.String(),
      port: Type.Integer(),
      revision: Type.String(),
      service_repo_name: Type.String(),
      v: Type.String({
        description:
          'version of every field but the check-in: equal means unchanged, so the page re-derives only hosts whose v moved',
      }),
      check_in_ms: Type.Integer({ description: 'last heartbeat, epoch ms' }),
      tags: Type.Object({}, { additionalProperties: true }),
      status: Type.Union(
        INSTANCE_STATUSES.map((status) => Type.Literal(status)),
        { description: 'effective status: the dashboard lists every live host, whatever its status' },
      ),
    }),
  ),
});

const ServerPanel = Type.Object({
  version: Type.String({ description: "package.json's version" }),
  env: Type.String(),
  node_version: Type.String(),
  started_at: Type.String({ description: 'ISO 8601, when this process composed the registry' }),
  uptime_seconds: Type.Integer(),
  heartbeats_last_minute: Type.Integer({ description: 'heartbeats this process recorded in the last 60 s' }),
  services: Type.Integer({ description: 'live services, as last summarised' }),
  hosts: Type.Integer({ description: 'live hosts, as last summarised' }),
  host_ttl_seconds: Type.Number(),
  expiry_protection: Type.Object({
    enabled: Type.Boolean(),
    threshold: Type.Number(),
    min_hosts: Type.Integer(),
    max_seconds: Type.Number(),
    protected_services: Type.Array(Type.String(), { description: 'services whose hosts past HOST_TTL are kept now' }),
  }),
  xds: Type.Object({
    enabled: Type.Boolean(),
    clients: Type.Array(
      Type.Object({
        stream_id: Type.Integer(),
        kind: Type.String(),
        peer: Type.String(),
        connected_at: Type.String(),
        node_id: Type.String(),
        cluster: Type.String(),
        user_agent: Type.String(),
        resources: Type.Integer({ description: 'resources subscribed, every type together' }),
        up_to_date: Type.Boolean({ description: 'every type ACKed its last response' }),
        nack_count: Type.Integer(),
      }),
    ),
  }),
});

/**
 * One host as the dashboard draws it: the v1 fields less the service (the URL names it), its
 * effective `status` (the dashboard lists hosts of every status), `v`
 * (a version of those fields, so the page re-derives only hosts that changed: with 5,000 hosts
 * heartbeating, nearly every list differs from the last only in check-ins), and the check-in as
 * epoch milliseconds, so the page neither parses dates nor trusts its own clock (the body's
 * `now` is the server's).
 */
function encodeHost(host: Host): string {
  const fields =
    `"ip_address":${JSON.stringify(host.ip_address)},"port":${host.port},"revision":${JSON.stringify(host.revision)},` +
    `"service_repo_name":${JSON.stringify(host.service_repo_name)},"tags":${JSON.stringify(sortedKeys(host.tags))},` +
    `"status":"${effectiveStatus(host)}"`;
  const version = createHash('sha1').update(fields).digest('base64url').slice(0, HOST_VERSION_LENGTH);
  return `{${fields},"v":"${version}","check_in_ms":${Math.round(parseCheckIn(host.last_check_in))}}`;
}

/** 72 bits of SHA-1: two different records of one host sharing a version would take billions of changes. */
const HOST_VERSION_LENGTH = 12;

function loadStaticFiles(dir: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  for (const name of readdirSync(dir)) {
    const contentType = CONTENT_TYPES[path.extname(name)];
    if (contentType === undefined) continue;
    const body = readFileSync(path.join(dir, name));
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
    files.set(name, { body, contentType, etag });
  }
  if (!files.has('index.html')) throw new Error(`dashboard: no index.html in ${dir}`);
  return files;
}
