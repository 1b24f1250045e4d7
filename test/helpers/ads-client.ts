import * as grpc from '@grpc/grpc-js';
import { ADS_METHOD, EDS_METHOD } from '../../src/xds/grpc-server.js';
import { xdsProtos } from '../../src/xds/protos.js';

/** A DiscoveryResponse as decoded from the wire. */
export interface WireResponse {
  version_info: string;
  resources: { type_url: string; value: Uint8Array }[];
  type_url: string;
  nonce: string;
}

export interface WireRequest {
  version_info?: string;
  node?: Record<string, unknown>;
  resource_names?: string[];
  type_url: string;
  response_nonce?: string;
  error_detail?: { code: number; message: string };
}

/**
 * A bare xDS client stream, speaking the wire protocol directly (no caching, no validation), so
 * tests and the benchmark see exactly what the server sends and when.
 */
export class RawXdsStream {
  private readonly call: grpc.ClientDuplexStream<WireRequest, WireResponse>;
  private readonly queued: WireResponse[] = [];
  private readonly waiters: ((response: WireResponse) => void)[] = [];
  /** Resolves with the stream's final status. */
  readonly status: Promise<grpc.StatusObject>;
  /** Called for every response as it arrives (the benchmark timestamps here). */
  onResponse: ((response: WireResponse) => void) | undefined;

  constructor(client: grpc.Client, kind: 'ads' | 'eds' = 'ads') {
    const protos = xdsProtos();
    this.call = client.makeBidiStreamRequest(
      kind === 'ads' ? ADS_METHOD : EDS_METHOD,
      (request: WireRequest) =>
        Buffer.from(protos.discoveryRequest.encode(protos.discoveryRequest.fromObject(request)).finish()),
      (bytes: Buffer) =>
        protos.discoveryResponse.toObject(protos.discoveryResponse.decode(bytes), { defaults: true }) as WireResponse,
    );
    this.call.on('data', (response: WireResponse) => {
      this.onResponse?.(response);
      const waiter = this.waiters.shift();
      if (waiter) waiter(response);
      else this.queued.push(response);
    });
    this.status = new Promise((resolve) => this.call.on('status', resolve));
    this.call.on('error', () => undefined);
  }

  send(request: WireRequest): void {
    this.call.write(request);
  }

  /** The next response, or a rejection after `timeoutMs`. */
  next(timeoutMs = 3000): Promise<WireResponse> {
    const queued = this.queued.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error(`no response within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = (response: WireResponse) => {
        clearTimeout(timer);
        resolve(response);
      };
      this.waiters.push(waiter);
    });
  }

  /** Resolves true if no response arrives within `ms`. */
  async silentFor(ms: number): Promise<boolean> {
    try {
      await this.next(ms);
      return false;
    } catch {
      return true;
    }
  }

  /** ACKs `response` with the given names. */
  ack(response: WireResponse, resourceNames: string[]): void {
    this.send({
      type_url: response.type_url,
      version_info: response.version_info,
      response_nonce: response.nonce,
      resource_names: resourceNames,
    });
  }

  close(): void {
    this.call.end();
    this.call.cancel();
  }
}

/** Decodes the Any resources of a response with the Envoy protos. */
export function decodeResources(response: WireResponse): Record<string, unknown>[] {
  const protos = xdsProtos();
  return response.resources.map((resource) => {
    const type = protos.typeOf(resource.type_url);
    if (!type) throw new Error(`unknown type ${resource.type_url}`);
    return type.toObject(type.decode(resource.value), { enums: String, longs: String, oneofs: true }) as Record<
      string,
      unknown
    >;
  });
}
