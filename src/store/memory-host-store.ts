import {
  mergeHeartbeat,
  mergeTags,
  withStatuses,
  type Heartbeat,
  type Host,
  type InstanceStatus,
} from '../hosts/model.js';
import type { HeartbeatResult, HostStore, ServiceHosts } from '../hosts/host-store.js';

/**
 * A process-local registry. Records are immutable objects replaced on every write, so a list
 * handed out stays valid while later writes happen. Each service carries a change counter.
 */
export class MemoryHostStore implements HostStore {
  private readonly services = new Map<string, { hosts: Map<string, Host>; changeToken: number }>();
  private readonly repos = new Map<string, Map<string, Host>>();
  private changeCounter = 0;

  async heartbeat(heartbeat: Heartbeat): Promise<HeartbeatResult> {
    return this.applyHeartbeat(heartbeat);
  }

  async get(service: string, ipAddress: string): Promise<Host | undefined> {
    return this.services.get(service)?.hosts.get(ipAddress);
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
    return this.remove(service, ipAddress);
  }

  async deleteIfCheckInIs(service: string, ipAddress: string, lastCheckIn: string): Promise<boolean> {
    const existing = this.services.get(service)?.hosts.get(ipAddress);
    if (!existing || existing.last_check_in !== lastCheckIn) return false;
    this.remove(service, ipAddress);
    return true;
  }

  async updateTags(
    service: string,
    ipAddress: string,
    tags: Readonly<Record<string, unknown>>,
  ): Promise<Host | undefined> {
    return this.applyTags(service, ipAddress, tags);
  }

  async setStatusOverride(
    service: string,
    ipAddress: string,
    status: InstanceStatus | undefined,
  ): Promise<Host | undefined> {
    const existing = this.lookup(service, ipAddress);
    if (!existing) return undefined;
    const updated = withStatuses(existing, existing.reported_status, status);
    this.put(updated);
    return updated;
  }

  async close(): Promise<void> {}

  /** Synchronous core of `heartbeat`, shared with stores that persist what this one holds. */
  protected applyHeartbeat(heartbeat: Heartbeat): HeartbeatResult {
    const previous = this.services.get(heartbeat.service)?.hosts.get(heartbeat.ip_address);
    const current = mergeHeartbeat(previous, heartbeat);
    this.put(current);
    return { previous, current };
  }

  protected applyTags(service: string, ipAddress: string, tags: Readonly<Record<string, unknown>>): Host | undefined {
    const existing = this.services.get(service)?.hosts.get(ipAddress);
    if (!existing) return undefined;
    const updated: Host = { ...existing, tags: mergeTags(existing.tags, tags) };
    this.put(updated);
    return updated;
  }

  /** The stored record, synchronously, for stores that work out a write before they publish it. */
  protected lookup(service: string, ipAddress: string): Host | undefined {
    return this.services.get(service)?.hosts.get(ipAddress);
  }

  /** Stores a whole record as given (also used when loading persisted state). */
  protected put(host: Host): void {
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

  protected remove(service: string, ipAddress: string): Host | undefined {
    const entry = this.services.get(service);
    const existing = entry?.hosts.get(ipAddress);
    if (!entry || !existing) return undefined;
    entry.hosts.delete(ipAddress);
    entry.changeToken = ++this.changeCounter;
    if (entry.hosts.size === 0) this.services.delete(service);
    this.unindexRepo(existing);
    return existing;
  }

  /** Every record, for stores that persist a snapshot. */
  protected *allHosts(): Iterable<Host> {
    for (const entry of this.services.values()) yield* entry.hosts.values();
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
