import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Requester } from '../hosts/model.js';
import type { Authorizer } from './auth.js';

/** The header a request id arrives in and is returned in. */
export const REQUEST_ID_HEADER = 'x-request-id';

/** What an incoming request id may be: visible ASCII, bounded, so it cannot forge or flood a log line. */
const ACCEPTABLE_REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

/** The request's id: the caller's `X-Request-Id` when it is acceptable, otherwise a new one. */
export function requestIdOf(headers: IncomingHttpHeaders): string {
  const header = headers[REQUEST_ID_HEADER];
  const value = Array.isArray(header) ? header[0] : header;
  return value !== undefined && ACCEPTABLE_REQUEST_ID.test(value) ? value : newRequestId();
}

/**
 * Ids made here are UUID-shaped: a random version-4 prefix drawn once per process, then a 48-bit
 * count of the process's requests. They are unique across replicas (the prefix) and ordered
 * within one, as a log reader wants, and cheap: a random UUID per request cost the two busiest
 * routes several per cent of their throughput (bench/RESULTS.md). Nothing relies on an id being
 * unguessable; it names a request, it does not authorise one.
 */
const REQUEST_ID_PREFIX = randomUUID().slice(0, 24);
let requestCount = 0;

function newRequestId(): string {
  requestCount = (requestCount + 1) % 2 ** 48;
  return REQUEST_ID_PREFIX + requestCount.toString(16).padStart(12, '0');
}

/**
 * Who sent a write, for the audit trail: its request id, the address it came from (the socket's,
 * and the X-Forwarded-For chain when there is one) and the role its credential proves, worked
 * out only if a line is written.
 */
export function requesterOf(
  request: { readonly headers: IncomingHttpHeaders; readonly socket: { readonly remoteAddress?: string } },
  requestId: string,
  authorizer: Authorizer,
): Requester {
  const forwarded = request.headers['x-forwarded-for'];
  const socket = request.socket.remoteAddress ?? '';
  return {
    requestId,
    address: forwarded === undefined ? socket : `${socket} (x-forwarded-for: ${String(forwarded).slice(0, 256)})`,
    role: () => roleName(authorizer, request.headers.authorization),
  };
}

/** The role a credential proves, `anonymous` without one, `invalid` for one that proves nothing. */
export function roleName(authorizer: Authorizer, authorization: string | undefined): string {
  if (!authorization) return 'anonymous';
  return authorizer.roleOf(authorization) ?? 'invalid';
}
