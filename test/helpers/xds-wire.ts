import assert from 'node:assert/strict';
import pino from 'pino';
import { systemClock, type Clock } from '../../src/clock.js';
import { HostService } from '../../src/hosts/host-service.js';
import { MemoryHostStore } from '../../src/store/memory-host-store.js';
import { TYPE_URL, xdsProtos } from '../../src/xds/protos.js';
import type { XdsResource } from '../../src/xds/resources.js';
import { XdsSnapshotCache } from '../../src/xds/snapshot-cache.js';
import { XdsStreamServer, type StreamError } from '../../src/xds/stream-server.js';
import { RecordingStats, waitFor } from './registry.js';

/** A stream transport that records what the server sends, for either protocol's responses. */
export class RecordingTransport<Response> {
  readonly peer = 'test';
  readonly sent: Response[] = [];
  ended: { error?: StreamError } | undefined;
  send(response: Response): void {
    this.sent.push(response);
  }
  end(error?: StreamError): void {
    this.ended = { error };
  }
  last(): Response {
    const response = this.sent.at(-1);
    assert.ok(response, 'a response was sent');
    return response;
  }
}

/** A resource as a stream wrote it (XdsResource), as a client decoded it off the wire (an Any), or in a delta response. */
type AnyResource = XdsResource | { readonly value: Uint8Array } | { readonly resource: { readonly value: Uint8Array } };

/**
 * `ip:port` of every endpoint of a response's ClusterLoadAssignments, by cluster name, in the order
 * sent, for either protocol's responses.
 */
export function endpointsOf(response: { readonly resources: readonly AnyResource[] }): Record<string, string[]> {
  const type = xdsProtos().typeOf(TYPE_URL.clusterLoadAssignment);
  assert.ok(type);
  const out: Record<string, string[]> = {};
  for (const resource of response.resources) {
    const bytes =
      'body' in resource ? resource.body : 'resource' in resource ? resource.resource.value : resource.value;
    const cla = type.toObject(type.decode(bytes)) as {
      cluster_name: string;
      endpoints?: {
        lb_endpoints?: { endpoint: { address: { socket_address: { address: string; port_value: number } } } }[];
      }[];
    };
    if ('name' in resource) assert.equal(cla.cluster_name, resource.name, 'a resource is named by its cluster');
    out[cla.cluster_name] = (cla.endpoints ?? []).flatMap((locality) =>
      (locality.lb_endpoints ?? []).map(
        (lb) => `${lb.endpoint.address.socket_address.address}:${lb.endpoint.address.socket_address.port_value}`,
      ),
    );
  }
  return out;
}

export interface StreamFixtureOptions {
  readonly clock?: Clock;
  readonly hostTtlSeconds?: number;
  readonly pollIntervalMs?: number;
  readonly maxWatchedNames?: number;
}

/** The domain, the xDS cache and the stream server over a MemoryHostStore: no sockets, streams driven through fake transports. */
export class StreamFixture {
  readonly store = new MemoryHostStore();
  readonly stats = new RecordingStats();
  readonly hostService: HostService;
  readonly cache: XdsSnapshotCache;
  readonly server: XdsStreamServer;

  constructor(options: StreamFixtureOptions = {}) {
    const log = pino({ level: 'silent' });
    this.hostService = this.replica(options.hostTtlSeconds, options.clock);
    this.cache = new XdsSnapshotCache({
      hostService: this.hostService,
      events: this.hostService.events,
      clock: options.clock ?? systemClock,
      log,
      pollIntervalMs: options.pollIntervalMs ?? 600_000,
      wildcardPollIntervalMs: 600_000,
      maxWatchedNames: options.maxWatchedNames,
    });
    this.server = new XdsStreamServer({ cache: this.cache, log, stats: this.stats });
  }

  /** A HostService over the same store: the fixture's own, or another replica writing to the shared table. */
  replica(hostTtlSeconds = 600, clock: Clock = systemClock): HostService {
    return new HostService({
      store: this.store,
      clock,
      hostTtlSeconds,
      cacheType: 'null',
      cacheTtlSeconds: 30,
      stats: this.stats,
      log: pino({ level: 'silent' }),
    });
  }

  heartbeat(service: string, ip: string, tags: Record<string, unknown> = {}, port = 8080, through = this.hostService) {
    return through.heartbeat({
      service,
      ip_address: ip,
      port,
      revision: 'r1',
      service_repo_name: '',
      tags: { az: 'az-1', region: 'region-1', instance_id: `i-${ip}`, ...tags },
    });
  }

  close(): void {
    this.server.closeAll();
    this.cache.close();
  }
}

/** Lets queued pushes and reads settle. */
export const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

/**
 * Waits until every transport has been sent `count` responses, then checks a moment later that
 * none was sent more (a push told to each watcher exactly once, over however many turns).
 */
export async function eachSentExactly(
  transports: readonly RecordingTransport<unknown>[],
  count: number,
): Promise<void> {
  const every = () => transports.every((transport) => transport.sent.length === count);
  await waitFor(`every stream to have ${count} responses`, every, 5000, 5);
  await settle();
  assert.ok(every(), 'no stream was written to twice');
}

/** Asserts the stream ended with gRPC status `code` and a message matching `message`. */
export function assertEnded(transport: RecordingTransport<unknown>, code: number, message: RegExp): void {
  assert.equal(transport.ended?.error?.code, code);
  assert.match(transport.ended?.error?.message ?? '', message);
}
