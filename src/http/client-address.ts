import type { IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import type { ClientAddress } from './validation.js';

/** Who sent a request: the socket's peer and the X-Forwarded-For chain, for `auto_ip`. */
export function clientAddress(request: {
  readonly headers: IncomingHttpHeaders;
  readonly socket: Socket;
}): ClientAddress {
  const header = request.headers['x-forwarded-for'];
  const forwardedFor = (Array.isArray(header) ? header.join(',') : (header ?? ''))
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  return { socketAddress: request.socket.remoteAddress ?? '', forwardedFor };
}
