import type { Log } from '../logger.js';
import type { RegistryStats } from '../stats.js';
import { TYPE_URL, type ResourceTypeUrl } from './protos.js';
import type { XdsResource } from './resources.js';
import type { XdsSnapshotCache } from './snapshot-cache.js';
import { requestedType, StreamError, type Subscription, type TypeStatus } from './subscription.js';

export { StreamError, type TypeStatus } from './subscription.js';

/** The parts of `envoy.config.core.v3.Node` an operator needs to recognise a client. */
export interface NodeInfo {
  readonly id?: string;
  readonly cluster?: string;
  readonly locality?: { readonly region?: string; readonly zone?: string; readonly sub_zone?: string } | null;
  readonly user_agent_name?: string;
  readonly user_agent_version?: string;
}

const SETTLED: Promise<void> = Promise.resolve();

/** The fields both protocols' requests carry and the server reads (DiscoveryRequest, DeltaDiscoveryRequest). */
export interface ProtocolRequest {
  readonly node?: NodeInfo | null;
  readonly type_url: string;
  readonly response_nonce: string;
  readonly error_detail?: { readonly code?: number; readonly message?: string } | null;
}

/** The fields both protocols' responses carry (DiscoveryResponse, DeltaDiscoveryResponse). */
export interface ProtocolResponse {
  readonly resources: readonly XdsResource[];
  readonly type_url: ResourceTypeUrl;
  readonly nonce: string;
}

/** What `GET /v1/xds/clients` shows per connected stream. */
export interface ClientStatus {
  readonly stream_id: number;
  /** `ads`/`eds`: state of the world; `delta-ads`/`delta-eds`: incremental (delta-stream.ts). */
  readonly kind: 'ads' | 'eds' | 'delta-ads' | 'delta-eds';
  readonly peer: string;
  readonly connected_at: string;
  readonly node: {
    readonly id: string;
    readonly cluster: string;
    readonly locality: { readonly region: string; readonly zone: string; readonly sub_zone: string } | null;
    readonly user_agent: string;
  } | null;
  readonly resources: readonly TypeStatus[];
}

export interface StreamServerOptions {
  readonly cache: XdsSnapshotCache;
  readonly log: Log;
  readonly stats: RegistryStats;
}

/** How a stream reaches its client; implemented over a grpc-js duplex call (grpc-server.ts), or by tests. */
export interface ProtocolTransport<Response> {
  /** Where the client connects from, for logs and the admin view. */
  readonly peer: string;
  send(response: Response): void;
  /** Ends the stream: cleanly (OK) without an error, else with the error's status. */
  end(error?: StreamError): void;
}

/**
 * What both xDS protocols (state of the world, stream-server.ts; incremental, delta-stream.ts)
 * do alike for one client stream: requests and pushes run one at a time in arrival order; a
 * StreamError ends the stream with its status and any other failure is logged; closing drops
 * every watch once; a push from the cache answered once however many fold into it; the
 * resources a subscription (subscription.ts) names resolved for the client's node; NACKs
 * recorded; and the admin view of the stream. Each protocol says how it handles a request and
 * what it sends.
 */
export abstract class ProtocolStream<Request, Response, Type extends Subscription> {
  protected readonly types = new Map<string, Type>();
  protected node: NodeInfo | undefined;
  protected closed = false;
  private nonceCounter = 0;
  /** Epoch milliseconds (a number, not a Date: one object fewer per stream). */
  private readonly connectedAt = Date.now();
  /** A task is running; later ones wait in `waiting`, in order. */
  private busy = false;
  private readonly waiting: { readonly task: () => void | Promise<void>; readonly done: () => void }[] = [];

  constructor(
    readonly id: number,
    readonly kind: ClientStatus['kind'],
    protected readonly transport: ProtocolTransport<Response>,
    protected readonly options: StreamServerOptions,
    private readonly onClosed: () => void,
  ) {}

