/**
 * The Logs section of a container card: a live tail with a filter box and a follow switch.
 *
 * Lines come from the model's bounded LogBuffer; the DOM holds at most as many rows as the
 * buffer, so memory stays bounded however long the tail runs. stdout and stderr rows look
 * different (and say which they are to a screen reader); a rule marks where each cell's
 * output starts.
 */

import { h, setText } from './dom';
import { formatClock } from './format';
import {
  ILogFilter,
  ILogRecord,
  isEmptyFilter,
  LogBuffer,
  matches,
  parseFilter,
  streamOf
} from './logfilter';

let uid = 0;

export class LogView {
  readonly node: HTMLElement;
  private readonly lines: HTMLElement;
  private readonly filterBox: HTMLInputElement;
  private readonly followBox: HTMLInputElement;
  private readonly status: HTMLElement;
  private filter: ILogFilter = parseFilter('');
  private buffer: LogBuffer | null = null;
  /** The buffer's `total` when its rows were last brought up to date. */
  private rendered = 0;
  private lastCell: number | null = null;

  constructor() {
    const id = `cbx-log-${++uid}`;
    this.filterBox = h('input', {
      type: 'search',
      class: 'cbx-log-filter jp-mod-styled',
      placeholder: 'Filter: text -exclude stream:stderr cell:3',
      'aria-label': 'Filter log lines',
      'aria-controls': id
    });
    this.followBox = h('input', { type: 'checkbox', class: 'cbx-log-follow', checked: true });
    this.status = h('span', { class: 'cbx-log-status', 'aria-live': 'off' });
    this.lines = h('div', {
      id,
      class: 'cbx-log-lines',
      role: 'log',
      tabindex: '0',
      'aria-label': 'Container log'
    });
    this.node = h(
      'div',
      { class: 'cbx-logs' },
      h(
        'div',
        { class: 'cbx-log-toolbar' },
        this.filterBox,
        h('label', { class: 'cbx-log-follow-label' }, this.followBox, 'Follow'),
        this.status
      ),
      this.lines
    );
    this.filterBox.addEventListener('input', () => {
      this.filter = parseFilter(this.filterBox.value);
      this.render();
    });
    this.followBox.addEventListener('change', () => {
      if (this.followBox.checked) {
        this.scrollToEnd();
      }
    });
    // Scrolling up to read stops following; scrolling back to the end resumes it.
    this.lines.addEventListener('scroll', () => {
      const atEnd =
        this.lines.scrollHeight - this.lines.scrollTop - this.lines.clientHeight < 4;
      if (this.followBox.checked !== atEnd) {
        this.followBox.checked = atEnd;
      }
    });
  }

  get following(): boolean {
    return this.followBox.checked;
  }

  /** Show another buffer (a new snapshot), from scratch. */
  setBuffer(buffer: LogBuffer): void {
    this.buffer = buffer;
    this.render();
  }

  /** New records arrived in the buffer: add their rows. */
  update(): void {
    if (this.buffer === null) {
      return;
    }
    const fresh = this.buffer.total - this.rendered;
    // More new lines than the buffer holds (a flood), or a cleared buffer: start over.
    if (fresh < 0 || fresh >= this.buffer.length) {
      this.render();
      return;
    }
    if (fresh > 0) {
      const all = this.buffer.all();
      this.append(all.slice(all.length - fresh));
      this.rendered = this.buffer.total;
    }
    this.afterChange();
  }

  private render(): void {
    this.lines.textContent = '';
    this.lastCell = null;
    if (this.buffer === null) {
      return;
    }
    const all = this.buffer.all();
    this.append(isEmptyFilter(this.filter) ? all : this.buffer.filtered(this.filter), true);
    this.rendered = this.buffer.total;
    this.afterChange();
  }

  private append(records: ILogRecord[], filtered = false): void {
    const fragment = document.createDocumentFragment();
    for (const record of records) {
      if (!filtered && !matches(record, this.filter)) {
        continue;
      }
      if (record.cell !== null && record.cell !== this.lastCell) {
        fragment.appendChild(
          h('div', { class: 'cbx-log-cell', role: 'separator' }, `cell [${record.cell}]`)
        );
      }
      this.lastCell = record.cell;
      const stream = streamOf(record);
      fragment.appendChild(
        h(
          'div',
          {
            class: `cbx-log-line cbx-log-${stream}`,
            'data-stream': stream,
            title: `${formatClock(record.t)} ${stream}${record.cell !== null ? `, cell [${record.cell}]` : ''}`
          },
          h('span', { class: 'cbx-log-time' }, formatClock(record.t)),
          h('span', { class: 'cbx-log-stream', 'aria-label': stream }, stream === 'stderr' ? 'E' : ' '),
          h('span', { class: 'cbx-log-text' }, record.line)
        )
      );
    }
    this.lines.appendChild(fragment);
    // Keep the DOM as bounded as the buffer: drop the oldest rows (and cell rules).
    const cap = this.buffer?.capacity ?? 2000;
    const rows = this.lines.getElementsByClassName('cbx-log-line');
    while (rows.length > cap) {
      while (this.lines.firstChild !== rows[0]) {
        this.lines.removeChild(this.lines.firstChild!);
      }
      this.lines.removeChild(rows[0]);
    }
  }

  private afterChange(): void {
    const buffer = this.buffer;
    if (buffer !== null) {
      const shown = this.lines.getElementsByClassName('cbx-log-line').length;
      const parts = [`${shown} of ${buffer.length} lines`];
      if (buffer.dropped > 0) {
        parts.push(`${buffer.dropped} older not kept`);
      }
      setText(this.status, parts.join(' · '));
    }
    if (this.following) {
      this.scrollToEnd();
    }
  }

  private scrollToEnd(): void {
    this.lines.scrollTop = this.lines.scrollHeight;
  }
}
