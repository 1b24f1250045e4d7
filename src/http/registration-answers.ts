import { InvalidInputError } from '../errors.js';
import type { HostSnapshot } from '../hosts/host-lists.js';
import type { HostService } from '../hosts/host-service.js';
import type { HeartbeatInput, Requester } from '../hosts/model.js';
import type { RegistrationBody } from './schemas.js';
import {
  autoIp,
  parseFlagField,
  parsePort,
  parseReportedStatus,
  parseStatusQuery,
  parseTags,
  requireIp,
  type CidrRange,
  type ClientAddress,
} from './validation.js';
import { statusView, type StatusQuery } from '../hosts/status-views.js';
import type { Log } from '../logger.js';
import { describeFailure, describeValidation } from './error-handler.js';
import { ifNoneMatchIncludes } from './etag.js';
import { hostListHeaders, type HostListEncoder } from './host-list-response.js';
import type { RequestValidation } from './request-validation.js';

/**
 * An answer as both HTTP transports write it: the Fastify routes (`sendAnswer`) and the fast
 * paths (`response.writeHead(status, headers)`). Headers are node:http's flat
 * `[name, value, …]` list, content type and length included whenever there is a body.
 */
export interface Answer {
  readonly status: number;
  readonly headers: readonly string[];
  readonly body?: Buffer | string;
}

/** Who may register with `auto_ip`, and how far X-Forwarded-For is trusted to find them. */
export interface AutoIpPolicy {
  readonly allowedRanges: readonly CidrRange[];
  readonly trustedProxyHops: number;
}

export interface RegistrationAnswersOptions {
  readonly hostService: HostService;
  readonly encoder: HostListEncoder;
  readonly validation: RequestValidation;
  readonly autoIp: AutoIpPolicy;
  /** Show a 500's detail in its body. */
  readonly debug: boolean;
  readonly log: Log;
}

/** What a listed snapshot is keyed by in its body: a service or a repo. */
export type Listed = { readonly service: string } | { readonly repo: string };

const JSON_UTF8 = 'application/json; charset=utf-8';
// A string body goes out with the headers in one write; a Buffer would make it a two-part writev.
const HEARTBEAT_OK: Answer = Object.freeze({
  status: 200,
  headers: Object.freeze(['content-type', JSON_UTF8, 'content-length', '2']),
  body: '{}',
});

interface PreparedHeaders {
  readonly etag: string;
  /** ETag and the expiry-protection and stale markers: a 304's headers. */
  readonly notModified: string[];
  /** The same with content type and length: a 200's headers, made on the first 200. */
  ok: string[] | undefined;
}

/**
 * The answers of the v1 registration calls, computed without a transport: the host list (200
 * or 304, with its ETag and markers) and the heartbeat (body check, parsing into a
 * HeartbeatInput, the rejected-heartbeat count, and the error mapping). The Fastify routes and
 * the fast paths only write what these return, so the two cannot drift apart.
 */
export class RegistrationAnswers {
  private readonly preparedHeaders = new WeakMap<HostSnapshot, PreparedHeaders>();

  constructor(private readonly options: RegistrationAnswersOptions) {}

  /**
   * The list answer of `listedSnapshot` as `query` shows it (absent: UP hosts only, as the
   * original wrote them): 304 when `ifNoneMatch` already names that view's version.
   */
  hostList(
    listedSnapshot: HostSnapshot,
    listed: Listed,
    ifNoneMatch: string | undefined,
    query: StatusQuery = undefined,
  ): Answer {
    const snapshot = statusView(listedSnapshot, query);
    const prepared = this.prepare(snapshot);
    if (ifNoneMatchIncludes(ifNoneMatch, prepared.etag)) return { status: 304, headers: prepared.notModified };
    const body =
      'service' in listed
        ? this.options.encoder.encode(snapshot, 'service', listed.service)
        : this.options.encoder.encode(snapshot, 'service_repo_name', listed.repo);
    // One body per snapshot (the encoder memoises it), so its length is fixed with it; except
    // the empty list, one snapshot for every name without hosts, whose body names the service.
    const okHeaders = () => [
      ...prepared.notModified,
      'content-type',
      'application/json',
      'content-length',
      String(body.length),
    ];
    return { status: 200, headers: snapshot.hosts.length === 0 ? okHeaders() : (prepared.ok ??= okHeaders()), body };
  }

