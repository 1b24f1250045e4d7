import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyBaseLogger } from 'fastify';

/**
 * How long answers to the requests read before the unparsable bytes may take before the
 * connection is closed without them: as long as any one request may take.
 */
const IN_FLIGHT_BOUND_MS = 30_000;

/** The status for an HTTP parser error: Fastify's and Node's choices, kept. */
function statusOf(error: NodeJS.ErrnoException): number {
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') return 408;
  if (error.code === 'HPE_HEADER_OVERFLOW') return 431;
  return 400;
}

/** What Node's HTTP parser throws: `reason` says what was wrong. */
type ParserError = NodeJS.ErrnoException & { reason?: unknown };

function messageOf(status: number, error: ParserError): string {
  if (status === 408) return 'Request timeout: the request was not received in time.';
  if (status === 431) return 'Request header fields too large.';
  // The parser's reason (e.g. "Invalid method encountered"), never the bytes themselves.
  const reason = typeof error.reason === 'string' ? error.reason : error.code;
  return `Malformed HTTP request${reason ? `: ${reason}` : ''}. The connection is closed.`;
}

/**
 * The answer Node is writing on this socket, if any. Node attaches one answer at a time and,
 * when it finishes, attaches the next pipelined one before any other code runs; so while none
 * is attached, every request read so far has been answered.
 */
function attachedAnswer(socket: Duplex): ServerResponse | undefined {
  return (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage ?? undefined;
}

/**
 * Node's `clientError`: bytes on a connection that are not HTTP. Every request read before them
 * was handed to the app and may already have been applied (a heartbeat, a DELETE), so their
 * answers are written first, in order; then `{"error": ...}` with `Connection: close`, and the
 * connection ends. Fastify's default wrote its own 400 at once and destroyed the socket, so a
 * client saw an error for a write that had happened.
 */
export function answerClientError(error: ParserError, socket: Duplex, log: FastifyBaseLogger): void {
  // A reset connection (or one already gone) has nobody left to answer.
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const status = statusOf(error);
  log.debug({ err: error, status }, 'unparsable HTTP request');
  // Bounded: a connection whose earlier answers never finish, or whose peer never closes, is destroyed.
  const deadline = setTimeout(() => socket.destroy(), IN_FLIGHT_BOUND_MS);
  deadline.unref();
  socket.once('close', () => clearTimeout(deadline));
  const answerWhenIdle = (): void => {
    if (socket.destroyed) return;
    const attached = attachedAnswer(socket);
    if (attached) {
      // Finished but not yet detached, the next one is attached in a moment: look again then.
      if (attached.writableFinished) return void setImmediate(answerWhenIdle);
      const next = (): void => {
        attached.off('finish', next).off('close', next);
        setImmediate(answerWhenIdle);
      };
      attached.once('finish', next).once('close', next);
      return;
    }
    if (!socket.writable) return void socket.destroy();
    const body = JSON.stringify({ error: messageOf(status, error) });
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  };
  answerWhenIdle();
}
