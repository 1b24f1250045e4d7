import {
  mergeHeartbeat,
  mergeTags,
  withStatuses,
  type Heartbeat,
  type Host,
  type InstanceStatus,
} from '../hosts/model.js';
import type { HeartbeatResult, HostStore, ServiceHosts } from '../hosts/host-store.js';

/** What a write does to the one record it names: store this whole record, or remove the record. */
export type RecordChange = { put: Host } | { del: [service: string, ipAddress: string] };

/** One write to one record, worked out against that record as the store holds it. */
export interface RecordWrite<T> {
  readonly service: string;
  readonly ipAddress: string;
  /** What the write makes of the record it finds (undefined: there is none): the change, if any, and the caller's answer. */
  decide(existing: Host | undefined): { change?: RecordChange; answer: T };
}

/**
 * The record-merge rule of every store that works its writes out in this process: the InMemory
 * store applies the change at once, the InFile store journals it first and works a batch out
 * against its earlier writes. (The DynamoDB store states the same rule as UpdateItem expressions,
 * so the table merges atomically.) The semantics are HostStore's.
 */
export const recordWrites = {
  heartbeat(heartbeat: Heartbeat): RecordWrite<HeartbeatResult> {
    return {
      service: heartbeat.service,
      ipAddress: heartbeat.ip_address,
      decide(previous) {
        const current = mergeHeartbeat(previous, heartbeat);
        return { change: { put: current }, answer: { previous, current } };
      },
    };
  },

  delete(service: string, ipAddress: string): RecordWrite<Host | undefined> {
    return {
      service,
      ipAddress,
      decide: (existing) =>
        existing ? { change: { del: [service, ipAddress] }, answer: existing } : { answer: undefined },
    };
  },

  deleteIfCheckInIs(service: string, ipAddress: string, lastCheckIn: string): RecordWrite<boolean> {
    return {
      service,
      ipAddress,
      decide: (existing) =>
        existing && existing.last_check_in === lastCheckIn
          ? { change: { del: [service, ipAddress] }, answer: true }
          : { answer: false },
    };
  },

  updateTags(
    service: string,
    ipAddress: string,
    tags: Readonly<Record<string, unknown>>,
  ): RecordWrite<Host | undefined> {
    return updateOf(service, ipAddress, (existing) => ({ ...existing, tags: mergeTags(existing.tags, tags) }));
  },

  setStatusOverride(
    service: string,
    ipAddress: string,
    status: InstanceStatus | undefined,
  ): RecordWrite<Host | undefined> {
    return updateOf(service, ipAddress, (existing) => withStatuses(existing, existing.reported_status, status));
  },
};

/** A write that changes an existing record and creates none: answered with the updated record, or undefined. */
function updateOf(service: string, ipAddress: string, update: (existing: Host) => Host): RecordWrite<Host | undefined> {
  return {
    service,
    ipAddress,
    decide(existing) {
      if (!existing) return { answer: undefined };
      const updated = update(existing);
      return { change: { put: updated }, answer: updated };
    },
  };
}

/**
 * A process-local registry. Records are immutable objects replaced on every write, so a list
 * handed out stays valid while later writes happen. Each service carries a change counter.
 */
export class MemoryHostStore implements HostStore {
  private readonly services = new Map<string, { hosts: Map<string, Host>; changeToken: number }>();
  private readonly repos = new Map<string, Map<string, Host>>();
  private changeCounter = 0;

  async heartbeat(heartbeat: Heartbeat): Promise<HeartbeatResult> {
    return this.write(recordWrites.heartbeat(heartbeat));
  }

  async get(service: string, ipAddress: string): Promise<Host | undefined> {
    return this.record(service, ipAddress);
  }

  async listByService(service: string): Promise<ServiceHosts> {
    const entry = this.services.get(service);
    if (!entry) return { hosts: [], changeToken: 0 };
    return { hosts: [...entry.hosts.values()], changeToken: entry.changeToken };
  }

  currentChangeToken(service: string): number {
    return this.services.get(service)?.changeToken ?? 0;
  }

  async listByRepo(repo: string): Promise<readonly Host[]> {
    if (repo === '') return [];
    return [...(this.repos.get(repo)?.values() ?? [])];
  }

  /** Always reachable: the records are in this process. */
  async ping(): Promise<void> {}

  async listServices(): Promise<readonly string[]> {
    return [...this.services.keys()];
  }

  async delete(service: string, ipAddress: string): Promise<Host | undefined> {
    return this.write(recordWrites.delete(service, ipAddress));
  }

  async deleteIfCheckInIs(service: string, ipAddress: string, lastCheckIn: string): Promise<boolean> {
    return this.write(recordWrites.deleteIfCheckInIs(service, ipAddress, lastCheckIn));
  }

  async updateTags(
    service: string,
    ipAddress: string,
    tags: Readonly<Record<string, unknown>>,
  ): Promise<Host | undefined> {
    return this.write(recordWrites.updateTags(service, ipAddress, tags));
  }

  async setStatusOverride(
    service: string,
    ipAddress: string,
    status: InstanceStatus | undefined,
  ): Promise<Host | undefined> {
    return this.write(recordWrites.setStatusOverride(service, ipAddress, status));
  }

  async close(): Promise<void> {}

  /** The stored record, synchronously, for a store that works a write out before it applies it. */
  record(service: string, ipAddress: string): Host | undefined {
    return this.services.get(service)?.hosts.get(ipAddress);
  }

  /** Applies a change as given, at once: a write worked out elsewhere, or persisted state being loaded. */
  apply(change: RecordChange): void {
    if ('put' in change) this.put(change.put);
    else this.remove(change.del[0], change.del[1]);
  }

  /** Every record, for a store that persists a snapshot. */
  *records(): Iterable<Host> {
    for (const entry of this.services.values()) yield* entry.hosts.values();
  }

  private write<T>(write: RecordWrite<T>): T {
    const { change, answer } = write.decide(this.record(write.service, write.ipAddress));
    if (change) this.apply(change);
    return answer;
  }

  private put(host: Host): void {
    let entry = this.services.get(host.service);
    if (!entry) {
      entry = { hosts: new Map(), changeToken: 0 };
      this.services.set(host.service, entry);
    }
    const previous = entry.hosts.get(host.ip_address);
    if (previous && previous.service_repo_name !== host.service_repo_name) this.unindexRepo(previous);
    entry.hosts.set(host.ip_address, host);
    entry.changeToken = ++this.changeCounter;
    if (host.service_repo_name !== '') {
      let repo = this.repos.get(host.service_repo_name);
      if (!repo) {
        repo = new Map();
        this.repos.set(host.service_repo_name, repo);
      }
      repo.set(repoKey(host), host);
    }
  }

  private remove(service: string, ipAddress: string): void {
    const entry = this.services.get(service);
    const existing = entry?.hosts.get(ipAddress);
    if (!entry || !existing) return;
    entry.hosts.delete(ipAddress);
    entry.changeToken = ++this.changeCounter;
    if (entry.hosts.size === 0) this.services.delete(service);
    this.unindexRepo(existing);
  }

  private unindexRepo(host: Host): void {
    if (host.service_repo_name === '') return;
    const repo = this.repos.get(host.service_repo_name);
    if (!repo) return;
    repo.delete(repoKey(host));
    if (repo.size === 0) this.repos.delete(host.service_repo_name);
  }
}

function repoKey(host: Host): string {
  return `${host.service}\u0000${host.ip_address}`;
}
