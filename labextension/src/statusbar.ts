/**
 * The status-bar item: memory used / limit of the followed notebook's current container.
 * Clicking it (or Enter on it) opens the Container panel.
 */

import { Widget } from '@lumino/widgets';

import { CellboxConnection } from './connection';
import { setText } from './dom';
import { formatBytes, formatUsage } from './format';

export class MemoryStatus extends Widget {
  private connection: CellboxConnection | null = null;
  private unsubscribe: (() => void) | null = null;

  constructor(private readonly onActivate: () => void) {
    super();
    this.addClass('cbx-status');
    this.node.tabIndex = 0;
    this.node.setAttribute('role', 'button');
    this.node.title = 'Memory of the current container (cellbox). Click to open the panel.';
    this.node.addEventListener('click', () => this.onActivate());
    this.node.addEventListener('keydown', event => {
      if (event.key === 'Enter' || event.key === ' ') {
        event.preventDefault();
        this.onActivate();
      }
    });
    this.refresh();
  }

  /** True when the followed kernel is a cellbox kernel (the item is shown only then). */
  get active(): boolean {
    const status = this.connection?.status;
    return status === 'open' || status === 'idle';
  }

  follow(connection: CellboxConnection | null): void {
    if (connection === this.connection) {
      return;
    }
    this.unsubscribe?.();
    this.connection = connection;
    this.unsubscribe =
      connection?.model.subscribe(change => {
        if (change !== 'logs') {
          this.refresh();
        }
      }) ?? null;
    this.refresh();
  }

  refresh(): void {
    const view = this.connection?.model.currentContainer();
    const sample = view?.latest();
    let text = 'Container: –';
    if (view !== undefined) {
      const limit = sample?.mem_limit ?? view.info.limits.memory;
      text = `${view.info.name}: ${formatUsage(sample?.mem, limit, formatBytes)}`;
    }
    setText(this.node, text);
  }
}
