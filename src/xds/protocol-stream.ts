import type { Log } from '../logger.js';
import type { RegistryStats } from '../stats.js';
import type { XdsSnapshotCache } from './snapshot-cache.js';

/** The parts of `envoy.config.core.v3.Node` an operator needs to recognise a client. */
export interface NodeInfo {
  readonly id?: string;
  readonly cluster?: string;
  readonly locality?: { readonly region?: string; readonly zone?: string; readonly sub_zone?: string } | null;
  readonly user_agent_name?: string;
  readonly user_agent_version?: string;
}

/** A protocol violation that ends the stream with a gRPC status code. */
export class StreamError extends Error {
  override readonly name = 'StreamError';
  constructor(
    message: string,
    /** gRPC status code: 3 INVALID_ARGUMENT, 8 RESOURCE_EXHAUSTED, 14 UNAVAILABLE (shutting down). */
    readonly code: number,
  ) {
    super(message);
  }
}

const SETTLED: Promise<void> = Promise.resolve();

/** What `GET /v1/xds/clients` shows per resource type of a stream. */
export interface TypeStatus {
  readonly type_url: string;
  /** True when the client subscribes to every resource of the type. */
  readonly wildcard: boolean;
  readonly resource_names: readonly string[];
  readonly version_sent: string | null;
  readonly nonce_sent: string | null;
  readonly version_acked: string | null;
  /** Whether the client acknowledged the last response sent. */
  readonly up_to_date: boolean;
  readonly nack_count: number;
  readonly last_nack: {
    readonly error: string;
    readonly nonce: string;
    readonly version_kept: string;
    readonly at: string;
  } | null;
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

/** What every protocol stream keeps per resource type, for the admin view and the watches. */
export interface WatchedType {
  readonly typeUrl: string;
  wildcard: boolean;
  /**
   * The one watcher this type registers with the cache, for every name it watches and for the
   * service names when a wildcard: one function per stream and type, not one per name.
   */
  readonly onChange: () => void;
  unwatchNames: (() => void) | undefined;
}

/** How a stream ends on its transport: cleanly (OK) without an error, else with the error's status. */
export interface StreamEnd {
  readonly peer: string;
  end(error?: StreamError): void;
}

/**
 * What both xDS protocols (state of the world, stream-server.ts; incremental, delta-stream.ts)
 * do alike for one client stream: requests and pushes run one at a time in arrival order; a
 * StreamError ends the stream with its status and any other failure is logged; closing drops
 * every watch once; and the admin view of the stream. Each protocol says how it handles a
 * request and what its per-type state shows.
 */
export abstract class ProtocolStream<Request, Type extends WatchedType> {
  protected readonly types = new Map<string, Type>();
  protected node: NodeInfo | undefined;
  protected closed = false;
  /** Epoch milliseconds (a number, not a Date: one object fewer per stream). */
  private readonly connectedAt = Date.now();
  /** A task is running; later ones wait in `waiting`, in order. */
  private busy = false;
  private readonly waiting: { readonly task: () => void | Promise<void>; readonly done: () => void }[] = [];

  constructor(
    readonly id: number,
    readonly kind: ClientStatus['kind'],
    private readonly end: StreamEnd,
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
    for (const state of this.types.values()) {
      for (const name of this.watchedEndpoints(state)) this.options.cache.unwatchEndpoints(name, state.onChange);
      state.unwatchNames?.();
    }
    this.onClosed();
  }

  /** Server shutdown: end the stream cleanly, then drop its watches. */
  shutdown(): void {
    if (this.closed) return;
    this.close();
    this.end.end();
  }

  status(): ClientStatus {
    const node = this.node;
    return {
      stream_id: this.id,
      kind: this.kind,
      peer: this.end.peer,
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
      resources: [...this.types.values()].map((state) => this.typeStatus(state)),
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
        { stream: this.id, kind: this.kind, peer: this.end.peer, err: error },
        'xds: ending stream',
      );
      this.close();
      this.end.end(error);
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

  /** The names `state` watches for endpoints in the cache (each with `state.onChange`), for `close`. */
  protected abstract watchedEndpoints(state: Type): Iterable<string>;

  /** Handles one request: synchronously when it can, else with a promise of the end. */
  protected abstract handle(request: Request): void | Promise<void>;

  /** What the admin view shows of one resource type of this stream. */
  protected abstract typeStatus(state: Type): TypeStatus;
}
