/**
 * The right-side "Container" panel: one card per container of the followed notebook's
 * kernel, the current container first; for any other kernel a line saying there is none.
 */

import { Message } from '@lumino/messaging';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { ContainerCard } from './card';
import { CellboxConnection, ConnectionStatus } from './connection';
import { h, setText } from './dom';
import { Change } from './model';

export const PANEL_ID = 'cellbox-panel';

export class ContainerPanel extends Widget {
  private connection: CellboxConnection | null = null;
  private unsubscribe: (() => void) | null = null;
  private readonly message: HTMLElement;
  private readonly error: HTMLElement;
  private readonly list: HTMLElement;
  private readonly cards = new Map<string, ContainerCard>();
  private readonly _visibilityChanged = new Signal<this, boolean>(this);

  constructor() {
    super();
    this.id = PANEL_ID;
    this.addClass('cbx-panel');
    this.title.caption = 'Container: layers, logs and usage';
    this.message = h('p', { class: 'cbx-message', role: 'status' });
    this.error = h('p', { class: 'cbx-error', role: 'alert' });
    this.list = h('div', { class: 'cbx-containers' });
    this.node.append(
      h('h2', { class: 'cbx-panel-title' }, 'Container'),
      this.message,
      this.error,
      this.list
    );
    this.node.tabIndex = -1;
    this.render('all');
  }

  /** Emits true when the panel is shown, false when hidden (collapsed or closed). */
  get visibilityChanged(): ISignal<this, boolean> {
    return this._visibilityChanged;
  }

  /** Show another notebook's containers (null: no notebook or console is active). */
  follow(connection: CellboxConnection | null): void {
    if (connection === this.connection) {
      return;
    }
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.connection?.statusChanged.disconnect(this.onStatus, this);
    this.connection = connection;
    for (const card of this.cards.values()) {
      card.node.remove();
    }
    this.cards.clear();
    if (connection !== null) {
      this.unsubscribe = connection.model.subscribe(change => this.render(change));
      connection.statusChanged.connect(this.onStatus, this);
    }
    this.render('all');
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this._visibilityChanged.emit(true);
    this.render('all');
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this._visibilityChanged.emit(false);
  }

  private onStatus(_: CellboxConnection, _status: ConnectionStatus): void {
    this.render('all');
  }

  private render(change: Change): void {
    this.renderMessage();
    const connection = this.connection;
    if (connection === null || !this.isVisible) {
      return;
    }
    const model = connection.model;
    setText(this.error, model.error ?? '');
    const window = model.kernel.history * model.kernel.interval;
    if (change === 'all' || change === 'containers') {
      const views = model.containers();
      const keep = new Set(views.map(v => v.id));
      for (const [id, card] of this.cards) {
        if (!keep.has(id)) {
          card.node.remove();
          this.cards.delete(id);
        }
      }
      views.forEach((view, index) => {
        let card = this.cards.get(view.id);
        if (card === undefined) {
          card = new ContainerCard(view, index === 0);
          this.cards.set(view.id, card);
        } else if (change === 'all') {
          card.setView(view);
        } else {
          card.updateInfo();
        }
        card.setCurrent(index === 0);
        // Re-append in order (a no-op for a card already in place).
        if (this.list.children[index] !== card.node) {
          this.list.insertBefore(card.node, this.list.children[index] ?? null);
        }
        card.updateUsage(model.kernel.host_cpus, window);
      });
    } else if (change === 'usage') {
      for (const view of model.containers()) {
        this.cards.get(view.id)?.updateUsage(model.kernel.host_cpus, window);
      }
    } else if (change === 'logs') {
      for (const card of this.cards.values()) {
        card.updateLogs();
      }
    }
  }

  private renderMessage(): void {
    const connection = this.connection;
    let text = '';
    if (connection === null) {
      text = 'No notebook or console is active: open one to see its container.';
    } else {
      switch (connection.status) {
        case 'no-kernel':
          text = 'No kernel: there is no container.';
          break;
        case 'checking':
          text = 'Connecting to the kernel…';
          break;
        case 'not-cellbox':
          text =
            `${connection.kernelDisplayName} is not a cellbox kernel: there is no container. ` +
            'Choose the “Container (cellbox)” kernel to run cells in a container.';
          break;
        case 'idle':
        case 'open':
          text =
            connection.model.containers().length === 0
              ? 'No container yet: the first cell starts one (or use %container IMAGE).'
              : '';
          break;
      }
    }
    setText(this.message, text);
    this.message.hidden = text === '';
    this.error.hidden = !(connection?.model.error ?? '');
  }
}
