import type { ChangeLog } from '../hosts/change-log.js';
import { HOST_STORE_METHODS, type HostStore } from '../hosts/host-store.js';

export interface StorageObserver {
  observeStorageCall(operation: string, ok: boolean, seconds: number): void;
}

/**
 * The same store, with every call counted and timed (calls, errors, latency per operation) for
 * the metrics. Behaviour is unchanged: results and errors pass through untouched.
 */
export function instrumentStore(store: HostStore, observer: StorageObserver): HostStore {
  const instrumented = Object.create(store) as HostStore;
  // `ping` too when the store has one: readiness probes show in the storage metrics as `ping`.
  const methods = store.ping ? [...HOST_STORE_METHODS, 'ping' as const] : HOST_STORE_METHODS;
  for (const method of methods) {
    (instrumented as unknown as Record<string, unknown>)[method] = async (...args: unknown[]) => {
      const started = performance.now();
      try {
        // Looked up per call, so the wrapped store stays the one place that decides what a method does.
        const result = await (store[method] as unknown as (...args: unknown[]) => Promise<unknown>).apply(store, args);
        observer.observeStorageCall(method, true, (performance.now() - started) / 1000);
        return result;
      } catch (error) {
        observer.observeStorageCall(method, false, (performance.now() - started) / 1000);
        throw error;
      }
    };
  }
  if (store.changeLog) {
    // The change feed's calls are storage calls too, named `changeLog.<method>` in the metrics.
    const log = store.changeLog;
    const timed = Object.create(log) as ChangeLog;
    for (const method of CHANGE_LOG_METHODS) {
      (timed as unknown as Record<string, unknown>)[method] = async (...args: unknown[]) => {
        const started = performance.now();
        try {
          const result = await (log[method] as (...args: unknown[]) => Promise<unknown>).apply(log, args);
          observer.observeStorageCall(`changeLog.${method}`, true, (performance.now() - started) / 1000);
          return result;
        } catch (error) {
          observer.observeStorageCall(`changeLog.${method}`, false, (performance.now() - started) / 1000);
          throw error;
        }
      };
    }
    Object.defineProperty(instrumented, 'changeLog', { value: timed, enumerable: true });
  }
  return instrumented;
}

const CHANGE_LOG_METHODS = [
  'append',
  'read',
  'announce',
  'withdraw',
  'prune',
] as const satisfies readonly (keyof ChangeLog)[];
