import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { FastifyBaseLogger } from 'fastify';
import type { HostService, HostSnapshot } from '../hosts/host-service.js';
import type { RegistrationBody } from '../hosts/schemas.js';
import { NAME_MAX_LENGTH } from '../hosts/schemas.js';
import type { Metrics } from '../metrics.js';
import type { Role } from '../config.js';
import type { Authorizer } from './auth.js';
import { clientAddress } from './client-address.js';
import { describeFailure, describeValidation } from './error-handler.js';
import { parseForm } from './form-body.js';
import { hostListHeaders, ifNoneMatchIncludes, type HostListEncoder } from './host-list-response.js';
import type { RequestValidation } from './request-validation.js';
import type { RoutePolicy } from './route-policy.js';

const PREFIX = '/v1/registration/';
/** The route template the answers are counted under, as Fastify names it. */
const ROUTE = '/v1/registration/:service';
const FORM = 'application/x-www-form-urlencoded';
const JSON_UTF8 = 'application/json; charset=utf-8';
// A string body goes out with the headers in one write; a Buffer would make it a two-part writev.
const EMPTY_OBJECT = '{}';
const EMPTY_OBJECT_LENGTH = String(Buffer.byteLength(EMPTY_OBJECT));
/**
 * Names taken as they arrive: printable ASCII without the characters that routing would treat
 * specially (`/ ? # ;`) or decode (`%`). Anything else is Fastify's to route, decode and validate.
 */
const PLAIN_NAME = new RegExp(`^[^/?#;%\\x00-\\x20\\x7f-\\uffff]{1,${NAME_MAX_LENGTH}}$`);

export interface FastPathsOptions {
  readonly hostService: HostService;
  readonly authorizer: Authorizer;
  /** Where the two routes' declared access is read from (see `takeAccessFromRoutes`). */
  readonly policy: RoutePolicy;
  readonly encoder: HostListEncoder;
  readonly validation: RequestValidation;
  readonly bodyLimitBytes: number;
  readonly log: FastifyBaseLogger;
  /** Write a debug line per request, as the Fastify hook does at debug level. */
  readonly logRequests: boolean;
  readonly debug: boolean;
  readonly metrics?: Metrics;
}

interface PreparedHeaders {
  readonly etag: string;
  /** ETag and the expiry-protection and stale markers: a 304's headers. */
  readonly notModified: string[];
  /** The same with content type and length: a 200's headers, made on the first 200. */
  ok: string[] | undefined;
}

/**
 * The two calls a fleet makes thousands of times a second, answered from the server's request
 * event before Fastify: a proxy's `GET /v1/registration/:service` (memoised bytes) and a host's
 * form heartbeat `POST /v1/registration/:service`. For these, Fastify's routing, hook runner,
 * body pipeline and reply path cost more than the work itself.
 *
 * Only the plain, authorised request is taken, and it gets what the Fastify route would give:
 * the same domain calls, the same compiled body check and form parser, the same error texts,
 * status codes, headers, metrics and debug lines. Anything else (a name needing decoding or
 * refused by the schema, another content type, a chunked, empty or over-limit body, a missing
 * or weak credential, HEAD, a closing server) is left to Fastify, whose routes stay the
 * reference. Which credential each needs is the one its Fastify route declares (RoutePolicy),
 * read once every route is registered; until then every request is left to Fastify.
 */
export class FastPaths {
  /** The role a host-list GET must prove; undefined: none. */
  private hostListRole: Role | undefined;
  /** The role a heartbeat must prove; undefined: none. */
  private heartbeatRole: Role | undefined;
  /** False until the routes' access is known, and again once the server is closing. */
  private serving = false;
  private closing = false;
  private readonly preparedHeaders = new WeakMap<HostSnapshot, PreparedHeaders>();
  private pendingAnswers: Array<{ response: ServerResponse; answer: () => void }> = [];
  private flushScheduled = false;

  constructor(private readonly options: FastPathsOptions) {}

  /**
   * Reads the access `GET` and `POST /v1/registration/:service` declare and starts serving.
   * Called once every route is registered (the app's onReady); throws, failing start-up, when
   * either route is missing.
   */
  takeAccessFromRoutes(): void {
    this.hostListRole = this.options.policy.credentialNeeded('GET', ROUTE);
    this.heartbeatRole = this.options.policy.credentialNeeded('POST', ROUTE);
    this.serving = !this.closing;
  }

  /** From now on every request goes to Fastify, which answers 503 while closing. */
  stopServing(): void {
    this.closing = true;
    this.serving = false;
  }

  /** Takes the request and answers it (true), or leaves it untouched for Fastify (false). */
  tryServe(request: IncomingMessage, response: ServerResponse): boolean {
    if (!this.serving) return false;
    const url = request.url;
    if (url === undefined || !url.startsWith(PREFIX)) return false;
    const service = url.slice(PREFIX.length);
    if (service === 'repo' || !PLAIN_NAME.test(service)) return false;
    if (request.method === 'GET') return this.serveHostList(request, response, service);
    if (request.method === 'POST') return this.serveHeartbeat(request, response, service);
    return false;
  }

  private serveHostList(request: IncomingMessage, response: ServerResponse, service: string): boolean {
    const role = this.hostListRole;
    if (role !== undefined && !this.options.authorizer.permits(role, request.headers.authorization)) return false;
    const startedAt = performance.now();
    const known = this.options.hostService.knownListByService(service);
    if (known) {
      this.answerSoon(response, () => this.answerHostList(request, response, service, known, startedAt));
      return true;
    }
    this.options.hostService.listByService(service).then(
      (snapshot) =>
        this.answerSoon(response, () => this.answerHostList(request, response, service, snapshot, startedAt)),
      (error: unknown) => this.answerFailure(request, response, error, startedAt),
    );
    return true;
  }

