import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DomainError } from '../errors.js';
import type { Log } from '../logger.js';
import type { AllowedMethods } from './allowed-methods.js';

export interface SchemaIssue {
  keyword: string;
  instancePath: string;
  message?: string;
  params: Record<string, unknown>;
}

/**
 * One place that turns every failure into `{"error": "..."}`: domain errors carry their status,
 * schema failures name the field, Fastify's own 4xx (body too large, bad content type, bad JSON)
 * keep theirs, and anything else is a 500 whose detail is shown only in debug mode.
 */
/** Requests between arrival and their handler in a context that parses bodies. */
const beforeHandler = new WeakSet<FastifyRequest>();

/**
 * Hooks for contexts that parse bodies, so the error handler can tell a parser's failure (the
 * request's fault: busboy throws plain errors on a malformed multipart body) from a handler's.
 * Kept off the body-less read path.
 */
export function trackBodyParsing(app: FastifyInstance): void {
  app.addHook('onRequest', function markBodyParsing(request, _reply, done) {
    beforeHandler.add(request);
    done();
  });
  app.addHook('preHandler', function markBodyParsed(request, _reply, done) {
    beforeHandler.delete(request);
    done();
  });
}

export function registerErrorHandling(
  app: FastifyInstance,
  options: { debug: boolean; allowedMethods?: AllowedMethods },
): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof DomainError) {
      const failure = describeFailure(error, options.debug, request.log);
      return reply.code(failure.statusCode).send(failure.body);
    }
    if (error.validation) {
      return reply
        .code(400)
        .send({ error: describeValidation(error.validation as SchemaIssue[], error.validationContext) });
    }
    const status = error.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      return reply.code(status).send({ error: error.message });
    }
    if (beforeHandler.has(request)) {
      return reply.code(400).send({ error: `Malformed request: ${error.message}` });
    }
    const failure = describeFailure(error, options.debug, request.log);
    return reply.code(failure.statusCode).send(failure.body);
  });

  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    const served = options.allowedMethods?.on(path) ?? [];
    // No route for the path, or one that serves this method and found nothing (a missing file): a 404.
    if (served.length === 0 || served.includes(request.method))
      return reply.code(404).send({ error: `Not found: ${request.method} ${path}` });
    // A known path: what the original's framework answered (the path's existence is no secret, the OpenAPI lists it).
    const allowed = [...served, 'OPTIONS'];
    reply.header('allow', allowed.join(', '));
    if (request.method === 'OPTIONS') return reply.code(200).send();
    return reply
      .code(405)
      .send({ error: `Method ${request.method} not allowed on ${path}; allowed: ${allowed.join(', ')}.` });
  });
}

/** A domain error's status and message, or a logged 500 whose detail is shown only in debug mode. */
export function describeFailure(
  error: unknown,
  debug: boolean,
  log: Log,
): { statusCode: number; body: Record<string, string> } {
  if (error instanceof DomainError) {
    if (error.statusCode >= 500) log.warn({ err: error }, error.message);
    return { statusCode: error.statusCode, body: { error: error.message } };
  }
  log.error({ err: error }, 'request failed');
  const body: Record<string, string> = { error: 'Internal server error' };
  if (debug) body.detail = error instanceof Error ? error.message : String(error);
  return { statusCode: 500, body };
}

export function describeValidation(issues: SchemaIssue[], context: string | undefined): string {
  const where = context === 'params' ? 'path parameter' : context === 'querystring' ? 'query parameter' : 'parameter';
  const required = issues.find((issue) => issue.keyword === 'required');
  if (required) return `Required ${where} '${String(required.params.missingProperty)}' is missing.`;
  const union = issues.find((issue) => issue.keyword === 'anyOf');
  const issue = union ?? issues[0];
  if (!issue) return `Invalid ${where}.`;
  const field = issue.instancePath.replace(/^\//, '').replaceAll('/', '.');
  const message = issue.keyword === 'anyOf' ? 'has the wrong type' : (issue.message ?? 'is not valid');
  if (field === '') return context === 'body' ? `Invalid request body: ${message}.` : `Invalid ${where}: ${message}.`;
  return `Invalid ${where} '${field}': ${message}.`;
}

/**
 * Fastify's own router errors (answered before any route or error handler runs) in the same
 * `{"error": ...}` shape as every other answer; the URL is quoted, never interpreted.
 */
export function answerFrameworkError(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const path = (request.raw.url ?? '').split('?')[0] ?? '';
  const quoted = JSON.stringify(path.length > 200 ? `${path.slice(0, 200)}…` : path);
  if (error.code === 'FST_ERR_BAD_URL') {
    reply.code(400).send({ error: `Invalid URL ${quoted}: a percent-escape in the path is not valid UTF-8.` });
  } else if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    reply
      .code(414)
      .send({ error: `URL too long: a path segment of ${quoted} is longer than any name the API accepts.` });
  } else {
    reply.log.error({ err: error }, 'router failed');
    reply.code(500).send({ error: 'Internal server error' });
  }
}

/**
 * While the server closes, requests still arriving on open connections are answered 503 with
 * `{"error": ...}` and `Connection: close` (Fastify's own return503OnClosing, which this replaces,
 * wrote a body of another shape), so clients retry elsewhere. Requests already in flight finish.
 */
export function refuseWhileClosing(app: FastifyInstance): void {
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  app.addHook('onRequest', function refuseWhileClosing(_request, reply, done) {
    if (!closing) return done();
    reply
      .code(503)
      .header('connection', 'close')
      .send({ error: 'Service unavailable: this server is shutting down; retry, another replica will answer.' });
  });
}
