import type { Log } from '../logger.js';
import { hostProblem, type Host } from './model.js';

/** How many distinct invalid records are remembered as already logged. */
const REPORTED_RECORDS_MAX = 1000;

/**
 * The last line of defence between a store and a reader: only valid hosts (hostProblem) of the
 * service or repo that was asked for are served. Anything else a store hands back (a plugin's
 * bug, a damaged item, a record of another service) is skipped and logged once, never served,
 * so one bad record cannot make a whole list unreadable or send a proxy to port 0.
 */
export class ServableRecords {
  /** Records already found valid; weak, so it holds nothing a store has let go. */
  private readonly checked = new WeakSet<Host>();
  private readonly reported = new Set<string>();

  constructor(private readonly log: Log) {}

  /** `hosts` without the records a reader must not see; the same array when all are fine. */
  of(hosts: readonly Host[], listed: { service: string } | { repo: string }): readonly Host[] {
    let kept: Host[] | undefined;
    for (let index = 0; index < hosts.length; index++) {
      const host = hosts[index] as Host;
      const problem = this.problem(host, listed);
      if (problem === undefined) {
        kept?.push(host);
        continue;
      }
      kept ??= hosts.slice(0, index);
      this.report(host, problem, 'service' in listed ? listed.service : listed.repo);
    }
    return kept ?? hosts;
  }

  private problem(host: Host, listed: { service: string } | { repo: string }): string | undefined {
    if (this.checked.has(host)) return undefined;
    let problem: string | undefined;
    try {
      problem = hostProblem(host);
    } catch (error) {
      problem = `could not be read (${error instanceof Error ? error.message : String(error)})`;
    }
    if (problem === undefined && 'service' in listed && host.service !== listed.service)
      problem = `belongs to service '${host.service}'`;
    if (problem === undefined && 'repo' in listed && host.service_repo_name !== listed.repo)
      problem = `belongs to repo '${host.service_repo_name}'`;
    // Stores that keep records in memory hand out the same objects again: check each once.
    if (problem === undefined) this.checked.add(host);
    return problem;
  }

  /** Logged once per record and problem (as far as this bounded memo remembers), not on every read. */
  private report(record: unknown, problem: string, listed: string): void {
    const fields = record !== null && typeof record === 'object' ? (record as Record<string, unknown>) : {};
    const service = typeof fields.service === 'string' ? fields.service : undefined;
    const ip = typeof fields.ip_address === 'string' ? fields.ip_address : undefined;
    const key = `${listed}\u0000${service}\u0000${ip}\u0000${problem}`;
    if (this.reported.has(key)) return;
    if (this.reported.size >= REPORTED_RECORDS_MAX) this.reported.clear();
    this.reported.add(key);
    this.log.warn(
      { listed, service, ip, problem },
      'storage returned a record that is not a valid host: skipped, not served',
    );
  }
}