  private answerHostList(
    request: IncomingMessage,
    response: ServerResponse,
    service: string,
    snapshot: HostSnapshot,
    startedAt: number,
  ): void {
    const prepared = this.prepare(snapshot);
    if (ifNoneMatchIncludes(request.headers['if-none-match'], prepared.etag)) {
      response.writeHead(304, prepared.notModified);
      response.end();
      this.finished(request, 304, startedAt);
      return;
    }
    const body = this.options.encoder.encode(snapshot, 'service', service);
    // One body per snapshot (the encoder memoises it), so its length is fixed with it; except
    // the empty list, one snapshot for every name without hosts, whose body names the service.
    const okHeaders = () => [
      ...prepared.notModified,
      'content-type',
      'application/json',
      'content-length',
      String(body.length),
    ];
    const headers = snapshot.hosts.length === 0 ? okHeaders() : (prepared.ok ??= okHeaders());
    response.writeHead(200, headers);
    response.end(body);
    this.finished(request, 200, startedAt);
  }

  /** A snapshot's headers as node:http's flat [name, value, …] lists, built once per snapshot rather than per request. */
  private prepare(snapshot: HostSnapshot): PreparedHeaders {
    let prepared = this.preparedHeaders.get(snapshot);
    if (!prepared) {
      const headers = hostListHeaders(snapshot);
      prepared = { etag: headers.etag, notModified: Object.entries(headers).flat(), ok: undefined };
      this.preparedHeaders.set(snapshot, prepared);
    }
    return prepared;
  }

  private serveHeartbeat(request: IncomingMessage, response: ServerResponse, service: string): boolean {
    const { headers } = request;
    if (headers['content-type'] !== FORM || headers['transfer-encoding'] !== undefined) return false;
    const length = Number(headers['content-length']);
    if (!(length > 0 && length <= this.options.bodyLimitBytes)) return false;
    const role = this.heartbeatRole;
    if (role !== undefined && !this.options.authorizer.permits(role, headers.authorization)) return false;
    const startedAt = performance.now();
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    // A client that goes away mid-body gets no answer, as from Fastify.
    request.on('error', () => response.destroy());
    request.on('end', () => {
      const body = parseForm((chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)).toString());
      this.heartbeat(request, response, service, body, startedAt).catch((error: unknown) =>
        this.answerFailure(request, response, error, startedAt),
      );
    });
    return true;
  }

  private async heartbeat(
    request: IncomingMessage,
    response: ServerResponse,
    service: string,
    body: unknown,
    startedAt: number,
  ): Promise<void> {
    const validate = this.options.validation.heartbeatBody;
    if (!validate(body)) {
      this.options.hostService.countRejectedHeartbeat(service);
      this.answerJson(request, response, 400, { error: describeValidation(validate.errors ?? [], 'body') }, startedAt);
      return;
    }
    await this.options.hostService.heartbeat(service, body as RegistrationBody, clientAddress(request));
    this.answerSoon(response, () => {
      response.writeHead(200, { 'content-type': JSON_UTF8, 'content-length': EMPTY_OBJECT_LENGTH });
      response.end(EMPTY_OBJECT);
      this.finished(request, 200, startedAt);
    });
  }

  /**
   * Writes an answer once this turn of the event loop has handled every request that was ready
   * (setImmediate runs after the poll phase), so a burst of answers leaves back to back. Written
   * one at a time between requests, each answer landing while its client sleeps costs a wake-up
   * across CPUs, paid in the writing process's send call: that was about a fifth of the CPU of a
   * cached GET under load, and back-to-back writes find the client already awake. The delay is
   * the rest of the current turn; responses on one connection still leave in request order.
   */
  private answerSoon(response: ServerResponse, answer: () => void): void {
    this.pendingAnswers.push({ response, answer });
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(this.flushAnswers);
  }

  private readonly flushAnswers = (): void => {
    this.flushScheduled = false;
    const answers = this.pendingAnswers;
    this.pendingAnswers = [];
    for (const { response, answer } of answers) {
      try {
        answer();
      } catch (error) {
        // One failed answer must not strand the others in the batch.
        this.options.log.error({ err: error }, 'fast path: could not write an answer');
        response.destroy();
      }
    }
  };

  private answerFailure(request: IncomingMessage, response: ServerResponse, error: unknown, startedAt: number): void {
    const { statusCode, body } = describeFailure(error, this.options.debug, this.options.log);
    this.answerJson(request, response, statusCode, body, startedAt);
  }

  private answerJson(
    request: IncomingMessage,
    response: ServerResponse,
    statusCode: number,
    body: object,
    startedAt: number,
  ): void {
    const bytes = Buffer.from(JSON.stringify(body));
    response.writeHead(statusCode, { 'content-type': JSON_UTF8, 'content-length': String(bytes.length) });
    response.end(bytes);
    this.finished(request, statusCode, startedAt);
  }

  /** Counted and logged as the Fastify routes' hooks do. */
  private finished(request: IncomingMessage, status: number, startedAt: number): void {
    const ms = performance.now() - startedAt;
    this.options.metrics?.observeRequest(request.method ?? '', ROUTE, status, ms / 1000);
    if (this.options.logRequests)
      this.options.log.debug({ method: request.method, url: request.url, status, ms }, 'request');
  }
}
