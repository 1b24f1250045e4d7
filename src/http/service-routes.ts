import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import { InvalidInputError } from '../errors.js';
import { isName } from '../hosts/names.js';
import { ErrorBody, NotModified, ServicePage, ServicesQuery, SERVICES_LIMIT_DEFAULT } from './schemas.js';
import { ifNoneMatchIncludes } from './etag.js';
import type { ServiceDirectory } from '../hosts/service-directory.js';

export interface ServiceRoutesOptions {
  readonly serviceDirectory: ServiceDirectory;
  readonly applicationEnv: string;
}

/**
 * `GET /v1/services`: a page of services with their live host counts, from the domain's
 * in-memory directory (never a storage scan per call). Answers
 * `{"env", "next_cursor", "services": [{"hosts", "revisions", "service", "service_repo_names", "statuses"}], "total"}`
 * with a weak ETag; an unchanged page answers 304 to `If-None-Match`.
 */
export const serviceRoutes: FastifyPluginAsyncTypebox<ServiceRoutesOptions> = async (
  app,
  { serviceDirectory, applicationEnv },
) => {
  const envJson = JSON.stringify(applicationEnv);

  app.get(
    '/v1/services',
    {
      config: { access: 'read' },
      schema: {
        summary: 'Every service with its live host count, revisions and repos, paged',
        operationId: 'listServices',
        tags: ['services'],
        querystring: ServicesQuery,
        response: { 200: ServicePage, 304: NotModified, 400: ErrorBody },
      },
    },
    async (request, reply) => {
      const { limit, prefix, filter, cursor } = request.query;
      const page = await serviceDirectory.list({
        // Validation has filled in the default; the fallback only satisfies the type.
        limit: limit ?? SERVICES_LIMIT_DEFAULT,
        prefix,
        filter,
        after: cursor === undefined ? undefined : decodeCursor(cursor),
      });
      // The page is a function of the directory's version and the query, and the URL carries the query.
      const etag = `W/"${page.version}"`;
      reply.header('etag', etag).header('cache-control', 'no-cache');
      if (ifNoneMatchIncludes(request.headers['if-none-match'], etag)) return reply.code(304).send(null);
      const services = page.services.map(
        (summary) =>
          `{"hosts":${summary.hosts},"revisions":${summary.revisions},"service":${JSON.stringify(summary.service)},` +
          `"service_repo_names":${JSON.stringify(summary.service_repo_names)},` +
          `"statuses":{"DRAINING":${summary.statuses.DRAINING},"OUT_OF_SERVICE":${summary.statuses.OUT_OF_SERVICE},"UP":${summary.statuses.UP}}}`,
      );
      const nextCursor = page.nextAfter === undefined ? 'null' : JSON.stringify(encodeCursor(page.nextAfter));
      // Encoded here, in ServicePage's shape: Fastify sends a string as it is, unserialised.
      return (reply as FastifyReply)
        .header('content-type', 'application/json')
        .send(
          `{"env":${envJson},"next_cursor":${nextCursor},"services":[${services.join(',')}],"total":${page.total}}`,
        );
    },
  );
};

/** Opaque to clients (it may change form), URL-safe, and any service name fits. */
export function encodeCursor(name: string): string {
  return Buffer.from(name, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): string {
  const name = Buffer.from(cursor, 'base64url').toString('utf8');
  // Round-tripping rejects what is not base64url of UTF-8; what is no service name cannot be a cursor.
  if (encodeCursor(name) !== cursor || !isName(name)) {
    throw new InvalidInputError("Invalid query parameter 'cursor': pass the next_cursor of a previous page.");
  }
  return name;
}
