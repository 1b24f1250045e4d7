import * as grpc from '@grpc/grpc-js';
import { TYPE_URL } from '../../src/xds/protos.js';
import { RawXdsStream, decodeResources, type WireResponse } from './ads-client.js';

/** One endpoint of a ClusterLoadAssignment as a proxy would route to it. */
export interface RoutedEndpoint {
  readonly ip: string;
  readonly port: number;
  readonly weight: number;
  /** `HEALTHY` or `DRAINING` (what discovery sends). */
  readonly health: string;
}

interface WireCla {
  cluster_name: string;
  endpoints?: Array<{
    lb_endpoints?: Array<{
      endpoint: { address: { socket_address: { address: string; port_value: number } } };
      health_status?: string;
      load_balancing_weight?: { value: number };
    }>;
  }>;
}

/** The endpoints of each ClusterLoadAssignment in `response`, by cluster name. */
export function routedEndpointsByCluster(response: WireResponse): Map<string, RoutedEndpoint[]> {
  const out = new Map<string, RoutedEndpoint[]>();
  for (const cla of decodeResources(response) as unknown as WireCla[]) {
    const endpoints: RoutedEndpoint[] = [];
    for (const locality of cla.endpoints ?? [])
      for (const lb of locality.lb_endpoints ?? [])
        endpoints.push({
          ip: lb.endpoint.address.socket_address.address,
          port: lb.endpoint.address.socket_address.port_value,
          weight: lb.load_balancing_weight?.value ?? 1,
          health: lb.health_status ?? 'UNKNOWN',
        });
    out.set(cla.cluster_name, endpoints);
  }
  return out;
}

/** `ip:port w=N HEALTH`: one endpoint as one comparable word. */
export function endpointWord(endpoint: RoutedEndpoint): string {
  return `${endpoint.ip}:${endpoint.port} w=${endpoint.weight} ${endpoint.health}`;
}

/**
 * One ADS stream on a replica's xDS port watching `services` over EDS, every response ACKed, as
 * Envoy keeps one: it remembers what each cluster was last sent, and tells listeners of every
 * cluster a response carried.
 */
export class XdsWatcher {
  private readonly client: grpc.Client;
  private readonly stream: RawXdsStream;
  /** Each watched cluster's endpoints, as the responses so far left them (absent: never sent). */
  readonly clusters = new Map<string, RoutedEndpoint[]>();
  /** How many responses arrived. */
  responses = 0;
  private readonly listeners = new Set<(cluster: string, endpoints: RoutedEndpoint[]) => void>();
  /** Resolves when the stream ends (the replica died, or close()). */
  readonly ended: Promise<grpc.StatusObject>;

  constructor(
    xdsPort: number,
    readonly services: readonly string[],
    nodeId = 'xds-watcher',
  ) {
    this.client = new grpc.Client(`127.0.0.1:${xdsPort}`, grpc.credentials.createInsecure());
    this.stream = new RawXdsStream(this.client);
    this.ended = this.stream.status;
    this.stream.onResponse = (response) => {
      this.stream.ack(response, [...services]);
      this.responses++;
      for (const [cluster, endpoints] of routedEndpointsByCluster(response)) {
        this.clusters.set(cluster, endpoints);
        for (const listener of this.listeners) listener(cluster, endpoints);
      }
    };
    this.stream.send({
      type_url: TYPE_URL.clusterLoadAssignment,
      resource_names: [...services],
      node: { id: nodeId },
    });
  }

  /** Called with every cluster every response carries, after it is recorded; returns the way to stop. */
  onCluster(listener: (cluster: string, endpoints: RoutedEndpoint[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The endpoints of `cluster` as words, sorted; undefined while it was never sent. */
  words(cluster: string): string[] | undefined {
    return this.clusters.get(cluster)?.map(endpointWord).sort();
  }

  /** Resolves with the ms it took until `check` held (checked now and after each response); rejects past `timeoutMs`. */
  until(check: () => boolean, timeoutMs: number, what: () => string): Promise<number> {
    const started = performance.now();
    return new Promise((resolve, reject) => {
      const done = () => {
        if (!check()) return;
        clearTimeout(timer);
        stop();
        resolve(performance.now() - started);
      };
      const timer = setTimeout(() => {
        stop();
        reject(new Error(`${what()}: not within ${timeoutMs} ms`));
      }, timeoutMs);
      const stop = this.onCluster(done);
      done();
    });
  }

  close(): void {
    this.listeners.clear();
    this.stream.close();
    this.client.close();
  }
}
