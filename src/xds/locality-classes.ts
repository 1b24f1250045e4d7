import type { HostSnapshot } from '../hosts/host-lists.js';
import { hostLocality, type ProxyLocality } from './resources.js';

/** The locality a proxy states in its xDS `node` (`envoy.config.core.v3.Locality`); `sub_zone` is not used. */
export interface NodeLocality {
  readonly region?: string;
  readonly zone?: string;
}

/**
 * The regions and zones a service's live hosts are in, and so the locality classes its proxies
 * fall into. A class is what decides a proxy's ClusterLoadAssignment under
 * `XDS_LOCALITY_PRIORITY`, so every proxy of one class shares one built resource. Classes come
 * from the hosts, never from what clients send: a proxy's locality is mapped onto the data
 * (`classOf`), so however many distinct localities strangers state, a service has at most one
 * class per region and per (region, zone) of its hosts, plus the "no locality" class.
 */
export class LocalityIndex {
  private readonly regions = new Set<string>();
  private readonly zones = new Set<string>();

  constructor(snapshot: HostSnapshot) {
    for (const host of snapshot.hosts) {
      const { region, zone } = hostLocality(host);
      this.regions.add(region);
      this.zones.add(zoneKey(region, zone));
    }
  }

  /**
   * The class of a proxy at `node`: undefined (today's single-priority answer) for a proxy that
   * states no region or one no host is in; else its region, with its zone when some host is in
   * that zone and `''` ("no local zone": the whole region comes first) when none is.
   */
  classOf(node: NodeLocality | null | undefined): ProxyLocality | undefined {
    const region = node?.region ?? '';
    if (region === '' || !this.regions.has(region)) return undefined;
    const zone = node?.zone ?? '';
    return { region, zone: zone !== '' && this.zones.has(zoneKey(region, zone)) ? zone : '' };
  }
}

/** A string naming a class, for maps. */
export function classKey(locality: ProxyLocality): string {
  return zoneKey(locality.region, locality.zone);
}

function zoneKey(region: string, zone: string): string {
  return JSON.stringify([region, zone]);
}
