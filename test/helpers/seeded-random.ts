/**
 * A small seeded generator (mulberry32), so a randomised test replays exactly from its seed:
 * the same seed gives the same sequence of choices on every machine.
 */
export class SeededRandom {
  private state: number;

  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  /** A seed from `value` (decimal text) when given, else a random one. */
  static seedFrom(value: string | undefined): number {
    if (value !== undefined && value.trim() !== '') {
      const seed = Number(value.trim());
      if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff)
        throw new Error(`seed ${JSON.stringify(value)}: expected an integer 0..4294967295`);
      return seed;
    }
    return Math.floor(Math.random() * 0x100000000);
  }

  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 0x100000000;
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from nothing');
    return items[Math.floor(this.next() * items.length)] as T;
  }

  /** A new array with `items` in a random order. */
  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let index = out.length - 1; index > 0; index--) {
      const other = Math.floor(this.next() * (index + 1));
      [out[index], out[other]] = [out[other] as T, out[index] as T];
    }
    return out;
  }
}
