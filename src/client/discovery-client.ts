/**
 * A typed client for the v1 REST API (README, "API"). At run time it depends on nothing but the
 * platform's `fetch`, so a host's agent or any Node.js program can use it without the server's
 * code; its types are the server's own (type-only imports, gone from the built JavaScript).
 */
import type { InstanceStatus, Host as StoredHost } from '../hosts/model.js';
import type { Tags as SchemaTags } from '../http/schemas.js';

/** Per-request limit when the caller gives none: long enough for a loaded registry, short enough that a heartbeat loop notices an outage well within `HOST_TTL`. */
export const DEFAULT_TIMEOUT_MS = 5_000;

/** How much of a non-JSON error body is kept in a `DiscoveryError` message (an HTML error page from a proxy is not worth more). */
const ERROR_TEXT_MAX = 200;

/**
 * Tags of a host, as the registry's request schema defines them (src/hosts/schemas.ts):
 * `az`, `region` and `instance_id` are required on every registration; `canary` and
 * `load_balancing_weight` (an integer 1..100) are optional; other keys are kept and returned
 * as given.
 */
export type HostTags = SchemaTags;

/**
 * One live host, as `GET /v1/registration/...` returns it: the registry's own record type, with
 * its tags typed; `status` only on lists read with `?status=`.
 */
export type Host = Omit<StoredHost, 'tags' | 'reported_status' | 'status_override'> & {
  readonly tags: Readonly<HostTags>;
  readonly status?: InstanceStatus;
};

export type { InstanceStatus } from '../hosts/model.js';

/** Body of `GET /v1/registration/:service`. */
export interface ServiceHostList {
  readonly service: string;
  /** The registry's `APPLICATION_ENV`. */
  readonly env: string;
  readonly hosts: readonly Host[];
}

/** Body of `GET /v1/registration/repo/:service_repo_name`. */
export interface RepoHostList {
  readonly service_repo_name: string;
  readonly env: string;
  readonly hosts: readonly Host[];
}

/** One heartbeat. Give `ip`, or `autoIp: true` to let the registry take the caller's address. */
export interface Registration {
  /** IPv4 or IPv6 address of the host. Wins over `autoIp` when both are given. */
  readonly ip?: string;
  /** Register the address the registry sees the request come from (accepted only inside its `AUTO_IP_ALLOWED_RANGES`). */
  readonly autoIp?: boolean;
  /** Integer 1..65535. */
  readonly port: number;
  /** Non-empty; usually the deployed commit. */
  readonly revision: string;
  readonly serviceRepoName?: string;
  /** Merged into the stored tags: keys sent overwrite, keys not sent are kept. */
  readonly tags: HostTags;
  /** The host's own status; absent is `UP` (and sends nothing, as heartbeats always did). */
  readonly status?: InstanceStatus;
}

export interface DiscoveryClientOptions {
  /** Where the registry answers, e.g. `http://localhost:8080`; a path prefix is kept. */
  readonly baseUrl: string;
  /** Milliseconds one request may take, body included, before it fails as a `timeout`. Default 5000. */
  readonly timeoutMs?: number;
  /** A `fetch` to use instead of the global one (for a proxy agent, tracing, ...). */
  readonly fetch?: typeof fetch;
  /** Sent as `Authorization: Bearer <token>` on every call, when the registry requires a credential. Never logged. */
  readonly token?: string;
}

/** Per-call options. */
export interface CallOptions {
  /** Cancels the call; the call then rejects with the signal's reason, not a `DiscoveryError`. */
  readonly signal?: AbortSignal;
}

/**
 * Why a call failed:
 * - `http`: the registry (or a proxy in front of it) answered with a non-success status;
 * - `network`: no answer (connection refused or reset, DNS failure, ...);
 * - `timeout`: no complete answer within `timeoutMs`;
 * - `invalid-response`: a success status with a body that is not what the API promises.
 */
export type DiscoveryErrorKind = 'http' | 'network' | 'timeout' | 'invalid-response';

/**
 * A failed call. `retryable` says whether the same call may succeed later without a change by
 * the caller: true for network failures, timeouts, 5xx, 408, 429 and unexpected bodies (most
 * often a proxy's page during an outage); false for any other 4xx, which bad input will keep
 * getting.
 */
export class DiscoveryError extends Error {
  override readonly name = 'DiscoveryError';
  readonly kind: DiscoveryErrorKind;
  /** HTTP status, when there was an answer. */
  readonly status: number | undefined;
  /** The registry's `error` field, when it sent one. */
  readonly serverMessage: string | undefined;
  readonly retryable: boolean;
  /** `METHOD path` of the failed call, for logs. */
  readonly request: string;