  /**
   * The list answer of a service or repo read now (from storage when not known), or its
   * failure; `statusText` is the raw `?status=` (absent on the plain read).
   */
  async readHostList(listed: Listed, ifNoneMatch: string | undefined, statusText?: string): Promise<Answer> {
    try {
      const query = parseStatusQuery(statusText);
      const snapshot =
        'service' in listed
          ? await this.options.hostService.listByService(listed.service)
          : await this.options.hostService.listByRepo(listed.repo);
      return this.hostList(snapshot, listed, ifNoneMatch, query);
    } catch (error) {
      return this.failure(error);
    }
  }

  /**
   * A heartbeat for `service` with `body` as the transport parsed it (form, multipart or JSON),
   * from `client`: 200 `{}` when recorded; otherwise the failure, counted as a rejected heartbeat.
   */
  async heartbeat(service: string, body: unknown, client: ClientAddress, requester?: Requester): Promise<Answer> {
    const validate = this.options.validation.heartbeatBody;
    let input: HeartbeatInput;
    try {
      if (!validate(body)) throw new InvalidInputError(describeValidation(validate.errors ?? [], 'body'));
      input = this.heartbeatInput(service, body as RegistrationBody, client);
    } catch (error) {
      this.options.hostService.readouts.heartbeatFailed(service);
      return this.failure(error);
    }
    try {
      // The domain counts what it records and what storage refuses.
      await this.options.hostService.heartbeat(input, requester);
      return HEARTBEAT_OK;
    } catch (error) {
      return this.failure(error);
    }
  }

  /** A failure as `{"error": …}`: a domain error's status and message, or a logged 500. */
  failure(error: unknown): Answer {
    const { statusCode, body } = describeFailure(error, this.options.debug, this.options.log);
    const bytes = Buffer.from(JSON.stringify(body));
    return {
      status: statusCode,
      headers: ['content-type', JSON_UTF8, 'content-length', String(bytes.length)],
      body: bytes,
    };
  }

  /** A checked heartbeat body made into what the domain records: the address resolved, port and tags read. */
  private heartbeatInput(service: string, body: RegistrationBody, client: ClientAddress): HeartbeatInput {
    let ip: string;
    if (body.ip !== undefined && body.ip !== '') {
      ip = requireIp(body.ip);
    } else if (body.auto_ip !== undefined && parseFlagField('auto_ip', body.auto_ip)) {
      ip = autoIp(client, this.options.autoIp.trustedProxyHops, this.options.autoIp.allowedRanges);
    } else {
      throw new InvalidInputError("Required parameter 'ip' is missing (or set 'auto_ip').");
    }
    const reported = parseReportedStatus(body.status);
    return {
      service,
      ip_address: ip,
      port: parsePort(body.port),
      revision: body.revision,
      service_repo_name: body.service_repo_name ?? '',
      tags: parseTags(body.tags),
      ...(reported === undefined ? {} : { reported_status: reported }),
    };
  }

  /** A snapshot's headers, built once per snapshot rather than per request. */
  private prepare(snapshot: HostSnapshot): PreparedHeaders {
    let prepared = this.preparedHeaders.get(snapshot);
    if (!prepared) {
      const headers = hostListHeaders(snapshot);
      prepared = { etag: headers.etag, notModified: Object.entries(headers).flat(), ok: undefined };
      this.preparedHeaders.set(snapshot, prepared);
    }
    return prepared;
  }
}
