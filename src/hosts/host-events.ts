import type { Log } from '../logger.js';

/**
 * Where news of a changed service came from:
 * - `local`: this process wrote it (a registration, delete, weight, status override, or an expired
 *   host it removed): the change feed tells the other replicas of these, and only these;
 * - `remote`: another replica wrote it and the change feed said so;
 * - `read`: a read of storage found what a proxy routes on different from the list kept before
 *   (a write through another replica, seen without the feed); the new list is already kept.
 */
export type ChangeOrigin = 'local' | 'remote' | 'read';

/** Told a service whose routing may have changed, and where the news came from. */
export type ServiceChangeListener = (service: string, origin: ChangeOrigin) => void;

/**
 * The one publisher of what changed in the registry: the host lists, the xDS cache, the service
 * directory and the change feed subscribe here, and the domain (HostService, ExpiryJudge) and the
 * change feed publish. Every listener is called synchronously, in the order it subscribed; one
 * that throws is logged and the others are still told.
 *
 * A local change reaches every change listener first, then the local-change listeners (the
 * feed), so what this process serves is dropped before the news leaves it.
 */
export class HostEvents {
  private readonly changeListeners = new Set<ServiceChangeListener>();
  private readonly localListeners = new Set<(service: string) => void>();
  private readonly resyncListeners = new Set<() => void>();

  constructor(private readonly log: Log) {}

  /**
   * Called with a service name whenever what a proxy routes on may have changed for it (a host
   * added, removed, expired, re-weighted or re-tagged), whatever the origin. Returns an
   * unsubscribe function.
   */
  onServiceChanged(listener: ServiceChangeListener): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  /**
   * Only the changes this process wrote: what the change feed tells the other replicas. Not the
   * changes it learned of from them or noticed on a read.
   */
  onLocalChange(listener: (service: string) => void): () => void {
    this.localListeners.add(listener);
    return () => this.localListeners.delete(listener);
  }

  /** Called when anything may have changed (`publishResync`): every kept view is to be read again. */
  onResync(listener: () => void): () => void {
    this.resyncListeners.add(listener);
    return () => this.resyncListeners.delete(listener);
  }

  /** This process wrote a change to `service`. */
  publishLocalChange(service: string): void {
    this.publishChange(service, 'local');
    for (const listener of this.localListeners) {
      try {
        listener(service);
      } catch (error) {
        this.log.error({ err: error, service }, 'local change listener failed');
      }
    }
  }

  /** Another replica changed these services (the change feed says so); not published as local. */
  publishRemoteChanges(services: Iterable<string>): void {
    for (const service of services) this.publishChange(service, 'remote');
  }

  /** A read of `service` found its routing changed; the list read is already kept. */
  publishChangeSeenOnRead(service: string): void {
    this.publishChange(service, 'read');
  }

  /**
   * Anything may have changed without a word in the feed (a replica left, perhaps between a write
   * and its record): every kept view is to be read again.
   */
  publishResync(): void {
    for (const listener of this.resyncListeners) {
      try {
        listener();
      } catch (error) {
        this.log.error({ err: error }, 're-sync listener failed');
      }
    }
  }

  private publishChange(service: string, origin: ChangeOrigin): void {
    for (const listener of this.changeListeners) {
      try {
        listener(service, origin);
      } catch (error) {
        this.log.error({ err: error, service }, 'service change listener failed');
      }
    }
  }
}
