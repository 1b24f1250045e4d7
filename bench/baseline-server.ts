import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';

/**
 * The runtime's limit, for comparison: a bare node:http server with no framework.
 * GET answers a precomputed buffer (the exact bytes discovery sends), or 304 when
 * If-None-Match names its ETag; POST parses the same form body and stores it in a Map.
 * Started by bench/run.ts with BODY_FILE, ETAG and PORT in the environment.
 */
const body = readFileSync(process.env.BODY_FILE ?? '/dev/null');
const etag = process.env.ETAG ?? 'W/"none"';
const hosts = new Map<string, Record<string, string>>();

const server = createServer((request, response) => {
  if (request.method === 'GET') {
    if (request.headers['if-none-match'] === etag) {
      response.writeHead(304, { etag });
      response.end();
      return;
    }
    response.writeHead(200, { 'content-type': 'application/json', etag, 'content-length': body.length });
    response.end(body);
    return;
  }
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', () => {
    const fields = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString()));
    hosts.set(`${request.url}\u0000${fields.ip}`, fields);
    response.writeHead(200, { 'content-type': 'application/json', 'content-length': 2 });
    response.end('{}');
  });
});
server.keepAliveTimeout = 72_000;
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(
    `baseline listening on http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}\n`,
  );
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
