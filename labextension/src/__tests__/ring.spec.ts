import { RingBuffer } from '../ring';

describe('RingBuffer', () => {
  it('keeps items in order until full', () => {
    const ring = new RingBuffer<number>(3);
    expect(ring.length).toBe(0);
    expect(ring.last()).toBeUndefined();
    ring.push(1);
    ring.push(2);
    expect(ring.toArray()).toEqual([1, 2]);
    expect(ring.last()).toBe(2);
  });

  it('drops the oldest item past its capacity and counts what it dropped', () => {
    const ring = new RingBuffer<number>(3);
    ring.pushAll([1, 2, 3]);
    expect(ring.push(4)).toBe(1);
    expect(ring.push(5)).toBe(2);
    expect(ring.toArray()).toEqual([3, 4, 5]);
    expect(ring.length).toBe(3);
    expect(ring.droppedCount).toBe(2);
  });

  it('indexes from both ends', () => {
    const ring = new RingBuffer<string>(4);
    ring.pushAll(['a', 'b', 'c', 'd', 'e', 'f']);
    expect(ring.at(0)).toBe('c');
    expect(ring.at(-1)).toBe('f');
    expect(ring.at(-4)).toBe('c');
    expect(ring.at(4)).toBeUndefined();
    expect(ring.at(-5)).toBeUndefined();
  });

  it('stays bounded however much goes through it', () => {
    const ring = new RingBuffer<number>(300);
    for (let i = 0; i < 100000; i++) {
      ring.push(i);
    }
    expect(ring.length).toBe(300);
    expect(ring.at(0)).toBe(99700);
    expect([...ring].length).toBe(300);
  });

  it('clears', () => {
    const ring = new RingBuffer<number>(2);
    ring.pushAll([1, 2, 3]);
    ring.clear();
    expect(ring.toArray()).toEqual([]);
    expect(ring.droppedCount).toBe(0);
    ring.push(9);
    expect(ring.toArray()).toEqual([9]);
  });

  it('refuses a capacity that is not a positive integer', () => {
    expect(() => new RingBuffer<number>(0)).toThrow(RangeError);
    expect(() => new RingBuffer<number>(1.5)).toThrow(RangeError);
  });
});
