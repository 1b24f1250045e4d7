import * as grpc from '@grpc/grpc-js';
import type { TlsFiles } from '../tls-files.js';
import type { Log } from '../logger.js';
import { xdsProtos } from './protos.js';
import { encodeDeltaDiscoveryResponse, encodeDiscoveryResponse } from './response-wire.js';
import {
  StreamError,
  type DiscoveryRequest,
  type DiscoveryResponse,
  type StreamKind,
  type XdsStreamServer,
} from './stream-server.js';
import type { DeltaDiscoveryRequest, DeltaDiscoveryResponse, DeltaStreamKind } from './delta-stream.js';

/** Paths of the two state-of-the-world services discovery implements. */
export const ADS_METHOD = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';
export const EDS_METHOD = '/envoy.service.endpoint.v3.EndpointDiscoveryService/StreamEndpoints';
/** Paths of the two incremental ("delta") services. */
export const DELTA_ADS_METHOD = '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources';
export const DELTA_EDS_METHOD = '/envoy.service.endpoint.v3.EndpointDiscoveryService/DeltaEndpoints';

export interface XdsGrpcServerOptions {
  readonly streamServer: XdsStreamServer;
  readonly log: Log;
  /** Address to bind, e.g. `0.0.0.0` or `127.0.0.1`. */
  readonly host: string;
  /** TCP port; 0 picks a free one (see `port` after `start`). */
  readonly port: number;
  /** TLS material; with `ca`, clients must present a certificate signed by it. Undefined: plaintext. */
  readonly tls?: TlsFiles;
}

/**
 * Pings on an idle connection after this long, so a client that vanished without closing
 * (a killed pod, a dropped NAT entry) frees its stream within minutes, not hours.
 */
const KEEPALIVE_TIME_MS = 60_000;
/** A ping unanswered for this long closes the connection. */
const KEEPALIVE_TIMEOUT_MS = 20_000;
/** Clients (Envoy, gRPC) ping at most every few minutes; this refuses only abusive rates. */
const MIN_CLIENT_PING_INTERVAL_MS = 10_000;
/** How long shutdown waits for clients to leave after their streams were ended. */
const SHUTDOWN_GRACE_MS = 3_000;

/**
 * What the deserializer hands on for bytes it could not decode: malformed, or messages nested
 * past protobufjs's recursion limit (100, protoc's default; a deep `node.metadata` Struct). The
 * stream then ends with INVALID_ARGUMENT naming why, after the requests before it.
 */
interface Undecodable {
  readonly undecodable: string;
}

const UNDECODABLE = Symbol('undecodable');

function undecodable(error: unknown): Undecodable {
  return { [UNDECODABLE]: true, undecodable: error instanceof Error ? error.message : String(error) } as Undecodable;
}

function isUndecodable(request: object): request is Undecodable {
  return Object.hasOwn(request, UNDECODABLE);
}

/**
 * The xDS gRPC server: ADS and EDS-alone, both bidirectional streams of DiscoveryRequest and
 * DiscoveryResponse, encoded with the Envoy protos. Each call becomes one `XdsStream`; a
 * client that cancels, errors or half-closes has its stream closed and its watches dropped.
 */
export class XdsGrpcServer {
  private readonly server: grpc.Server;
  private boundPort: number | undefined;

