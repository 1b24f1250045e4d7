import type { Host, HeartbeatInput } from './model.js';
import { RecentMap } from './recent-map.js';

/**
 * Instances remembered per generation: past this many, the least recently heartbeating are
 * forgotten, and their next heartbeat is simply written. Bounds what strangers can make this
 * process hold however many addresses they send.
 */
const REMEMBERED_INSTANCES = 50_000;

interface LastWrite {
  /** Epoch ms of the write. */
  readonly at: number;
  /** Everything the heartbeat said but the time: a heartbeat saying anything else is written at once. */
  readonly said: string;
  readonly host: Host;
}

/**
 * HEARTBEAT_WRITE_INTERVAL: a heartbeat that says exactly what this process last wrote for the
 * instance, less than the interval ago, is acknowledged without a write; anything routing can
 * see (port, revision, repo, a tag, any field) is written at once, as is the first heartbeat of
 * an instance this process has not written, or has forgotten. So storage gets at most one
 * write per interval per instance and replica for a host that only says "still here", and its
 * stored `last_check_in` may trail its last heartbeat by up to the interval, which expiry adds
 * to HOST_TTL (HostService). Memory is bounded (RecentMap).
 */
export class HeartbeatWrites {
  private readonly lastWrites = new RecentMap<string, LastWrite>(REMEMBERED_INSTANCES);

  constructor(private readonly intervalMs: number) {}

  /** The host as last written, when `input` needs no write now; undefined when it must be written. */
  unwritten(key: string, input: HeartbeatInput, now: number): Host | undefined {
    const last = this.lastWrites.get(key);
    if (last === undefined || now - last.at >= this.intervalMs || now < last.at) return undefined;
    return last.said === JSON.stringify(input) ? last.host : undefined;
  }

  /** `input` was written as `host` at `now`. */
  written(key: string, input: HeartbeatInput, host: Host, now: number): void {
    this.lastWrites.set(key, { at: now, said: JSON.stringify(input), host });
  }

  /** The instance was removed: its next heartbeat is written at once (and re-creates it). */
  forget(key: string): void {
    this.lastWrites.delete(key);
  }
}

/** The key HeartbeatWrites remembers an instance by. */
export function heartbeatWriteKey(service: string, instanceKey: string): string {
  return `${service}\u0000${instanceKey}`;
}