  /** Handles one request from the client. Settles once the request is processed (for tests). */
  receive(request: Request): Promise<void> {
    return this.enqueue(() => this.handle(request));
  }

  /** A request that cannot be served (it could not even be decoded): ends the stream with INVALID_ARGUMENT, after the requests before it. */
  refuse(reason: string): Promise<void> {
    return this.enqueue(async () => {
      throw new StreamError(reason, 3);
    });
  }

  /** The client went away (stream ended, cancelled or failed): drop every watch. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const state of this.types.values()) state.release();
    this.onClosed();
  }

  /** Server shutdown: end the stream cleanly, then drop its watches. */
  shutdown(): void {
    if (this.closed) return;
    this.close();
    this.transport.end();
  }

  status(): ClientStatus {
    const node = this.node;
    return {
      stream_id: this.id,
      kind: this.kind,
      peer: this.transport.peer,
      connected_at: new Date(this.connectedAt).toISOString(),
      node: node
        ? {
            id: node.id ?? '',
            cluster: node.cluster ?? '',
            locality: node.locality
              ? {
                  region: node.locality.region ?? '',
                  zone: node.locality.zone ?? '',
                  sub_zone: node.locality.sub_zone ?? '',
                }
              : null,
            user_agent: [node.user_agent_name, node.user_agent_version].filter(Boolean).join('/'),
          }
        : null,
      resources: [...this.types.values()].map((state) => state.status()),
    };
  }

  /**
   * Runs `task` after every task queued before it; a StreamError ends the stream. A task that
   * finishes synchronously (every resource it needs is in the cache) runs at once when nothing
   * is queued: a push to 10,000 streams is then one pass over the watchers, with no promise or
   * microtask per stream. Settles once the task has run.
   */
  protected enqueue(task: () => void | Promise<void>): Promise<void> {
    if (this.busy || this.waiting.length > 0) {
      return new Promise((resolve) => this.waiting.push({ task, done: resolve }));
    }
    const running = this.run(task);
    if (running === undefined) {
      // A task queued by the one that just ran (re-entrantly) runs now.
      this.drain();
      return SETTLED;
    }
    return running.then(() => this.drain());
  }

  /** Runs queued tasks until one goes asynchronous (it drains the rest when it settles) or none is left. */
  private drain(): void {
    while (!this.busy && this.waiting.length > 0) {
      const { task, done } = this.waiting.shift()!;
      const running = this.run(task);
      if (running === undefined) done();
      else
        void running.then(() => {
          done();
          this.drain();
        });
    }
  }

  /** Runs one task with `busy` set; undefined when it finished synchronously, else the promise of its end (never rejecting). */
  private run(task: () => void | Promise<void>): Promise<void> | undefined {
    if (this.closed) return undefined;
    this.busy = true;
    let result: void | Promise<void>;
    try {
      result = task();
    } catch (error) {
      this.busy = false;
      this.fail(error);
      return undefined;
    }
    if (result === undefined) {
      this.busy = false;
      return undefined;
    }
    return result.then(
      () => {
        this.busy = false;
      },
      (error: unknown) => {
        this.busy = false;
        this.fail(error);
      },
    );
  }

  private fail(error: unknown): void {
    if (error instanceof StreamError) {
      this.options.log.warn(
        { stream: this.id, kind: this.kind, peer: this.transport.peer, err: error },
        'xds: ending stream',
      );
      this.close();
      this.transport.end(error);
    } else {
      this.options.log.error({ stream: this.id, kind: this.kind, err: error }, 'xds: request failed');
    }
  }

