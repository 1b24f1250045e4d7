import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import http from 'node:http';
import https from 'node:https';

export interface DynamoDbClientOptions {
  /** A local DynamoDB-compatible server; undefined talks to AWS through the standard region and credential chain. */
  readonly endpoint?: string;
  /** Region; empty or undefined leaves it to the standard chain (required for AWS, a placeholder for a local server). */
  readonly region?: string;
  /** Most sockets open at once (CONNECTION_POOL_SIZE); further calls queue for a free one. */
  readonly maxSockets: number;
  /** Bound in milliseconds on one attempt's connect and on its silence while waiting for the answer. */
  readonly requestTimeoutMs: number;
}

/** Three attempts (the SDK's standard) ride out a lost connection or a short throttling burst. */
const MAX_ATTEMPTS = 3;

/**
 * An endpoint that accepts no TCP connection within a third of the call bound is treated as
 * down for that attempt, so all attempts fit in the bound: a regional endpoint connects in
 * milliseconds, and a busy local server still gets a fair share.
 */
function connectTimeoutMs(requestTimeoutMs: number): number {
  return Math.ceil(requestTimeoutMs / MAX_ATTEMPTS);
}

/** Local servers check no signature, but the SDK signs every request, so it needs some credentials. */
const LOCAL_CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' };
const LOCAL_REGION = 'local';

/** A client with bounded sockets and timeouts, for AWS or for a local DynamoDB-compatible server. */
export function createDynamoDbClient(options: DynamoDbClientOptions): DynamoDBClient {
  // Keep-alive: a heartbeat then costs one request on an open socket, not a TCP (and TLS) handshake.
  const agentOptions = { keepAlive: true, maxSockets: options.maxSockets };
  const requestHandler = {
    httpAgent: new http.Agent(agentOptions),
    httpsAgent: new https.Agent(agentOptions),
    connectionTimeout: connectTimeoutMs(options.requestTimeoutMs),
    requestTimeout: options.requestTimeoutMs,
  };
  if (options.endpoint !== undefined) {
    return new DynamoDBClient({
      endpoint: options.endpoint,
      region: options.region || LOCAL_REGION,
      credentials: LOCAL_CREDENTIALS,
      maxAttempts: MAX_ATTEMPTS,
      requestHandler,
    });
  }
  return new DynamoDBClient({
    ...(options.region ? { region: options.region } : {}),
    maxAttempts: MAX_ATTEMPTS,
    requestHandler,
  });
}
