/**
 * Whether an `If-None-Match` header names `etag` (or is `*`), by the weak comparison RFC 9110
 * prescribes for it: `W/"x"` and `"x"` match each other. Every conditional GET uses this.
 */
export function ifNoneMatchIncludes(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  if (header === etag) return true;
  const opaque = etag.startsWith('W/') ? etag.slice(2) : etag;
  return header.split(',').some((candidate) => {
    const tag = candidate.trim();
    return tag === '*' || tag === opaque || tag === `W/${opaque}`;
  });
}
