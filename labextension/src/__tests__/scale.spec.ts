import {
  axisMax,
  GAP_SECONDS,
  IFrame,
  linePath,
  niceBytesCeiling,
  niceCeiling,
  ticks,
  windowMax,
  xOf,
  yOf
} from '../scale';

const MiB = 1024 * 1024;

describe('niceCeiling', () => {
  it.each([
    [0, 1],
    [-3, 1],
    [0.7, 1],
    [1, 1],
    [1.2, 2],
    [2.1, 2.5],
    [3, 5],
    [7, 10],
    [42, 50],
    [110, 200],
    [0.03, 0.05]
  ])('%d rounds up to %d', (value, nice) => {
    expect(niceCeiling(value)).toBeCloseTo(nice, 10);
  });
});

describe('niceBytesCeiling', () => {
  it('goes to the next power of two, at least 1 MiB', () => {
    expect(niceBytesCeiling(0)).toBe(MiB);
    expect(niceBytesCeiling(3 * MiB)).toBe(4 * MiB);
    expect(niceBytesCeiling(64 * MiB)).toBe(64 * MiB);
    expect(niceBytesCeiling(65 * MiB)).toBe(128 * MiB);
  });
});

describe('axisMax', () => {
  it('runs to the limit while the data stay under it', () => {
    expect(axisMax(10 * MiB, 64 * MiB, niceBytesCeiling)).toBe(64 * MiB);
  });
  it('runs above the data when there is no limit', () => {
    expect(axisMax(10 * MiB, null, niceBytesCeiling)).toBe(16 * MiB);
    expect(axisMax(37, undefined)).toBe(50);
  });
  it('never cuts off data over the limit', () => {
    expect(axisMax(150, 100)).toBe(200);
  });
});

describe('windowMax', () => {
  it('only looks inside the window', () => {
    const points = [
      { t: 0, v: 999 },
      { t: 100, v: 5 },
      { t: 150, v: null },
      { t: 200, v: 7 }
    ];
    expect(windowMax(points, 200, 150)).toBe(7);
    expect(windowMax([], 200, 150)).toBe(0);
  });
});

describe('frame mapping', () => {
  const frame: IFrame = { now: 1000, window: 300, width: 300, height: 100, max: 50 };
  it('puts now at the right edge and the window start at the left', () => {
    expect(xOf(1000, frame)).toBe(300);
    expect(xOf(700, frame)).toBe(0);
    expect(xOf(850, frame)).toBe(150);
  });
  it('puts 0 at the bottom and max at the top, clamped', () => {
    expect(yOf(0, frame)).toBe(100);
    expect(yOf(50, frame)).toBe(0);
    expect(yOf(25, frame)).toBe(50);
    expect(yOf(80, frame)).toBe(0);
    expect(yOf(-3, frame)).toBe(100);
  });
});

describe('linePath', () => {
  const frame: IFrame = { now: 10, window: 10, width: 100, height: 10, max: 10 };
  it('joins consecutive samples', () => {
    const path = linePath(
      [
        { t: 8, v: 0 },
        { t: 9, v: 5 },
        { t: 10, v: 10 }
      ],
      frame
    );
    expect(path).toBe('M80 10 L90 5 L100 0');
  });
  it('breaks the line at a missing value and at a gap in time', () => {
    const path = linePath(
      [
        { t: 1, v: 1 },
        { t: 2, v: null },
        { t: 3, v: 1 },
        { t: 3 + GAP_SECONDS + 1, v: 1 }
      ],
      frame
    );
    expect(path.match(/M/g)!.length).toBe(3);
    expect(path).not.toContain('L');
  });
  it('leaves out samples outside the window', () => {
    expect(linePath([{ t: -100, v: 1 }, { t: 50, v: 1 }], frame)).toBe('');
  });
});

describe('ticks', () => {
  it('spreads evenly', () => {
    expect(ticks(100, 4)).toEqual([0, 25, 50, 75, 100]);
    expect(ticks(0)).toEqual([0]);
  });
});
