/**
 * A fixed-capacity ring buffer: pushing past the capacity drops the oldest item.
 *
 * The panel keeps the last five minutes of usage samples and the last few thousand log
 * lines per container in these, so its memory stays bounded however long it is open.
 */
export class RingBuffer<T> {
  private readonly items: (T | undefined)[];
  private start = 0;
  private count = 0;
  private dropped = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`ring buffer capacity must be a positive integer, not ${capacity}`);
    }
    this.items = new Array<T | undefined>(capacity);
  }

  /** How many items it holds now. */
  get length(): number {
    return this.count;
  }

  /** How many items were pushed out by newer ones since it was made or cleared. */
  get droppedCount(): number {
    return this.dropped;
  }

  /** Append an item; returns the item it pushed out, if any. */
  push(item: T): T | undefined {
    if (this.count < this.capacity) {
      this.items[(this.start + this.count) % this.capacity] = item;
      this.count++;
      return undefined;
    }
    const evicted = this.items[this.start];
    this.items[this.start] = item;
    this.start = (this.start + 1) % this.capacity;
    this.dropped++;
    return evicted;
  }

  /** Append many items, oldest first. */
  pushAll(items: Iterable<T>): void {
    for (const item of items) {
      this.push(item);
    }
  }

  /** The item at `index` (0 = oldest); negative counts from the newest (-1 = newest). */
  at(index: number): T | undefined {
    const i = index < 0 ? this.count + index : index;
    if (i < 0 || i >= this.count) {
      return undefined;
    }
    return this.items[(this.start + i) % this.capacity];
  }

  /** The newest item. */
  last(): T | undefined {
    return this.at(-1);
  }

  /** Oldest first. */
  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = 0; i < this.count; i++) {
      yield this.items[(this.start + i) % this.capacity] as T;
    }
  }

  /** A copy, oldest first. */
  toArray(): T[] {
    return Array.from(this);
  }

  clear(): void {
    this.items.fill(undefined);
    this.start = 0;
    this.count = 0;
    this.dropped = 0;
  }
}
