/**
 * What the panel knows about a kernel's containers, built from the comm's messages.
 *
 * Pure (no JupyterLab imports), so jest tests feed it messages and look at the result.
 * Memory is bounded: samples and log lines live in ring buffers per container, and a
 * container the kernel no longer lists is forgotten.
 */

import { LogBuffer } from './logfilter';
import {
  IContainerInfo,
  IKernelInfo,
  ISample,
  parseKernelMessage,
  PROTOCOL_VERSION
} from './protocol';
import { RingBuffer } from './ring';

/** What a message changed, so the view redraws only that. */
export type Change = 'all' | 'containers' | 'usage' | 'logs' | 'error';

/** Five minutes at one sample a second. */
export const DEFAULT_HISTORY = 300;
export const DEFAULT_LOG_LINES = 2000;

export class ContainerView {
  readonly samples: RingBuffer<ISample>;
  readonly logs: LogBuffer;

  constructor(
    public info: IContainerInfo,
    history: number,
    logLines: number
  ) {
    this.samples = new RingBuffer<ISample>(history);
    this.logs = new LogBuffer(logLines);
  }

  get id(): string {
    return this.info.id;
  }

  /** The newest sample, if any. */
  latest(): ISample | undefined {
    return this.samples.last();
  }
}

/** Times (seconds since the epoch) of the samples at which the OOM-kill counter rose. */
export function oomMarks(samples: Iterable<ISample>): number[] {
  const marks: number[] = [];
  let previous: number | null = null;
  for (const s of samples) {
    // A counter that goes down was reset (a new cgroup after a restart): not a kill.
    if (previous !== null && s.oom_kills > previous) {
      marks.push(s.t);
    }
    previous = s.oom_kills;
  }
  return marks;
}

export class PanelModel {
  kernel: IKernelInfo = { host_cpus: 1, interval: 1, history: DEFAULT_HISTORY };
  current: string | null = null;
  error: string | null = null;
  private readonly views = new Map<string, ContainerView>();
  private order: string[] = [];
  private readonly listeners = new Set<(change: Change) => void>();

  constructor(
    private readonly historyLength = DEFAULT_HISTORY,
    private readonly logLines = DEFAULT_LOG_LINES
  ) {}

  /** Call `listener` after every applied message; returns a function that unsubscribes. */
  subscribe(listener: (change: Change) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The containers, current first, then in the kernel's order. */
  containers(): ContainerView[] {
    const out: ContainerView[] = [];
    if (this.current !== null && this.views.has(this.current)) {
      out.push(this.views.get(this.current)!);
    }
    for (const id of this.order) {
      if (id !== this.current) {
        out.push(this.views.get(id)!);
      }
    }
    return out;
  }

  /** The current container (the one the notebook's cells run in), if any. */
  currentContainer(): ContainerView | undefined {
    return this.containers()[0];
  }

  get(id: string): ContainerView | undefined {
    return this.views.get(id);
  }

  /** Forget everything (the kernel restarted or the comm closed). */
  reset(): void {
    this.views.clear();
    this.order = [];
    this.current = null;
    this.error = null;
    this.emit('all');
  }

  /** Set an error to show (e.g. the comm could not be opened). */
  setError(message: string | null): void {
    this.error = message;
    this.emit('error');
  }

  /**
   * Apply one message from the kernel. Returns what changed, or null when the message was
   * dropped (malformed, unknown type or another protocol version).
   */
  apply(data: unknown): Change | null {
    const message = parseKernelMessage(data);
    if (message === null) {
      const version = (data as { version?: unknown } | null)?.version;
      if (typeof version === 'number' && version !== PROTOCOL_VERSION) {
        this.setError(
          `the kernel speaks panel protocol ${version}, this extension ${PROTOCOL_VERSION}: ` +
            'install matching versions of cellbox and its JupyterLab extension'
        );
        return 'error';
      }
      return null;
    }
    let change: Change;
    switch (message.type) {
      case 'snapshot':
        this.kernel = message.kernel;
        this.views.clear();
        this.setContainers(message.current, message.containers);
        for (const [id, samples] of Object.entries(message.usage)) {
          this.views.get(id)?.samples.pushAll(samples);
        }
        for (const [id, logs] of Object.entries(message.logs)) {
          this.views.get(id)?.logs.append(logs.records, logs.skipped);
        }
        this.error = null;
        change = 'all';
        break;
      case 'containers':
        this.setContainers(message.current, message.containers);
        change = 'containers';
        break;
      case 'usage':
        for (const [id, sample] of Object.entries(message.samples)) {
          const view = this.views.get(id);
          const last = view?.latest();
          // Samples arrive in order; one that does not is stale (sent before a snapshot).
          if (view && (last === undefined || sample.t > last.t)) {
            view.samples.push(sample);
          }
        }
        change = 'usage';
        break;
      case 'logs':
        this.views.get(message.container)?.logs.append(message.records, message.skipped);
        change = 'logs';
        break;
      case 'error':
        this.error = message.message;
        change = 'error';
        break;
    }
    this.emit(change);
    return change;
  }

  private setContainers(current: string | null, containers: IContainerInfo[]): void {
    const seen = new Set<string>();
    this.order = [];
    for (const info of containers) {
      if (seen.has(info.id)) {
        continue;
      }
      seen.add(info.id);
      this.order.push(info.id);
      const view = this.views.get(info.id);
      if (view) {
        view.info = info;
      } else {
        this.views.set(info.id, new ContainerView(info, this.historyLength, this.logLines));
      }
    }
    for (const id of [...this.views.keys()]) {
      if (!seen.has(id)) {
        this.views.delete(id);
      }
    }
    this.current = current !== null && seen.has(current) ? current : (this.order[0] ?? null);
  }

  private emit(change: Change): void {
    for (const listener of this.listeners) {
      listener(change);
    }
  }
}
