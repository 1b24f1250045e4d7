import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { FastifyInstance } from 'fastify';
import type { HostService } from '../hosts/host-service.js';
import { NAME_FORBIDDEN_CHARACTERS, NAME_MAX_LENGTH } from '../hosts/names.js';
import type { Log } from '../logger.js';
import type { Role } from './auth.js';
import type { AnsweredRequests } from './answered-requests.js';
import type { Authorizer } from './auth.js';
import { clientAddress } from './client-address.js';
import { REQUEST_ID_HEADER, requesterOf, requestIdOf } from './requester.js';
import { parseForm } from './form-body.js';
import type { Answer, RegistrationAnswers } from './registration-answers.js';
import type { RoutePolicy } from './route-policy.js';
import { hooksOfRoute } from './route-list.js';

const PREFIX = '/v1/registration/';
/** The route template both fast paths answer for, as Fastify names it. */
const ROUTE = '/v1/registration/:service';
const FORM = 'application/x-www-form-urlencoded';
/**
 * Names taken as they arrive: valid names (names.ts) that are also printable ASCII without the
 * characters routing treats specially (`? # ;`) or decodes (`%`). Anything else is Fastify's to
 * route, decode and validate.
 */
const PLAIN_NAME = new RegExp(`^[^${NAME_FORBIDDEN_CHARACTERS}?#;%\\x20\\x80-\\uffff]{1,${NAME_MAX_LENGTH}}$`);

/**
 * Every hook Fastify runs on the two fast-pathed routes, by name, with what the fast paths do
 * in its place. Start-up fails on any other hook (a plugin added for rate limiting, CORS or
 * request ids, say), because the fast paths would silently skip it: teach FastPaths what the
 * hook does and list it here, or start with the fast paths off.
 */
const HOOKS_TAKEN_CARE_OF: ReadonlyArray<{
  readonly method: 'GET' | 'POST';
  readonly phase: string;
  readonly name: string;
  /** How many such hooks there are; anonymous third-party hooks are told apart by count only. */
  readonly count?: number;
  readonly why: string;
}> = [
  { method: 'GET', phase: 'onRequest', name: 'returnRequestId', why: 'write() returns the same X-Request-Id' },
  { method: 'POST', phase: 'onRequest', name: 'returnRequestId', why: 'write() returns the same X-Request-Id' },
  { method: 'GET', phase: 'onRequest', name: 'requireRole', why: 'the route policy: tryServe checks the same role' },
  { method: 'POST', phase: 'onRequest', name: 'requireRole', why: 'the route policy: tryServe checks the same role' },
  { method: 'GET', phase: 'onRequest', name: 'refuseWhileClosing', why: 'stopServing leaves closing to Fastify' },
  { method: 'POST', phase: 'onRequest', name: 'refuseWhileClosing', why: 'stopServing leaves closing to Fastify' },
  { method: 'GET', phase: 'onResponse', name: 'recordAnswer', why: 'finished() records through AnsweredRequests' },
  { method: 'POST', phase: 'onResponse', name: 'recordAnswer', why: 'finished() records through AnsweredRequests' },
  { method: 'POST', phase: 'onRequest', name: 'markBodyParsing', why: 'error-handler bookkeeping for parser errors' },
  { method: 'POST', phase: 'preHandler', name: 'markBodyParsed', why: 'error-handler bookkeeping for parser errors' },
  {
    method: 'POST',
    phase: 'preValidation',
    name: 'emptyBodyAsObject',
    why: 'empty and multipart bodies go to Fastify',
  },
  ...['onRequest', 'preValidation', 'onResponse'].map((phase) => ({
    method: 'POST' as const,
    phase,
    name: 'anonymous',
    count: 1,
    why: "@fastify/multipart's own hooks: they act on multipart bodies, which the fast path leaves to Fastify",
  })),
];

export interface FastPathsOptions {
  readonly hostService: HostService;
  readonly answers: RegistrationAnswers;
  readonly authorizer: Authorizer;
  /** Where the two routes' declared access is read from (see `takeAccessFromRoutes`). */
  readonly policy: RoutePolicy;
  readonly answered: AnsweredRequests;
  readonly bodyLimitBytes: number;
  readonly log: Log;
}

/**
 * The two calls a fleet makes thousands of times a second, answered from the server's request
 * event before Fastify: a proxy's `GET /v1/registration/:service` (memoised bytes) and a host's
 * form heartbeat `POST /v1/registration/:service`. For these, Fastify's routing, hook runner,
 * body pipeline and reply path cost more than the work itself (bench/speed-notes.md).
 *
 * Only the plain, authorised request is taken, and it gets what the Fastify route gives: the
 * answers come from the same RegistrationAnswers, requests are recorded by the same
 * AnsweredRequests, and every hook the routes have is accounted for (HOOKS_TAKEN_CARE_OF).
 * Anything else (a name needing decoding, another content type, a chunked, empty or over-limit
 * body, a missing or weak credential, HEAD, a closing server) is left to Fastify, whose routes
 * stay the reference. Which credential each needs is the one its Fastify route declares
 * (RoutePolicy), read once every route is registered; until then every request is left to Fastify.
 */
