/**
 * Limits on JSON a client sent, checked before any recursive code walks it.
 *
 * `JSON.parse` builds arbitrarily deep values without trouble (V8 parses iteratively), but every
 * recursive walker after it (a depth count, a schema check, key sorting, the proto3-JSON
 * conversion) uses one stack frame per level, and a 12 KB body of `[` is 6,000 levels: a stack
 * overflow, answered as a 500. This check walks with an explicit stack and stops at the first
 * container past the limit, so its cost is bounded by the body's size and its stack by nothing.
 */

/** Where a value nests too deep: the keys and indexes from the root to the first container past the limit. */
export type JsonPath = readonly (string | number)[];

interface Frame {
  readonly value: object;
  /** Containers from the root to this one, this one included. */
  readonly depth: number;
  readonly key: string | number;
  readonly parent: Frame | undefined;
}

/**
 * The path of the first array or object in `value` that lies more than `max` containers deep
 * (a scalar is depth 0, `{}` and `[1]` are depth 1, `{"a":[]}` is depth 2), or undefined when
 * none does. Never recurses; never looks below depth `max + 1`.
 */
export function jsonDepthExceeds(value: unknown, max: number): JsonPath | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  const stack: Frame[] = [{ value, depth: 1, key: '', parent: undefined }];
  for (let frame = stack.pop(); frame !== undefined; frame = stack.pop()) {
    if (frame.depth > max) return pathOf(frame);
    const container = frame.value;
    if (Array.isArray(container)) {
      for (let index = 0; index < container.length; index++) {
        const item: unknown = container[index];
        if (item !== null && typeof item === 'object')
          stack.push({ value: item, depth: frame.depth + 1, key: index, parent: frame });
      }
    } else {
      for (const key in container) {
        if (!Object.hasOwn(container, key)) continue;
        const item: unknown = (container as Record<string, unknown>)[key];
        if (item !== null && typeof item === 'object')
          stack.push({ value: item, depth: frame.depth + 1, key, parent: frame });
      }
    }
  }
  return undefined;
}

function pathOf(frame: Frame): JsonPath {
  const path: (string | number)[] = [];
  for (let at: Frame | undefined = frame; at?.parent !== undefined; at = at.parent) path.push(at.key);
  return path.reverse();
}

/** `a.b[3].c` for messages; keys are written as given. */
export function formatJsonPath(prefix: string, path: JsonPath): string {
  let text = prefix;
  for (const key of path) text += typeof key === 'number' ? `[${key}]` : text === '' ? key : `.${key}`;
  return text;
}

/**
 * Why `value` is not plain JSON data no deeper than `maxDepth` containers (as jsonDepthExceeds
 * counts), or undefined when it is: only strings, finite numbers, booleans, null, arrays and
 * plain objects. A cycle is caught by the depth bound. The depth is checked first, so the walk
 * that follows recurses at most `maxDepth` levels.
 */
export function plainJsonProblem(value: unknown, maxDepth: number): string | undefined {
  if (jsonDepthExceeds(value, maxDepth) !== undefined) return `is nested deeper than ${maxDepth} levels`;
  return notPlainData(value);
}

function notPlainData(value: unknown): string | undefined {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return undefined;
    case 'number':
      return Number.isFinite(value) ? undefined : 'holds a number JSON cannot write';
    case 'object':
      break;
    default:
      return `holds a value JSON cannot write (${typeof value})`;
  }
  if (value === null) return undefined;
  const prototype = Object.getPrototypeOf(value) as unknown;
  if (!Array.isArray(value) && prototype !== Object.prototype && prototype !== null)
    return 'holds an object that is not plain data';
  for (const inner of Object.values(value)) {
    const problem = notPlainData(inner);
    if (problem !== undefined) return problem;
  }
  return undefined;
}
