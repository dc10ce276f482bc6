/**
 * The messages of the `cellbox` comm, as docs/protocol.md describes them, and their
 * validation. A kernel is another process: everything it sends is checked here before
 * the panel uses it, and a message that does not fit is dropped, never half applied.
 */

import { ILogRecord } from './logfilter';

/** The comm's target name in the kernel. */
export const COMM_TARGET = 'cellbox';

/** The protocol version this extension speaks (docs/protocol.md). */
export const PROTOCOL_VERSION = 1;

export interface ILimits {
  memory: number | null;
  memory_swap: number | null;
  cpus: number | null;
  pids: number | null;
}

/** One row of the image's history, top layer first, like `docker history`. */
export interface ILayer {
  created: string | null;
  created_by: string;
  size: number;
  digest: string | null;
  empty_layer: boolean;
}

/** The container's own writable layer (its overlayfs upper dir). */
export interface IUpper {
  size: number | null;
  files: number | null;
}

export interface IContainerInfo {
  id: string;
  name: string;
  image: string;
  image_digest: string;
  state: string;
  exit_code: number | null;
  oom_killed: boolean;
  started_at: number | null;
  limits: ILimits;
  layers: ILayer[];
  upper: IUpper;
}

/** One usage sample of one container. */
export interface ISample {
  t: number;
  /** CPU use in percent of one core since the previous sample (null for the first). */
  cpu: number | null;
  mem: number | null;
  mem_limit: number | null;
  pids: number | null;
  pids_limit: number | null;
  /** OOM kills in the container's cgroup so far (a counter). */
  oom_kills: number;
}

export interface IKernelInfo {
  host_cpus: number;
  interval: number;
  history: number;
}

export interface ISnapshotMessage {
  version: number;
  type: 'snapshot';
  kernel: IKernelInfo;
  current: string | null;
  containers: IContainerInfo[];
  usage: Record<string, ISample[]>;
  logs: Record<string, { records: ILogRecord[]; skipped: number }>;
}

export interface IContainersMessage {
  version: number;
  type: 'containers';
  current: string | null;
  containers: IContainerInfo[];
}

export interface IUsageMessage {
  version: number;
  type: 'usage';
  samples: Record<string, ISample>;
}

export interface ILogsMessage {
  version: number;
  type: 'logs';
  container: string;
  records: ILogRecord[];
  skipped: number;
}

export interface IErrorMessage {
  version: number;
  type: 'error';
  message: string;
}

export type KernelMessage =
  | ISnapshotMessage
  | IContainersMessage
  | IUsageMessage
  | ILogsMessage
  | IErrorMessage;

/** What the frontend sends: which kinds of updates it wants pushed. */
export interface ISubscribeMessage {
  type: 'subscribe';
  usage: boolean;
  logs: boolean;
}

export interface IRefreshMessage {
  type: 'refresh';
}

export type FrontendMessage = ISubscribeMessage | IRefreshMessage;

// ------------------------------------------------------------------- validation helpers

type Json = unknown;

function isObject(value: Json): value is Record<string, Json> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function num(value: Json): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

function nonNegative(value: Json): number | null {
  const n = num(value);
  return n !== null && n >= 0 ? n : null;
}

function str(value: Json, fallback = ''): string {
  return typeof value === 'string' ? value : fallback;
}

function list(value: Json): Json[] {
  return Array.isArray(value) ? value : [];
}

/** Hex id of a container: what the panel uses as a key (and in DOM ids). */
function isId(value: Json): value is string {
  return typeof value === 'string' && /^[0-9a-f]{1,64}$/.test(value);
}

export function parseLimits(value: Json): ILimits {
  const o = isObject(value) ? value : {};
  return {
    memory: nonNegative(o.memory),
    memory_swap: num(o.memory_swap),
    cpus: nonNegative(o.cpus),
    pids: nonNegative(o.pids)
  };
}

export function parseLayer(value: Json): ILayer | null {
  if (!isObject(value)) {
    return null;
  }
  return {
    created: typeof value.created === 'string' ? value.created : null,
    created_by: str(value.created_by),
    size: nonNegative(value.size) ?? 0,
    digest: typeof value.digest === 'string' && value.digest !== '' ? value.digest : null,
    empty_layer: value.empty_layer === true
  };
}

