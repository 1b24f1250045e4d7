import { versionOf, type HostSnapshot } from './host-lists.js';
import { effectiveStatus, type Host, type InstanceStatus } from './model.js';

/**
 * Which hosts a v1 list read shows: `undefined` (no `?status=`) the `UP` ones only, written as
 * the original wrote them; `all` every live host, or one status name its hosts only, each then
 * written with its effective `status`.
 */
export type StatusQuery = undefined | 'all' | InstanceStatus;

/** Views already built, per domain snapshot and query: a snapshot is immutable, so each view is too. */
const views = new WeakMap<HostSnapshot, Map<Exclude<StatusQuery, undefined> | 'UP-only', HostSnapshot>>();

/**
 * The list `query` shows of `snapshot` (every live host, whatever its status), as a snapshot of
 * its own with its own version (ETag), built once per snapshot and query and then the same
 * object, so front ends memoise its bytes by identity as they do the domain's.
 *
 * Without a query, a snapshot whose hosts are all `UP` is its own view: the bytes and ETag of
 * the plain read are exactly those of before statuses existed. With one, the version is that of
 * the hosts shown (statuses included) marked with the query, so it never names the same bytes
 * as the plain read's.
 */
export function statusView(snapshot: HostSnapshot, query: StatusQuery): HostSnapshot {
  if (query === undefined) {
    // The hottest read: decided once per snapshot, not by walking its hosts on every request.
    let plain = plainViews.get(snapshot);
    if (plain === undefined) {
      plain = snapshot.hosts.every(isUp) ? snapshot : viewOf(snapshot, undefined);
      plainViews.set(snapshot, plain);
    }
    return plain;
  }
  return viewOf(snapshot, query);
}

/** The plain read's view of each snapshot: itself while every host is `UP`. */
const plainViews = new WeakMap<HostSnapshot, HostSnapshot>();

/** The view of `snapshot` that `query` shows, built once per snapshot and query. */
function viewOf(snapshot: HostSnapshot, query: StatusQuery): HostSnapshot {
  const key = query ?? 'UP-only';
  let ofSnapshot = views.get(snapshot);
  const known = ofSnapshot?.get(key);
  if (known) return known;
  const shown =
    query === 'all' ? snapshot.hosts : snapshot.hosts.filter((host) => effectiveStatus(host) === (query ?? 'UP'));
  const view: HostSnapshot = Object.freeze({
    hosts: Object.freeze([...shown]),
    version: query === undefined ? versionOf(shown) : `${versionOf(shown)}.${query}`,
    nextExpiryAt: snapshot.nextExpiryAt,
    protectedHosts: snapshot.protectedHosts,
    ...(snapshot.staleAgeSeconds === undefined ? {} : { staleAgeSeconds: snapshot.staleAgeSeconds }),
    ...(query === undefined ? {} : { listsStatus: true as const }),
  });
  if (!ofSnapshot) {
    ofSnapshot = new Map();
    views.set(snapshot, ofSnapshot);
  }
  ofSnapshot.set(key, view);
  return view;
}

function isUp(host: Host): boolean {
  return effectiveStatus(host) === 'UP';
}

/** How many hosts of `hosts` have each status (every status named, 0 included). */
export function statusCounts(hosts: readonly Host[]): Record<InstanceStatus, number> {
  const counts: Record<InstanceStatus, number> = { UP: 0, DRAINING: 0, OUT_OF_SERVICE: 0 };
  for (const host of hosts) counts[effectiveStatus(host)]++;
  return counts;
}