  constructor(private readonly options: XdsGrpcServerOptions) {
    // grpc-js writes its own errors to stderr (a failed bind as "E No address added out of total 1
    // resolved"); they go to the log at debug instead, and main says a start-up failure once,
    // naming the setting. (Process-wide, as grpc-js's logger is; the last server set wins.)
    grpc.setLogger({
      error: (...args: unknown[]) => options.log.debug({ source: 'grpc-js' }, args.map(String).join(' ')),
    });
    this.server = new grpc.Server({
      'grpc.keepalive_time_ms': KEEPALIVE_TIME_MS,
      'grpc.keepalive_timeout_ms': KEEPALIVE_TIMEOUT_MS,
      'grpc.http2.min_ping_interval_without_data_ms': MIN_CLIENT_PING_INTERVAL_MS,
      // Nothing reads channelz here; on, it adds a tracker object of four closures to every
      // call and a Date.now() to every message sent and received (10,000 per change at scale).
      'grpc.enable_channelz': 0,
    });
    const protos = xdsProtos();
    const requestType = protos.discoveryRequest;
    const responseType = protos.discoveryResponse;
    const method = (path: string): grpc.MethodDefinition<DiscoveryRequest, DiscoveryResponse> => ({
      path,
      requestStream: true,
      responseStream: true,
      requestSerialize: (request) =>
        Buffer.from(requestType.encode(requestType.fromObject(request as object)).finish()),
      requestDeserialize: (bytes) => {
        try {
          // The decoded message as is: absent fields read as their defaults through its
          // prototype, so no plain copy is built of every ACK (10,000 per change at scale).
          return requestType.decode(bytes) as unknown as DiscoveryRequest;
        } catch (error) {
          // grpc-js would end the call with INTERNAL; it is the client's message that is wrong.
          return undecodable(error) as unknown as DiscoveryRequest;
        }
      },
      // By hand, sharing each resource's encoded bytes across every stream it is sent to (response-wire.ts).
      responseSerialize: encodeDiscoveryResponse,
      responseDeserialize: (bytes) => responseType.toObject(responseType.decode(bytes)) as DiscoveryResponse,
    });
    const deltaRequestType = protos.root.lookupType('envoy.service.discovery.v3.DeltaDiscoveryRequest');
    const deltaResponseType = protos.root.lookupType('envoy.service.discovery.v3.DeltaDiscoveryResponse');
    const deltaMethod = (path: string): grpc.MethodDefinition<DeltaDiscoveryRequest, DeltaDiscoveryResponse> => ({
      path,
      requestStream: true,
      responseStream: true,
      requestSerialize: (request) =>
        Buffer.from(deltaRequestType.encode(deltaRequestType.fromObject(request as object)).finish()),
      requestDeserialize: (bytes) => {
        try {
          return deltaRequestType.decode(bytes) as unknown as DeltaDiscoveryRequest;
        } catch (error) {
          return undecodable(error) as unknown as DeltaDiscoveryRequest;
        }
      },
      responseSerialize: encodeDeltaDiscoveryResponse,
      responseDeserialize: (bytes) =>
        deltaResponseType.toObject(deltaResponseType.decode(bytes)) as DeltaDiscoveryResponse,
    });
    this.server.addService(
      {
        StreamAggregatedResources: method(ADS_METHOD),
        DeltaAggregatedResources: deltaMethod(DELTA_ADS_METHOD),
      },
      {
        StreamAggregatedResources: (call: grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>) =>
          this.serve('ads', call),
        DeltaAggregatedResources: (call: grpc.ServerDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>) =>
          this.serveDelta('delta-ads', call),
      },
    );
    this.server.addService(
      { StreamEndpoints: method(EDS_METHOD), DeltaEndpoints: deltaMethod(DELTA_EDS_METHOD) },
      {
        StreamEndpoints: (call: grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>) =>
          this.serve('eds', call),
        DeltaEndpoints: (call: grpc.ServerDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>) =>
          this.serveDelta('delta-eds', call),
      },
    );
  }

  /** Binds and starts serving; resolves with the bound port. */
  start(): Promise<number> {
    const address = this.options.host.includes(':')
      ? `[${this.options.host}]:${this.options.port}`
      : `${this.options.host}:${this.options.port}`;
    return new Promise((resolve, reject) => {
      this.server.bindAsync(address, this.credentials(), (error, port) => {
        if (error) return reject(error);
        this.boundPort = port;
        resolve(port);
      });
    });
  }

  private credentials(): grpc.ServerCredentials {
    const tls = this.options.tls;
    if (!tls) return grpc.ServerCredentials.createInsecure();
    // With a CA, a client without a certificate it signed is refused during the handshake.
    return grpc.ServerCredentials.createSsl(
      tls.ca ?? null,
      [{ private_key: tls.key, cert_chain: tls.cert }],
      tls.ca !== undefined,
    );
  }

  /** The bound port, once started. */
  get port(): number | undefined {
    return this.boundPort;
  }

  /**
   * Ends every stream cleanly (status OK: clients reconnect, to another replica behind the same
   * address), waits briefly for connections to drain, then cuts whatever is left.
   */
  async close(): Promise<void> {
    this.options.streamServer.closeAll();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, SHUTDOWN_GRACE_MS);
      timer.unref();
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private serve(kind: StreamKind, call: grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>): void {
    this.attach(call, (transport) => this.options.streamServer.openStream(kind, transport));
  }

  private serveDelta(
    kind: DeltaStreamKind,
    call: grpc.ServerDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>,
  ): void {
    this.attach(call, (transport) => this.options.streamServer.openDeltaStream(kind, transport));
  }

  /** Wires one call to its protocol stream: requests in, responses out, and the call's end both ways. */
  private attach<Request extends object, Response>(
    call: grpc.ServerDuplexStream<Request, Response>,
    open: (transport: { peer: string; send(response: Response): void; end(error?: StreamError): void }) => {
      receive(request: Request): Promise<void>;
      refuse(reason: string): Promise<void>;
      close(): void;
    },
  ): void {
    let ended = false;
    const stream = open({
      peer: call.getPeer(),
      send: (response) => {
        if (!ended) call.write(response);
      },
      end: (error?: StreamError) => {
        if (ended) return;
        ended = true;
        if (error) call.emit('error', { code: error.code, details: error.message });
        else call.end();
      },
    });
    call.on('data', (request: Request | Undecodable) => {
      if (isUndecodable(request)) void stream.refuse(`the request could not be decoded: ${request.undecodable}`);
      else void stream.receive(request as Request);
    });
    const gone = () => {
      ended = true;
      stream.close();
    };
    call.on('end', () => {
      // The client half-closed: nothing more to ask, so the stream is over.
      stream.close();
      if (!ended) {
        ended = true;
        call.end();
      }
    });
    call.on('cancelled', gone);
    call.on('error', gone);
    call.on('close', gone);
  }
}
