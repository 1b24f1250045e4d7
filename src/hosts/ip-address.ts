import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

/**
 * The canonical text of an IPv4 or IPv6 address, or undefined when `text` is neither.
 * IPv6 is written in RFC 5952 form so that two spellings of one address are one host.
 */
export function canonicalIp(text: string): string | undefined {
  const family = isIP(text);
  if (family === 4) return text;
  if (family === 6) {
    if (text.includes('%')) return undefined; // a zone index only means something on the sender's machine
    const parsed = ipaddr.IPv6.parse(text);
    return parsed.isIPv4MappedAddress() ? parsed.toIPv4Address().toString() : parsed.toRFC5952String();
  }
  return undefined;
}
