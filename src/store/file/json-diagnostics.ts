/**
 * Messages about JSON text that cannot be read: where it stops being valid, what was expected
 * there and what was found, for the InFile store's refusals and warnings about damaged files.
 */

/** The UTF-8 byte-order mark some editors put before the first character. */
export const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/** A JSON object: not null, not an array. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** What was found, in the words of a message: its kind, and its value when short. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'object') return 'an object';
  const text = JSON.stringify(value);
  return `${typeof value} ${text.length > 40 ? `${text.slice(0, 40)}…` : text}`;
}

/** What stands at `index` of `text`, quoted; `atEnd` when the text ends there. */
export function foundAt(text: string, index: number, atEnd: string): string {
  if (index >= text.length) return atEnd;
  const snippet = text.slice(index, index + 16);
  return /^\0+$/.test(snippet) ? 'NUL bytes' : JSON.stringify(snippet);
}

/** The 1-based line of `text` that `index` is on. */
export function lineOf(text: string, index: number): number {
  let line = 1;
  for (let at = text.indexOf('\n'); at !== -1 && at < index; at = text.indexOf('\n', at + 1)) line++;
  return line;
}

/** Whether `content` starts with a UTF-8 byte-order mark, which JSON.parse refuses. */
export function hasBom(content: Buffer): boolean {
  return content.length >= BOM.length && content.subarray(0, BOM.length).equals(BOM);
}

/** The value of a JSON text, or where the text stops being valid JSON and what was expected there. */
export function parseJson(text: string): { value: unknown } | { index: number; expected: string } {
  try {
    return { value: JSON.parse(text) };
  } catch {
    const error = locateJsonError(text);
    return { index: error?.index ?? text.length, expected: error?.expected ?? 'valid JSON' };
  }
}

/** Where a JSON text stops being valid and what was expected there; JSON.parse names neither reliably. */
export function locateJsonError(text: string): { index: number; expected: string } | undefined {
  let at = 0;
  const stop = (expected: string): never => {
    throw new JsonStop(at, expected);
  };
  const space = () => {
    while (at < text.length && ' \t\n\r'.includes(text[at]!)) at++;
  };
  const string = () => {
    at++; // the opening quote
    for (;;) {
      if (at >= text.length) stop("'\"' to end the string");
      const code = text.charCodeAt(at);
      if (code === 0x22) {
        at++;
        return;
      }
      if (code === 0x5c) {
        const escape = text[at + 1];
        if (escape !== undefined && '"\\/bfnrt'.includes(escape)) at += 2;
        else if (escape === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(at + 2, at + 6))) at += 6;
        else stop('an escape sequence');
      } else if (code < 0x20) {
        stop('a character allowed in a string');
      } else {
        at++;
      }
    }
  };
  const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  const value = (depth: number): void => {
    space();
    if (depth > 1000) stop('less deeply nested data');
    const char = text[at];
    if (char === '{' || char === '[') {
      const close = char === '{' ? '}' : ']';
      at++;
      space();
      if (text[at] === close) {
        at++;
        return;
      }
      for (;;) {
        if (close === '}') {
          space();
          if (text[at] !== '"') stop('a property name in double quotes');
          string();
          space();
          if (text[at] !== ':') stop("':' after the property name");
          at++;
        }
        value(depth + 1);
        space();
        if (text[at] === ',') {
          at++;
          continue;
        }
        if (text[at] === close) {
          at++;
          return;
        }
        stop(`',' or '${close}'`);
      }
    }
    if (char === '"') return string();
    NUMBER.lastIndex = at;
    if (NUMBER.test(text)) {
      at = NUMBER.lastIndex;
      return;
    }
    for (const literal of ['true', 'false', 'null']) {
      if (text.startsWith(literal, at)) {
        at += literal.length;
        return;
      }
    }
    stop('a JSON value');
  };
  try {
    value(0);
    space();
    if (at < text.length) stop('nothing more after the JSON value');
    return undefined;
  } catch (error) {
    if (error instanceof JsonStop) return { index: error.index, expected: error.expected };
    throw error;
  }
}

class JsonStop {
  constructor(
    readonly index: number,
    readonly expected: string,
  ) {}
}
