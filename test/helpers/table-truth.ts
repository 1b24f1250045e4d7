import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { effectiveStatus, parseCheckIn, type Host } from '../../src/hosts/model.js';
import { hostFromItem } from '../../src/store/dynamodb/dynamodb-host-store.js';
import { endpointHealth, endpointWeight, isServed } from '../../src/xds/resources.js';
import { testClient } from './dynamodb.js';

/**
 * What the table itself says, read straight from the DynamoDB server with no replica in
 * between: the truth the replicas' views are compared with. Every read is strongly consistent.
 */
export class TableTruth {
  private readonly client: DynamoDBClient;
  private readonly documents: DynamoDBDocumentClient;

  constructor(
    endpoint: string,
    private readonly tableName: string,
    /** HOST_TTL (+ HEARTBEAT_WRITE_INTERVAL) in ms: a host is live while now <= last_check_in + this. */
    readonly hostLifetimeMs: number,
  ) {
    this.client = testClient(endpoint, 5000);
    this.documents = DynamoDBDocumentClient.from(this.client);
  }

  /** Every stored record of `service`, expired ones included. */
  async stored(service: string): Promise<Host[]> {
    const hosts: Host[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const output = await this.documents.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: '#service = :service',
          ExpressionAttributeNames: { '#service': 'service' },
          ExpressionAttributeValues: { ':service': service },
          ConsistentRead: true,
          ExclusiveStartKey: startKey,
        }),
      );
      for (const item of output.Items ?? []) hosts.push(hostFromItem(item));
      startKey = output.LastEvaluatedKey;
    } while (startKey);
    return hosts;
  }

  /** Whether `host` is live at `now` by the replicas' own rule (src/hosts/expiry.ts, without expiry protection). */
  isLive(host: Host, now: number): boolean {
    return now <= parseCheckIn(host.last_check_in) + this.hostLifetimeMs;
  }

  /** The live hosts of `service` at the time of the read. */
  async live(service: string): Promise<Host[]> {
    const stored = await this.stored(service);
    const now = Date.now();
    return stored.filter((host) => this.isLive(host, now));
  }

  close(): void {
    this.client.destroy();
  }
}

/** What an xDS stream must carry for these live hosts: each served one as `ip:port w=N HEALTH`, sorted. */
export function routedWords(live: readonly Host[]): string[] {
  return live
    .filter(isServed)
    .map((host) => `${host.ip_address}:${host.port} w=${endpointWeight(host)} ${endpointHealth(host)}`)
    .sort();
}

/** What `GET /v1/registration/:service?status=all` must list for these live hosts: `ip:port w=N STATUS`, sorted. */
export function listedWords(live: readonly Host[]): string[] {
  return live
    .map((host) => `${host.ip_address}:${host.port} w=${endpointWeight(host)} ${effectiveStatus(host)}`)
    .sort();
}
