/**
 * One container in the panel: Summary, Layers, Logs and Usage, each a collapsible section
 * (<details>, so they are reachable and toggled with the keyboard). A card is made once
 * per container and updated in place, so the user's filter text, scroll position and open
 * sections survive updates.
 */

import { h, setText } from './dom';
import {
  formatBytes,
  formatCpus,
  formatDuration,
  MISSING,
  shortDigest
} from './format';
import { LogView } from './logview';
import { ContainerView } from './model';
import { IContainerInfo } from './protocol';
import { UsageView } from './usage';

function section(title: string, body: HTMLElement, open = true): HTMLDetailsElement {
  return h(
    'details',
    { class: `cbx-section cbx-section-${title.toLowerCase()}`, open },
    h('summary', { class: 'cbx-section-title' }, title),
    body
  );
}

/** "running", "exited (137, OOM-killed)", ... */
export function describeState(info: IContainerInfo): string {
  if (info.state === 'exited') {
    const code = info.exit_code !== null ? `${info.exit_code}` : '?';
    return `exited (${code}${info.oom_killed ? ', OOM-killed' : ''})`;
  }
  return info.oom_killed ? `${info.state} (OOM kill seen)` : info.state;
}

/** "256 MiB memory · 0.5 CPUs · 64 pids", or "none". */
export function describeLimits(info: IContainerInfo): string {
  const parts: string[] = [];
  const { memory, memory_swap, cpus, pids } = info.limits;
  if (memory !== null) {
    parts.push(`${formatBytes(memory)} memory`);
  }
  if (memory_swap !== null && memory_swap > 0 && memory !== null && memory_swap > memory) {
    parts.push(`${formatBytes(memory_swap - memory)} swap`);
  }
  if (cpus !== null) {
    parts.push(formatCpus(cpus));
  }
  if (pids !== null) {
    parts.push(`${pids} pids`);
  }
  return parts.length ? parts.join(' · ') : 'none';
}

export class ContainerCard {
  readonly node: HTMLElement;
  private readonly heading: HTMLElement;
  private readonly badge: HTMLElement;
  private readonly fields: Record<string, HTMLElement> = {};
  private readonly layerBody: HTMLTableSectionElement;
  private readonly layerTotal: HTMLElement;
  private readonly logs = new LogView();
  private readonly usage = new UsageView();
  private layersKey = '';

  constructor(
    private view: ContainerView,
    current: boolean
  ) {
    this.heading = h('h3', { class: 'cbx-container-name' });
    this.badge = h('span', { class: 'cbx-state-badge' });
    const summary = h('dl', { class: 'cbx-summary' });
    for (const [key, label] of [
      ['name', 'Name'],
      ['image', 'Image'],
      ['digest', 'Digest'],
      ['state', 'State'],
      ['uptime', 'Uptime'],
      ['limits', 'Limits']
    ]) {
      this.fields[key] = h('dd', { class: `cbx-field-${key}` });
      summary.append(h('dt', {}, label), this.fields[key]);
    }
    this.layerBody = h('tbody');
    this.layerTotal = h('td', { class: 'cbx-layer-size' });
    const layers = h(
      'div',
      { class: 'cbx-layers-wrap', tabindex: '0', role: 'region', 'aria-label': 'Image layers' },
      h(
        'table',
        { class: 'cbx-layers' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            h('th', { scope: 'col' }, 'Layer (top first)'),
            h('th', { scope: 'col', class: 'cbx-layer-size' }, 'Size')
          )
        ),
        this.layerBody,
        h('tfoot', {}, h('tr', {}, h('th', { scope: 'row' }, 'Total'), this.layerTotal))
      )
    );
    this.node = h(
      'section',
      { class: 'cbx-container', 'data-container-id': view.id },
      h('header', { class: 'cbx-container-header' }, this.heading, this.badge),
      section('Summary', summary),
      section('Layers', layers, current),
      section('Logs', this.logs.node, current),
      section('Usage', this.usage.node)
    );
    this.setCurrent(current);
    this.logs.setBuffer(view.logs);
    this.updateInfo();
  }

  setCurrent(current: boolean): void {
    this.node.classList.toggle('cbx-mod-current', current);
    this.node.setAttribute(
      'aria-label',
      `${current ? 'current ' : ''}container ${this.view.info.name}`
    );
  }

  /** A new snapshot made a new view for the same container id. */
  setView(view: ContainerView): void {
    this.view = view;
    this.layersKey = '';
    this.logs.setBuffer(view.logs);
    this.updateInfo();
  }

  updateInfo(): void {
    const info = this.view.info;
    setText(this.heading, info.name);
    setText(this.badge, info.state);
    this.badge.dataset.state = info.state;
    setText(this.fields.name, info.name);
    setText(this.fields.image, info.image || MISSING);
    setText(this.fields.digest, shortDigest(info.image_digest));
    this.fields.digest.title = info.image_digest;
    setText(this.fields.state, describeState(info));
    setText(this.fields.limits, describeLimits(info));
    this.updateUptime();
    this.renderLayers();
  }

  updateUsage(hostCpus: number, window: number): void {
    this.usage.update(this.view, hostCpus, window);
    this.updateUptime();
  }

  updateLogs(): void {
    this.logs.update();
  }

  private updateUptime(): void {
    const info = this.view.info;
    const now = this.view.latest()?.t ?? Date.now() / 1000;
    const running = info.state === 'running' && info.started_at !== null;
    setText(this.fields.uptime, running ? formatDuration(now - info.started_at!) : MISSING);
  }

  private renderLayers(): void {
    const info = this.view.info;
    const key = JSON.stringify([info.layers, info.upper]);
    if (key === this.layersKey) {
      return;
    }
    this.layersKey = key;
    const rows: HTMLTableRowElement[] = [
      this.layerRow(
        'cbx-layer-upper',
        'writable layer: this container’s changes',
        'container',
        '',
        formatBytes(info.upper.size)
      )
    ];
    let total = info.upper.size ?? 0;
    for (const layer of info.layers) {
      total += layer.size;
      const row = this.layerRow(
        `cbx-layer-image${layer.empty_layer ? ' cbx-layer-empty' : ''}`,
        layer.created_by,
        layer.digest ? shortDigest(layer.digest) : '<missing>',
        layer.digest ?? '',
        formatBytes(layer.size)
      );
      row.dataset.createdBy = layer.created_by;
      row.dataset.size = `${layer.size}`;
      rows.push(row);
    }
    this.layerBody.replaceChildren(...rows);
    setText(this.layerTotal, formatBytes(total));
  }

  /** A layer row: what made it (wrapping), its short digest below, its size. */
  private layerRow(
    kind: string,
    createdBy: string,
    digest: string,
    fullDigest: string,
    size: string
  ): HTMLTableRowElement {
    return h(
      'tr',
      { class: `cbx-layer-row ${kind}` },
      h(
        'td',
        { class: 'cbx-layer-what' },
        h('div', { class: 'cbx-layer-created-by', title: createdBy }, createdBy),
        h('div', { class: 'cbx-layer-digest', title: fullDigest }, digest)
      ),
      h('td', { class: 'cbx-layer-size' }, size)
    );
  }
}