  constructor(
    message: string,
    details: { kind: DiscoveryErrorKind; request: string; status?: number; serverMessage?: string; cause?: unknown },
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.kind = details.kind;
    this.request = details.request;
    this.status = details.status;
    this.serverMessage = details.serverMessage;
    this.retryable = details.kind !== 'http' || isRetryableStatus(details.status ?? 0);
  }
}

function isRetryableStatus(status: number): boolean {
  return status >= 500 || status === 408 || status === 429;
}

interface CachedList<T> {
  readonly etag: string;
  readonly body: T;
}

/**
 * Client of one registry. Safe to share: calls are independent, except that `list` and
 * `listByRepo` remember the last `ETag` and body per service (or repo) so that an unchanged
 * list costs the registry a `304` and no body. One entry is kept per name ever listed.
 */
export class DiscoveryClient {
  private readonly baseUrl: string;
  private readonly timeoutMs: number;
  private readonly fetchImpl: typeof fetch;
  private readonly authorization: string | undefined;
  private readonly serviceLists = new Map<string, CachedList<ServiceHostList>>();
  private readonly repoLists = new Map<string, CachedList<RepoHostList>>();

  constructor(options: DiscoveryClientOptions) {
    const url = new URL(options.baseUrl); // throws a TypeError on a malformed URL, at construction rather than at the first call
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw new TypeError(`baseUrl must be http(s): ${options.baseUrl}`);
    this.baseUrl = url.href.replace(/\/+$/, '');
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!(timeoutMs > 0) || !Number.isFinite(timeoutMs))
      throw new RangeError(`timeoutMs must be a positive number: ${timeoutMs}`);
    this.timeoutMs = timeoutMs;
    this.fetchImpl = options.fetch ?? globalThis.fetch;
    this.authorization = options.token === undefined ? undefined : `Bearer ${options.token}`;
  }

  /**
   * Heartbeat: `POST /v1/registration/:service`. Creates the host, or refreshes its
   * `last_check_in`, `port`, `revision` and `service_repo_name` and merges its tags. Idempotent;
   * sent form-encoded, so it works with the original service too.
   */
  async register(service: string, registration: Registration, options: CallOptions = {}): Promise<void> {
    const form = new URLSearchParams();
    if (registration.ip !== undefined) form.set('ip', registration.ip);
    if (registration.autoIp) form.set('auto_ip', 'true');
    form.set('port', String(registration.port));
    form.set('revision', registration.revision);
    if (registration.serviceRepoName !== undefined) form.set('service_repo_name', registration.serviceRepoName);
    form.set('tags', JSON.stringify(registration.tags));
    if (registration.status !== undefined && registration.status !== 'UP') form.set('status', registration.status);
    await this.call('POST', `/v1/registration/${segment(service)}`, { body: form, signal: options.signal });
  }

  /**
   * `DELETE /v1/registration/:service/:ip`, or with `port` `.../:ip/:port`: that one instance
   * (with INSTANCE_KEY=ip_port the route without a port removes every instance at the IP; with
   * INSTANCE_KEY=ip a port removes the host only while it listens on that port). Fails with a
   * non-retryable `DiscoveryError` (status 400) when nothing is registered there (never was,
   * expired, already deleted, or another port).
   */
  async deregister(service: string, ip: string, options: CallOptions & { port?: number } = {}): Promise<void> {
    const instance = options.port === undefined ? '' : `/${options.port}`;
    await this.call('DELETE', `/v1/registration/${segment(service)}/${segment(ip)}${instance}`, {
      signal: options.signal,
    });
  }

  /**
   * The live hosts of `service` (`hosts: []` for an unknown one). Sends the `ETag` of the last
   * list of this service as `If-None-Match`; on `304 Not Modified` returns that same cached
   * object. The registry's ETag ignores `last_check_in`, so a cached list may show older
   * check-in times than storage holds; every other field is current. Treat the result as
   * read-only: it is shared with later calls.
   */
  async list(service: string, options: CallOptions = {}): Promise<ServiceHostList> {
    return this.cachedGet(this.serviceLists, service, `/v1/registration/${segment(service)}`, 'service', options);
  }

  /** The live hosts of every service registered with repo `repo`; cached by ETag like `list`. */
  async listByRepo(repo: string, options: CallOptions = {}): Promise<RepoHostList> {
    return this.cachedGet(this.repoLists, repo, `/v1/registration/repo/${segment(repo)}`, 'service_repo_name', options);
  }

  /**
   * Sets `tags.load_balancing_weight` (an integer 1..100) on one host, or without `ip` on every
   * live host of the service. Fails with status 404 when the host (or every host) is unknown,
   * 400 when the weight is out of range. The weight survives the host's later heartbeats unless
   * they send a weight themselves.
   */
  async setWeight(service: string, weight: number, ip?: string, options: CallOptions = {}): Promise<void> {
    const path =
      ip === undefined
        ? `/v1/loadbalancing/${segment(service)}`
        : `/v1/loadbalancing/${segment(service)}/${segment(ip)}`;
    await this.call('POST', path, {
      body: new URLSearchParams({ load_balancing_weight: String(weight) }),
      signal: options.signal,
    });
  }

  private async cachedGet<
    K extends 'service' | 'service_repo_name',
    T extends { env: string; hosts: readonly Host[] } & Record<K, string>,
  >(cache: Map<string, CachedList<T>>, name: string, path: string, keyName: K, options: CallOptions): Promise<T> {
    const cached = cache.get(name);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (cached) headers['if-none-match'] = cached.etag;
    const { response, text } = await this.call('GET', path, { headers, signal: options.signal });
    const request = `GET ${path}`;
    if (response.status === 304) {
      if (!cached)
        throw new DiscoveryError(`${request}: 304 without a cached list`, {
          kind: 'invalid-response',
          request,
          status: 304,
        });
      return cached.body;
    }
    const body = parseJson(text);
    if (!isHostList(body, keyName)) {
      throw new DiscoveryError(`${request}: the answer is not a host list: ${truncate(text)}`, {
        kind: 'invalid-response',
        request,
        status: response.status,
      });
    }
    const etag = response.headers.get('etag');
    if (etag) cache.set(name, { etag, body: body as T });
    else cache.delete(name);
    return body as T;
  }

  /** One request with the timeout applied to the whole exchange, body included. Resolves on 2xx and 304; throws `DiscoveryError` otherwise. */
  private async call(
    method: string,
    path: string,
    init: { body?: URLSearchParams; headers?: Record<string, string>; signal?: AbortSignal | undefined },
  ): Promise<{ response: Response; text: string }> {
    const request = `${method} ${path}`;
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const signal = init.signal ? AbortSignal.any([timeout, init.signal]) : timeout;
    let response: Response;
    let text: string;
    try {
      response = await this.fetchImpl(`${this.baseUrl}${path}`, {
        method,
        body: init.body,
        headers:
          this.authorization === undefined ? init.headers : { ...init.headers, authorization: this.authorization },
        signal,
      });
      text = await response.text();
    } catch (error) {
      if (init.signal?.aborted) throw init.signal.reason;
      if (timeout.aborted) {
        throw new DiscoveryError(`${request}: no answer within ${this.timeoutMs} ms`, {
          kind: 'timeout',
          request,
          cause: error,
        });
      }
      throw new DiscoveryError(`${request}: ${networkReason(error)}`, { kind: 'network', request, cause: error });
    }
    if ((response.status >= 200 && response.status < 300) || response.status === 304) return { response, text };
    const serverMessage = errorField(parseJson(text));
    const detail = serverMessage ?? (truncate(text) || response.statusText);
    throw new DiscoveryError(`${request}: ${response.status} ${detail}`, {
      kind: 'http',
      request,
      status: response.status,
      serverMessage,
    });
  }
}

