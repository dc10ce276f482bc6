/**
 * The log view's filter box and its bounded buffer of log lines.
 *
 * A filter is words separated by spaces, all of which must hold for a line to show:
 *
 *     error            the line contains "error" (case-insensitive)
 *     "disk full"      the line contains the phrase
 *     -debug           the line does not contain "debug"
 *     stream:stderr    only stderr (also `stream:stdout`, or the short `is:stderr`)
 *     cell:3           only lines printed by cell 3
 */

import { RingBuffer } from './ring';

/** One line of a container's log, as the kernel sends it (see docs/protocol.md). */
export interface ILogRecord {
  /** Seconds since the epoch. */
  t: number;
  /** "stdout" or "stderr" (a record of another stream is shown as stdout). */
  stream: string;
  /** The text of the line, without its newline. */
  line: string;
  /** The execution count of the cell that printed it, or null for the container's own. */
  cell: number | null;
}

/** A parsed filter. An empty filter matches every line. */
export interface ILogFilter {
  include: string[];
  exclude: string[];
  stream: string | null;
  cell: number | null;
}

export const EMPTY_FILTER: ILogFilter = { include: [], exclude: [], stream: null, cell: null };

/** Words of the filter text; a double-quoted phrase is one word. */
function words(text: string): string[] {
  const out: string[] = [];
  const re = /(-?)"([^"]*)"?|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null) {
    if (m[3] !== undefined) {
      out.push(m[3]);
    } else if (m[2] !== '') {
      out.push(`${m[1]}${m[2]}`);
    }
  }
  return out;
}

/** Parse the filter box's text. Never throws: what it does not understand is a word. */
export function parseFilter(text: string): ILogFilter {
  const filter: ILogFilter = { include: [], exclude: [], stream: null, cell: null };
  for (const word of words(text)) {
    const lower = word.toLowerCase();
    const field = /^(stream|is|cell):(.+)$/.exec(lower);
    if (field !== null) {
      const [, key, value] = field;
      if ((key === 'stream' || key === 'is') && (value === 'stdout' || value === 'stderr')) {
        filter.stream = value;
        continue;
      }
      if (key === 'cell' && /^\d+$/.test(value)) {
        filter.cell = Number(value);
        continue;
      }
    }
    if (lower.startsWith('-') && lower.length > 1) {
      filter.exclude.push(lower.slice(1));
    } else {
      filter.include.push(lower);
    }
  }
  return filter;
}

/** True when the filter is empty (every line shows). */
export function isEmptyFilter(filter: ILogFilter): boolean {
  return (
    filter.include.length === 0 &&
    filter.exclude.length === 0 &&
    filter.stream === null &&
    filter.cell === null
  );
}

/** The stream a record is shown as. */
export function streamOf(record: ILogRecord): 'stdout' | 'stderr' {
  return record.stream === 'stderr' ? 'stderr' : 'stdout';
}

/** Whether a record passes the filter. */
export function matches(record: ILogRecord, filter: ILogFilter): boolean {
  if (filter.stream !== null && streamOf(record) !== filter.stream) {
    return false;
  }
  if (filter.cell !== null && record.cell !== filter.cell) {
    return false;
  }
  if (filter.include.length === 0 && filter.exclude.length === 0) {
    return true;
  }
  const line = record.line.toLowerCase();
  return (
    filter.include.every(word => line.includes(word)) &&
    !filter.exclude.some(word => line.includes(word))
  );
}

/** The last `capacity` log lines of one container. */
export class LogBuffer {
  private readonly ring: RingBuffer<ILogRecord>;
  /** Lines the kernel skipped (a flood) plus lines pushed out of this buffer. */
  private skippedByKernel = 0;
  private appended = 0;

  constructor(capacity = 2000) {
    this.ring = new RingBuffer<ILogRecord>(capacity);
  }

  get capacity(): number {
    return this.ring.capacity;
  }

  get length(): number {
    return this.ring.length;
  }

  /** Every line ever appended (held or not): tells a view how many are new. */
  get total(): number {
    return this.appended;
  }

  /** Lines no longer held: dropped by the kernel in a flood or pushed out here. */
  get dropped(): number {
    return this.skippedByKernel + this.ring.droppedCount;
  }

  /** Add lines, oldest first; `skipped` lines were left out by the kernel before these. */
  append(records: Iterable<ILogRecord>, skipped = 0): void {
    this.skippedByKernel += Math.max(0, skipped);
    for (const record of records) {
      this.ring.push(record);
      this.appended++;
    }
  }

  clear(): void {
    this.ring.clear();
    this.skippedByKernel = 0;
    this.appended = 0;
  }

  /** Every held line, oldest first. */
  all(): ILogRecord[] {
    return this.ring.toArray();
  }

  /** The held lines that pass the filter, oldest first. */
  filtered(filter: ILogFilter): ILogRecord[] {
    if (isEmptyFilter(filter)) {
      return this.all();
    }
    const out: ILogRecord[] = [];
    for (const record of this.ring) {
      if (matches(record, filter)) {
        out.push(record);
      }
    }
    return out;
  }
}
