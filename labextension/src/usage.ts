/**
 * The Usage section: CPU, memory and pids over the last five minutes, one sample a second,
 * each against its limit, with OOM kills marked on the memory chart.
 */

import { LineChart } from './chart';
import { h, setText } from './dom';
import { formatBytes, formatClock, formatCpus, formatPercent, formatUsage } from './format';
import { ISample } from './protocol';
import { ContainerView, oomMarks } from './model';
import { axisMax, IPoint, niceBytesCeiling, niceCeiling, windowMax } from './scale';

interface ISeries {
  chart: LineChart;
  legend: HTMLElement;
}

function series(kind: string, title: string): ISeries & { node: HTMLElement } {
  const chart = new LineChart(kind, `${title} over the last five minutes`);
  const legend = h('span', { class: 'cbx-usage-figure' });
  const node = h(
    'div',
    { class: `cbx-usage cbx-usage-${kind}` },
    h('div', { class: 'cbx-usage-head' }, h('span', { class: 'cbx-usage-title' }, title), legend),
    chart.node
  );
  return { chart, legend, node };
}

function points(samples: ISample[], pick: (s: ISample) => number | null): IPoint[] {
  return samples.map(s => ({ t: s.t, v: pick(s) }));
}

export class UsageView {
  readonly node: HTMLElement;
  private readonly cpu = series('cpu', 'CPU');
  private readonly memory = series('memory', 'Memory');
  private readonly pids = series('pids', 'Processes');
  private readonly oom: HTMLElement;

  constructor() {
    this.oom = h('div', { class: 'cbx-oom-note', role: 'status' });
    this.node = h(
      'div',
      { class: 'cbx-usage-charts' },
      this.cpu.node,
      this.memory.node,
      this.oom,
      this.pids.node
    );
  }

  /** Redraw from the container's samples; `hostCpus` scales CPU when there is no limit. */
  update(view: ContainerView, hostCpus: number, window: number): void {
    const samples = view.samples.toArray();
    const latest = samples[samples.length - 1];
    // The window ends at the newest sample, not at the browser's clock: the kernel's
    // clock is what the samples carry, and the two may differ.
    const now = latest?.t ?? Date.now() / 1000;
    const limits = view.info.limits;

    const cpuLimit = limits.cpus !== null ? limits.cpus * 100 : null;
    const cpuPoints = points(samples, s => s.cpu);
    const cpuMax = axisMax(windowMax(cpuPoints, now, window), cpuLimit ?? hostCpus * 100);
    this.cpu.chart.update({
      points: cpuPoints,
      frame: { now, window, max: cpuMax },
      limit: cpuLimit,
      marks: [],
      markLabel: () => ''
    });
    // Say what 100 % means here: one CPU; the limit (or the host) says how far it can go.
    const cpuOf = ` of ${formatCpus(limits.cpus ?? hostCpus)}`;
    setText(this.cpu.legend, `${formatPercent(latest?.cpu)}${cpuOf}`);

    const memLimit = latest?.mem_limit ?? limits.memory;
    const memPoints = points(samples, s => s.mem);
    const memMax = axisMax(windowMax(memPoints, now, window), memLimit, niceBytesCeiling);
    const marks = oomMarks(samples);
    this.memory.chart.update({
      points: memPoints,
      frame: { now, window, max: memMax },
      limit: memLimit,
      marks,
      markLabel: t => `OOM kill at ${formatClock(t)}`
    });
    setText(this.memory.legend, formatUsage(latest?.mem, memLimit, formatBytes));

    const kills = latest?.oom_kills ?? 0;
    setText(
      this.oom,
      kills > 0 ? `OOM kills: ${kills}${marks.length ? ` (${marks.length} marked)` : ''}` : ''
    );
    this.oom.classList.toggle('cbx-mod-visible', kills > 0);

    const pidsLimit = latest?.pids_limit ?? limits.pids;
    const pidPoints = points(samples, s => s.pids);
    const pidMax = axisMax(windowMax(pidPoints, now, window), pidsLimit, v =>
      Math.max(10, niceCeiling(v))
    );
    this.pids.chart.update({
      points: pidPoints,
      frame: { now, window, max: pidMax },
      limit: pidsLimit,
      marks: [],
      markLabel: () => ''
    });
    setText(this.pids.legend, formatUsage(latest?.pids, pidsLimit, v => (v == null ? '–' : `${v}`)));
  }
}
