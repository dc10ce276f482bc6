/**
 * Formatting of the figures the panel shows: sizes, durations, percentages, digests.
 *
 * Pure functions; every one is total (never throws) because the figures come from a
 * kernel, and a bad figure must show as "–", not break the panel.
 */

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** What the panel shows for a figure it does not have. */
export const MISSING = '–';

function isFiniteNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

/**
 * A byte count in binary units with three significant digits: `0 B`, `512 B`, `1.5 KiB`,
 * `12.3 MiB`, `100 MiB`. Docker prints the same figures (`docker history`, `docker stats`).
 */
export function formatBytes(bytes: number | null | undefined): string {
  if (!isFiniteNumber(bytes) || bytes < 0) {
    return MISSING;
  }
  if (bytes < 1024) {
    return `${Math.round(bytes)} B`;
  }
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  // 1023.95 KiB rounds to "1024 KiB" with toFixed: go one unit up instead.
  if (value >= 999.5 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  const digits = value < 10 ? 2 : value < 100 ? 1 : 0;
  return `${trimZeros(value.toFixed(digits))} ${BYTE_UNITS[unit]}`;
}

function trimZeros(fixed: string): string {
  return fixed.includes('.') ? fixed.replace(/\.?0+$/, '') : fixed;
}

/**
 * A duration in seconds the way people read uptimes: `45s`, `3m 05s`, `2h 07m`, `3d 4h`.
 * Two units at most, the second zero-padded so the text keeps its width while it ticks.
 */
export function formatDuration(seconds: number | null | undefined): string {
  if (!isFiniteNumber(seconds) || seconds < 0) {
    return MISSING;
  }
  const s = Math.floor(seconds);
  if (s < 60) {
    return `${s}s`;
  }
  const minutes = Math.floor(s / 60);
  if (minutes < 60) {
    return `${minutes}m ${pad2(s % 60)}s`;
  }
  const hours = Math.floor(minutes / 60);
  if (hours < 24) {
    return `${hours}h ${pad2(minutes % 60)}m`;
  }
  const days = Math.floor(hours / 24);
  return `${days}d ${hours % 24}h`;
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : `${n}`;
}

/** A percentage with one decimal below 10 and none above: `0.4%`, `37%`, `150%`. */
export function formatPercent(percent: number | null | undefined): string {
  if (!isFiniteNumber(percent) || percent < 0) {
    return MISSING;
  }
  return percent < 10 ? `${trimZeros(percent.toFixed(1))}%` : `${Math.round(percent)}%`;
}

/** `used / limit`, or just `used` when there is no limit: `12 MiB / 256 MiB`. */
export function formatUsage(
  used: number | null | undefined,
  limit: number | null | undefined,
  format: (value: number | null | undefined) => string = formatBytes
): string {
  const head = format(used);
  return isFiniteNumber(limit) ? `${head} / ${format(limit)}` : head;
}

/** A count of CPUs as a limit: `0.5 CPU`, `2 CPUs`. */
export function formatCpus(cpus: number | null | undefined): string {
  if (!isFiniteNumber(cpus) || cpus <= 0) {
    return MISSING;
  }
  const text = trimZeros(cpus.toFixed(2));
  return `${text} ${cpus === 1 ? 'CPU' : 'CPUs'}`;
}

/**
 * The first 12 hex digits of a digest, like `docker history` shows them.
 * `sha256:0123456789abcdef...` → `0123456789ab`; anything else → `–` or itself, cut.
 */
export function shortDigest(digest: string | null | undefined): string {
  if (typeof digest !== 'string' || digest === '') {
    return MISSING;
  }
  const hex = digest.includes(':') ? digest.slice(digest.indexOf(':') + 1) : digest;
  return hex.slice(0, 12);
}

/** A wall-clock time of a log line, `HH:MM:SS.mmm` in local time. */
export function formatClock(epochSeconds: number | null | undefined): string {
  if (!isFiniteNumber(epochSeconds)) {
    return MISSING;
  }
  const date = new Date(epochSeconds * 1000);
  const hh = pad2(date.getHours());
  const mm = pad2(date.getMinutes());
  const ss = pad2(date.getSeconds());
  const ms = `${date.getMilliseconds()}`.padStart(3, '0');
  return `${hh}:${mm}:${ss}.${ms}`;
}
