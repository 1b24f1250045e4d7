import * as grpc from '@grpc/grpc-js';
import { DELTA_ADS_METHOD, DELTA_EDS_METHOD } from '../../src/xds/grpc-server.js';
import { xdsProtos } from '../../src/xds/protos.js';

/** A DeltaDiscoveryResponse as decoded from the wire. */
export interface DeltaWireResponse {
  system_version_info: string;
  resources: { name: string; version: string; resource: { type_url: string; value: Uint8Array } }[];
  type_url: string;
  removed_resources: string[];
  nonce: string;
}

export interface DeltaWireRequest {
  node?: Record<string, unknown>;
  type_url: string;
  resource_names_subscribe?: string[];
  resource_names_unsubscribe?: string[];
  initial_resource_versions?: Record<string, string>;
  response_nonce?: string;
  error_detail?: { code: number; message: string };
}

/** A bare incremental-xDS client stream speaking the wire protocol, so tests see exactly what is sent. */
export class RawDeltaStream {
  private readonly call: grpc.ClientDuplexStream<DeltaWireRequest, DeltaWireResponse>;
  private readonly queued: DeltaWireResponse[] = [];
  private readonly waiters: ((response: DeltaWireResponse) => void)[] = [];
  readonly status: Promise<grpc.StatusObject>;

  constructor(client: grpc.Client, kind: 'ads' | 'eds' = 'ads') {
    const root = xdsProtos().root;
    const request = root.lookupType('envoy.service.discovery.v3.DeltaDiscoveryRequest');
    const response = root.lookupType('envoy.service.discovery.v3.DeltaDiscoveryResponse');
    this.call = client.makeBidiStreamRequest(
      kind === 'ads' ? DELTA_ADS_METHOD : DELTA_EDS_METHOD,
      (message: DeltaWireRequest) => Buffer.from(request.encode(request.fromObject(message)).finish()),
      (bytes: Buffer) => response.toObject(response.decode(bytes), { defaults: true }) as DeltaWireResponse,
    );
    this.call.on('data', (message: DeltaWireResponse) => {
      const waiter = this.waiters.shift();
      if (waiter) waiter(message);
      else this.queued.push(message);
    });
    this.status = new Promise((resolve) => this.call.on('status', resolve));
    this.call.on('error', () => undefined);
  }

  send(message: DeltaWireRequest): void {
    this.call.write(message);
  }

  /** ACKs `response` (its nonce, no error). */
  ack(response: DeltaWireResponse): void {
    this.send({ type_url: response.type_url, response_nonce: response.nonce });
  }

  next(timeoutMs = 3000): Promise<DeltaWireResponse> {
    const queued = this.queued.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error(`no delta response within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = (message: DeltaWireResponse) => {
        clearTimeout(timer);
        resolve(message);
      };
      this.waiters.push(waiter);
    });
  }

  async silentFor(ms: number): Promise<boolean> {
    try {
      await this.next(ms);
      return false;
    } catch {
      return true;
    }
  }

  close(): void {
    this.call.end();
    this.call.cancel();
  }
}
