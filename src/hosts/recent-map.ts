/**
 * A map that keeps the recently used entries and forgets the rest: a bound for every per-name
 * structure a stranger can fill by naming things (services or repos read, never registered).
 *
 * Two generations instead of an exact LRU list, so a hit costs one `Map.get` and nothing else
 * (the cached GET it serves takes microseconds): entries are inserted into the current
 * generation; when it holds `generationSize` entries it becomes the previous one and the one
 * before is dropped whole. A hit in the previous generation moves the entry to the current one.
 * So an entry used at least once per `generationSize` insertions is never forgotten, and the map
 * never holds more than `2 * generationSize` entries.
 */
export class RecentMap<K, V> {
  private current = new Map<K, V>();
  private previous = new Map<K, V>();

  constructor(private readonly generationSize: number) {
    if (!(generationSize >= 1)) throw new RangeError(`generationSize must be at least 1, not ${generationSize}`);
  }

  get(key: K): V | undefined {
    const value = this.current.get(key);
    if (value !== undefined) return value;
    const old = this.previous.get(key);
    if (old !== undefined) {
      this.previous.delete(key);
      this.insert(key, old);
    }
    return old;
  }

  /** The value under `key` without counting it as a use (it is not moved to the current generation). */
  peek(key: K): V | undefined {
    return this.current.get(key) ?? this.previous.get(key);
  }

  /** Every key held (the generations never share one). */
  *keys(): IterableIterator<K> {
    yield* this.current.keys();
    yield* this.previous.keys();
  }

  set(key: K, value: V): void {
    this.previous.delete(key);
    this.insert(key, value);
  }

  delete(key: K): boolean {
    const inCurrent = this.current.delete(key);
    return this.previous.delete(key) || inCurrent;
  }

  clear(): void {
    this.current.clear();
    this.previous.clear();
  }

  /** Entries held now: at most twice the generation size. */
  get size(): number {
    return this.current.size + this.previous.size;
  }

  private insert(key: K, value: V): void {
    if (this.current.size >= this.generationSize && !this.current.has(key)) {
      this.previous = this.current;
      this.current = new Map();
    }
    this.current.set(key, value);
  }
}