export function parseContainer(value: Json): IContainerInfo | null {
  if (!isObject(value) || !isId(value.id)) {
    return null;
  }
  const upper = isObject(value.upper) ? value.upper : {};
  return {
    id: value.id,
    name: str(value.name, value.id.slice(0, 12)),
    image: str(value.image),
    image_digest: str(value.image_digest),
    state: str(value.state, 'unknown'),
    exit_code: num(value.exit_code),
    oom_killed: value.oom_killed === true,
    started_at: num(value.started_at),
    limits: parseLimits(value.limits),
    layers: list(value.layers)
      .map(parseLayer)
      .filter((l): l is ILayer => l !== null),
    upper: { size: nonNegative(upper.size), files: nonNegative(upper.files) }
  };
}

export function parseSample(value: Json): ISample | null {
  if (!isObject(value)) {
    return null;
  }
  const t = num(value.t);
  if (t === null) {
    return null;
  }
  return {
    t,
    cpu: nonNegative(value.cpu),
    mem: nonNegative(value.mem),
    mem_limit: nonNegative(value.mem_limit),
    pids: nonNegative(value.pids),
    pids_limit: nonNegative(value.pids_limit),
    oom_kills: nonNegative(value.oom_kills) ?? 0
  };
}

export function parseLogRecord(value: Json): ILogRecord | null {
  if (!isObject(value) || typeof value.line !== 'string') {
    return null;
  }
  const cell = num(value.cell);
  return {
    t: num(value.t) ?? 0,
    stream: value.stream === 'stderr' ? 'stderr' : 'stdout',
    line: value.line,
    cell: cell !== null && Number.isInteger(cell) ? cell : null
  };
}

function parseRecords(value: Json): ILogRecord[] {
  return list(value)
    .map(parseLogRecord)
    .filter((r): r is ILogRecord => r !== null);
}

function parseContainers(value: Json): IContainerInfo[] {
  return list(value)
    .map(parseContainer)
    .filter((c): c is IContainerInfo => c !== null);
}

function parseKernelInfo(value: Json): IKernelInfo {
  const o = isObject(value) ? value : {};
  return {
    host_cpus: nonNegative(o.host_cpus) || 1,
    interval: nonNegative(o.interval) || 1,
    history: nonNegative(o.history) || 300
  };
}

function byId<T>(value: Json, parse: (v: Json) => T): Record<string, T> {
  const out: Record<string, T> = {};
  if (isObject(value)) {
    for (const [key, item] of Object.entries(value)) {
      if (isId(key)) {
        out[key] = parse(item);
      }
    }
  }
  return out;
}

/**
 * Check one message from the kernel. Returns null for a message this version cannot use:
 * not an object, an unknown type, or another major protocol version.
 */
export function parseKernelMessage(data: Json): KernelMessage | null {
  if (!isObject(data) || data.version !== PROTOCOL_VERSION) {
    return null;
  }
  const version = PROTOCOL_VERSION;
  const current = isId(data.current) ? data.current : null;
  switch (data.type) {
    case 'snapshot':
      return {
        version,
        type: 'snapshot',
        kernel: parseKernelInfo(data.kernel),
        current,
        containers: parseContainers(data.containers),
        usage: byId(data.usage, v =>
          list(v)
            .map(parseSample)
            .filter((s): s is ISample => s !== null)
        ),
        logs: byId(data.logs, v => {
          const o = isObject(v) ? v : {};
          return { records: parseRecords(o.records), skipped: nonNegative(o.skipped) ?? 0 };
        })
      };
    case 'containers':
      return { version, type: 'containers', current, containers: parseContainers(data.containers) };
    case 'usage': {
      const samples: Record<string, ISample> = {};
      for (const [id, sample] of Object.entries(byId(data.samples, parseSample))) {
        if (sample !== null) {
          samples[id] = sample;
        }
      }
      return { version, type: 'usage', samples };
    }
    case 'logs':
      if (!isId(data.container)) {
        return null;
      }
      return {
        version,
        type: 'logs',
        container: data.container,
        records: parseRecords(data.records),
        skipped: nonNegative(data.skipped) ?? 0
      };
    case 'error':
      return { version, type: 'error', message: str(data.message, 'unknown error') };
    default:
      return null;
  }
}
