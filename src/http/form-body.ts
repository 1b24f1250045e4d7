import { parse as parseQueryString } from 'fast-querystring';

/**
 * A form body (`application/x-www-form-urlencoded`) as the original's framework (werkzeug) read
 * it: a field sent twice keeps its first value, and a percent-escape that is not valid UTF-8
 * decodes to U+FFFD, so neither a repeated field nor a raw `%FF` is ever stored.
 *
 * fast-querystring reads the common body (every escape valid) quickly, but leaves an invalid
 * escape as its raw text; a value still holding a `%` is read again by the WHATWG parser
 * (URLSearchParams), whose decoding is werkzeug's: bytes that are not UTF-8 become U+FFFD and
 * a `%` not followed by two hex digits stays as it is.
 */
export function parseForm(text: string): Record<string, string> {
  const parsed = parseQueryString(text) as Record<string, string | string[]>;
  let undecoded = false;
  for (const key in parsed) {
    const value = parsed[key] as string | string[];
    const first = typeof value === 'string' ? value : (value[0] as string);
    parsed[key] = first;
    if (first.includes('%') || key.includes('%')) undecoded = true;
  }
  return undecoded ? parseWhatwg(text) : (parsed as Record<string, string>);
}

function parseWhatwg(text: string): Record<string, string> {
  // No prototype, like fast-querystring's result: a field named `__proto__` stays a field.
  const fields = Object.create(null) as Record<string, string>;
  for (const [key, value] of new URLSearchParams(text)) if (!(key in fields)) fields[key] = value;
  return fields;
}
