/**
 * Chart scaling: from samples (time, value) to SVG path data in a fixed-size box.
 *
 * The y axis runs to the limit when there is one (memory against its limit, CPU against
 * its quota, pids against pids.max), else to a "nice" ceiling above the window's maximum,
 * so the axis changes only when a peak enters or leaves the window, not every second.
 */

/** One point of a series: seconds since the epoch and a value (null: no figure). */
export interface IPoint {
  t: number;
  v: number | null;
}

/** The box a chart draws into, and the time window it shows. */
export interface IFrame {
  /** The right edge of the window, seconds since the epoch. */
  now: number;
  /** Width of the window in seconds (300 for five minutes). */
  window: number;
  /** Size of the drawing area in SVG user units. */
  width: number;
  height: number;
  /** The value at the top of the box. */
  max: number;
}

/** Samples further apart than this many seconds are not joined by a line. */
export const GAP_SECONDS = 3.5;

/** The smallest of 1, 2, 2.5, 5 × 10^k that is at least `value` (decimal figures). */
export function niceCeiling(value: number): number {
  if (!Number.isFinite(value) || value <= 0) {
    return 1;
  }
  const exponent = Math.floor(Math.log10(value));
  const base = Math.pow(10, exponent);
  for (const step of [1, 2, 2.5, 5, 10]) {
    const candidate = step * base;
    // Guard against 0.30000000000000004-style noise.
    if (candidate >= value * (1 - 1e-12)) {
      return candidate;
    }
  }
  return 10 * base;
}

/** The smallest power of two (in bytes, at least 1 MiB) that is at least `bytes`. */
export function niceBytesCeiling(bytes: number): number {
  const floor = 1024 * 1024;
  if (!Number.isFinite(bytes) || bytes <= floor) {
    return floor;
  }
  return Math.pow(2, Math.ceil(Math.log2(bytes)));
}

/** The largest value among the points inside the window, or 0. */
export function windowMax(points: Iterable<IPoint>, now: number, window: number): number {
  let max = 0;
  for (const p of points) {
    if (p.v !== null && p.t >= now - window && p.t <= now && p.v > max) {
      max = p.v;
    }
  }
  return max;
}

/**
 * The top of the y axis: the limit when there is one and the data stay under it, else
 * a nice ceiling above the data (with 10 % headroom so a line never runs along the top).
 */
export function axisMax(
  dataMax: number,
  limit: number | null | undefined,
  ceiling: (value: number) => number = niceCeiling
): number {
  if (typeof limit === 'number' && Number.isFinite(limit) && limit > 0 && dataMax <= limit) {
    return limit;
  }
  return ceiling(dataMax * 1.1);
}

/** x of a time in the frame. */
export function xOf(t: number, frame: IFrame): number {
  return ((t - (frame.now - frame.window)) / frame.window) * frame.width;
}

/** y of a value in the frame (0 at the bottom, clamped to the box). */
export function yOf(v: number, frame: IFrame): number {
  const ratio = frame.max > 0 ? Math.min(Math.max(v / frame.max, 0), 1) : 0;
  return frame.height - ratio * frame.height;
}

function fmt(n: number): string {
  // Two decimals are plenty in a box of a few hundred units and keep the path short.
  return (Math.round(n * 100) / 100).toString();
}

/**
 * SVG path data (`M x y L x y …`) of the points inside the window. A missing value or a
 * gap longer than GAP_SECONDS starts a new segment, so a pause in sampling shows as a
 * gap, not as a line drawn across it.
 */
export function linePath(points: Iterable<IPoint>, frame: IFrame): string {
  const parts: string[] = [];
  let previous: IPoint | null = null;
  for (const p of points) {
    if (p.t < frame.now - frame.window - GAP_SECONDS || p.t > frame.now) {
      previous = null;
      continue;
    }
    if (p.v === null) {
      previous = null;
      continue;
    }
    const joined = previous !== null && p.t - previous.t <= GAP_SECONDS;
    parts.push(`${joined ? 'L' : 'M'}${fmt(xOf(p.t, frame))} ${fmt(yOf(p.v, frame))}`);
    previous = p;
  }
  return parts.join(' ');
}

/** Evenly spaced tick values from 0 to max inclusive (count intervals). */
export function ticks(max: number, count = 4): number[] {
  if (!(max > 0) || count < 1) {
    return [0];
  }
  const out: number[] = [];
  for (let i = 0; i <= count; i++) {
    out.push((max * i) / count);
  }
  return out;
}
