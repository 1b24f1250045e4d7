import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import Type from 'typebox';
import type { Authorizer } from '../http/auth.js';
import { ifNoneMatchIncludes } from '../http/etag.js';

export interface DashboardRoutesOptions {
  readonly authorizer: Authorizer;
  readonly applicationEnv: string;
  readonly hostTtlSeconds: number;
  /** Folder of the page's files; DASHBOARD_STATIC_DIR unless a test says otherwise. */
  readonly staticDir?: string;
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
 * and `GET /v1/ui/config`, the settings the page needs. The page reads only the public API
 * (`/v1/services`, `/v1/registration/:service`), so it shows what any client would see. A tiny
 * route over a fixed set of files read once at start-up, rather than a static-file plugin: there
 * is no path to traverse and nothing to read from disk per request. Every route needs the read
 * role: the config is the registry's settings, and the page itself, though it holds no registry
 * data, is behind it too so that the browser asks for the credential when the page is opened and
 * reuses it for the API calls (a challenge first met by a script's fetch is handled unevenly).
 */
export const dashboardRoutes: FastifyPluginAsyncTypebox<DashboardRoutesOptions> = async (app, options) => {
  const files = loadStaticFiles(options.staticDir ?? DASHBOARD_STATIC_DIR);

  const config = {
    env: options.applicationEnv,
    host_ttl_seconds: options.hostTtlSeconds,
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
