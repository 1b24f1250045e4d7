import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * An HTTP proxy in front of a DynamoDB-compatible server that counts the calls passing through
 * by operation (the `X-Amz-Target` header, `DynamoDB_20120810.Query` -> `Query`): what a bill
 * counts, measured from outside the registry. Loopback only.
 */
export class CountingDynamoDbProxy {
  private constructor(
    private readonly server: Server,
    readonly endpoint: string,
    private readonly counts: Map<string, number>,
  ) {}

  static async start(target: string): Promise<CountingDynamoDbProxy> {
    const upstream = new URL(target);
    const counts = new Map<string, number>();
    const server = createServer((incoming, outgoing) => {
      const operation = String(incoming.headers['x-amz-target'] ?? 'unknown').replace(/^.*\./, '');
      counts.set(operation, (counts.get(operation) ?? 0) + 1);
      const forwarded = request(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: incoming.method,
          path: incoming.url,
          headers: incoming.headers,
        },
        (answer) => {
          outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(outgoing);
        },
      );
      forwarded.on('error', () => outgoing.destroy());
      incoming.pipe(forwarded);
    });
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    return new CountingDynamoDbProxy(server, `http://127.0.0.1:${port}`, counts);
  }

  /** Calls since the last `take`, by operation, and their total. */
  take(): { readonly byOperation: Record<string, number>; readonly total: number } {
    const byOperation = Object.fromEntries([...this.counts.entries()].sort());
    this.counts.clear();
    return { byOperation, total: Object.values(byOperation).reduce((sum, count) => sum + count, 0) };
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