/** A service, repo or IP as one path segment: `/`, `%`, `:` and friends escaped. */
function segment(value: string): string {
  return encodeURIComponent(value);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function errorField(body: unknown): string | undefined {
  if (typeof body === 'object' && body !== null && typeof (body as { error?: unknown }).error === 'string')
    return (body as { error: string }).error;
  return undefined;
}

function isHostList(body: unknown, keyName: string): boolean {
  if (typeof body !== 'object' || body === null) return false;
  const record = body as Record<string, unknown>;
  return typeof record[keyName] === 'string' && Array.isArray(record.hosts);
}

function truncate(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > ERROR_TEXT_MAX ? `${flat.slice(0, ERROR_TEXT_MAX)}…` : flat;
}

/** fetch reports every network failure as `TypeError: fetch failed`; the useful part (ECONNREFUSED, ENOTFOUND, ...) is in its cause. */
function networkReason(error: unknown): string {
  const cause = error instanceof Error ? (error.cause as { code?: unknown; message?: unknown } | undefined) : undefined;
  if (cause && typeof cause.message === 'string' && cause.message !== '') {
    return typeof cause.code === 'string' && !cause.message.includes(cause.code)
      ? `${cause.code}: ${cause.message}`
      : cause.message;
  }
  if (cause && typeof cause.code === 'string') return cause.code;
  return error instanceof Error ? error.message : String(error);
}