  /**
   * Keeps what the admin view and the locality classes read of the client's node, the first
   * time it is sent (clients send it on a stream's first request only): not the decoded message,
   * whose metadata, extensions and defaults would stay with the stream for its life.
   */
  protected noteNode(node: NodeInfo | null | undefined): void {
    if (!node || this.node !== undefined) return;
    const locality = node.locality;
    this.node = {
      id: node.id,
      cluster: node.cluster,
      locality: locality ? { region: locality.region, zone: locality.zone, sub_zone: locality.sub_zone } : locality,
      user_agent_name: node.user_agent_name,
      user_agent_version: node.user_agent_version,
    };
  }

  /**
   * The type a request asks for (see `requestedType`): the EDS-only services refuse any other
   * with INVALID_ARGUMENT; undefined for a type not served here (logged as `unsupported`), which
   * the caller ignores.
   */
  protected typeOf(typeUrl: string, unsupported: string): ResourceTypeUrl | undefined {
    const type = requestedType(
      typeUrl,
      this.kind === 'eds' || this.kind === 'delta-eds',
      (asked) => new StreamError(`the EDS service serves only ${TYPE_URL.clusterLoadAssignment}, not '${asked}'`, 3),
    );
    // Nothing of that type exists here; the client's own timeout tells it so.
    if (type === undefined) this.options.log.info({ stream: this.id, type: typeUrl }, unsupported);
    return type;
  }

  /** A nonce never sent before on this stream: `prefix`, the stream id and a counter. */
  protected nextNonce(prefix: string): string {
    return `${prefix}${this.id}-${++this.nonceCounter}`;
  }

  /** The subscription of `typeUrl`, made on the type's first request and kept for the stream's life. */
  protected subscriptionOf(typeUrl: ResourceTypeUrl): Type {
    let state = this.types.get(typeUrl);
    if (!state) {
      const created: Type = this.newSubscription(typeUrl, () => this.push(created));
      state = created;
      this.types.set(typeUrl, state);
    }
    return state;
  }

  /** The client rejected the response `nonce` of `state`: counted, logged, shown in the admin view; nothing is resent. */
  protected nacked(
    state: Type,
    nonce: string,
    error: { readonly message?: string },
    versionKept: string,
    message: string,
  ): void {
    state.recordNack(nonce, error.message, versionKept);
    this.options.stats.xds('nack');
    this.options.log.warn(
      { stream: this.id, node: this.node?.id, type: state.typeUrl, nonce, versionKept, error: error.message },
      message,
    );
  }

  /** The cache changed something `state` subscribes to: answer once, after queued requests. */
  private push(state: Type): void {
    if (this.closed || state.pushQueued) return;
    state.pushQueued = true;
    void this.enqueue(() => {
      state.pushQueued = false;
      return this.respond(state, false);
    });
  }

  /**
   * Resolves what `state` names for this client's node and sends what the client lacks:
   * synchronously when every resource is at hand, else once the reads are done.
   */
  protected respond(state: Type, initial: boolean): void | Promise<void> {
    const locality = this.node?.locality;
    const now = state.resolveNow(locality);
    if (now) return this.send(state, now, initial, state.serviceNames);
    const unavailable = (service: string, error: unknown) =>
      this.options.log.warn({ err: error, service }, 'xds: endpoints unavailable');
    return state.resolve(locality, unavailable).then((resources) => {
      if (!this.closed) this.send(state, resources, initial, undefined);
    });
  }

  /** A new subscription of `typeUrl` whose cache watcher is `onChange`. */
  protected abstract newSubscription(typeUrl: ResourceTypeUrl, onChange: () => void): Type;

  /** Handles one request: synchronously when it can, else with a promise of the end. */
  protected abstract handle(request: Request): void | Promise<void>;

  /**
   * Sends what the client lacks of `resources` (what `state` names now, sorted by name), if
   * anything. `initial`: the answer to a type's first request (or a request with no nonce);
   * `names`: the shared subscription `resources` were resolved for, when it holds every one.
   */
  protected abstract send(
    state: Type,
    resources: readonly XdsResource[],
    initial: boolean,
    names: readonly string[] | undefined,
  ): void;
}