export class FastPaths {
  /** The role a host-list GET must prove; undefined: none. */
  private hostListRole: Role | undefined;
  /** The role a heartbeat must prove; undefined: none. */
  private heartbeatRole: Role | undefined;
  /** False until the routes' access is known, and again once the server is closing. */
  private serving = false;
  private closing = false;
  private pendingAnswers: Array<{ response: ServerResponse; answer: () => void }> = [];
  private flushScheduled = false;

  constructor(private readonly options: FastPathsOptions) {}

  /**
   * Reads the access `GET` and `POST /v1/registration/:service` declare, checks that every hook
   * on them is one the fast paths take care of, and starts serving. Called once every route is
   * registered and its hooks are set (the app's onReady); throws, failing start-up, otherwise.
   */
  takeAccessFromRoutes(app: FastifyInstance): void {
    this.hostListRole = this.options.policy.credentialNeeded('GET', ROUTE);
    this.heartbeatRole = this.options.policy.credentialNeeded('POST', ROUTE);
    for (const method of ['GET', 'POST'] as const) checkHooks(method, hooksOfRoute(app, method, ROUTE));
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
    const ifNoneMatch = request.headers['if-none-match'];
    const requestId = requestIdOf(request.headers);
    const known = this.options.hostService.knownListByService(service);
    if (known) {
      this.answerSoon(
        request,
        response,
        () => this.options.answers.hostList(known, { service }, ifNoneMatch),
        startedAt,
        requestId,
      );
      return true;
    }
    this.options.answers
      .readHostList({ service }, ifNoneMatch)
      .then((answer) => this.answerSoon(request, response, () => answer, startedAt, requestId));
    return true;
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
      const requestId = requestIdOf(headers);
      this.options.answers
        .heartbeat(service, body, clientAddress(request), requesterOf(request, requestId, this.options.authorizer))
        .then((answer) => this.answerSoon(request, response, () => answer, startedAt, requestId));
    });
    return true;
  }

  /**
   * Writes an answer once this turn of the event loop has handled every request that was ready
   * (setImmediate runs after the poll phase), so a burst of answers leaves back to back. Written
   * one at a time between requests, each answer landing while its client sleeps costs a wake-up
   * across CPUs, paid in the writing process's send call (bench/speed-notes.md); back-to-back
   * writes find the client already awake. The delay is the rest of the current turn; responses
   * on one connection still leave in request order.
   */
  private answerSoon(
    request: IncomingMessage,
    response: ServerResponse,
    answer: () => Answer,
    startedAt: number,
    requestId: string,
  ): void {
    this.pendingAnswers.push({ response, answer: () => this.write(request, response, answer(), startedAt, requestId) });
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

  private write(
    request: IncomingMessage,
    response: ServerResponse,
    answer: Answer,
    startedAt: number,
    requestId: string,
  ): void {
    // The answer's header list is shared by every request of its snapshot: a copy carries the id.
    response.writeHead(answer.status, answer.headers.concat(REQUEST_ID_HEADER, requestId));
    response.end(answer.body);
    this.options.answered.record(
      request.method ?? '',
      ROUTE,
      request.url,
      answer.status,
      performance.now() - startedAt,
      requestId,
      request.socket.remoteAddress,
    );
  }
}

/** Throws, naming the fast paths, when `method ROUTE` has a hook HOOKS_TAKEN_CARE_OF does not list. */
function checkHooks(method: 'GET' | 'POST', hooks: ReadonlyMap<string, readonly string[]>): void {
  for (const [phase, names] of hooks) {
    const counts = new Map<string, number>();
    for (const name of names) counts.set(name, (counts.get(name) ?? 0) + 1);
    for (const [name, count] of counts) {
      const known = HOOKS_TAKEN_CARE_OF.find(
        (hook) => hook.method === method && hook.phase === phase && hook.name === name,
      );
      if (known && count <= (known.count ?? 1)) continue;
      throw new Error(
        `fast paths (src/http/fast-paths.ts) answer ${method} ${ROUTE} before Fastify and would skip its ${phase} ` +
          `hook '${name}'${known ? ` (${count} of them)` : ''}: make FastPaths do what the hook does and list it in ` +
          'HOOKS_TAKEN_CARE_OF, or register the hook outside the registration routes',
      );
    }
  }
}
