/**
 * The `cellbox` comm on one notebook's (or console's) kernel connection.
 *
 * The comm goes over the kernel's own websocket, so it works wherever the notebook works
 * (behind JupyterHub too) and needs no server extension. It is open only while someone
 * looks: the panel (usage + logs) or the status bar (usage). With nobody interested the
 * comm is closed and the kernel stops sampling. A kernel restart drops the comm; it is
 * opened again when the new kernel is idle, and the kernel sends a fresh snapshot.
 */

import { ISessionContext } from '@jupyterlab/apputils';
import { Kernel, KernelMessage } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';

import { PanelModel } from './model';
import { COMM_TARGET, FrontendMessage, PROTOCOL_VERSION } from './protocol';

/** The kernelspec name and implementation name of a cellbox kernel. */
export const CELLBOX_KERNEL = 'cellbox';

export type ConnectionStatus =
  | 'no-kernel' // the session has no kernel (yet)
  | 'checking' // asking the kernel what it is
  | 'not-cellbox' // another kind of kernel: no container
  | 'idle' // a cellbox kernel, nobody listening: comm closed
  | 'open'; // comm open, updates flowing

export interface IInterest {
  usage: boolean;
  logs: boolean;
}

export class CellboxConnection {
  readonly model = new PanelModel();
  private comm: Kernel.IComm | null = null;
  private kernel: Kernel.IKernelConnection | null = null;
  private isCellbox = false;
  private interest: IInterest = { usage: false, logs: false };
  private _status: ConnectionStatus = 'no-kernel';
  private readonly _statusChanged = new Signal<this, ConnectionStatus>(this);
  private disposed = false;

  constructor(readonly sessionContext: ISessionContext) {
    sessionContext.kernelChanged.connect(this.onKernelChanged, this);
    sessionContext.statusChanged.connect(this.onKernelStatus, this);
    void this.setKernel(sessionContext.session?.kernel ?? null);
  }

  get status(): ConnectionStatus {
    return this._status;
  }

  get statusChanged(): ISignal<this, ConnectionStatus> {
    return this._statusChanged;
  }

  /** A human name for the session's kernel ("Python 3 (ipykernel)"). */
  get kernelDisplayName(): string {
    return this.sessionContext.kernelDisplayName;
  }

  /** Say what the frontend wants now; opens, narrows or closes the comm accordingly. */
  setInterest(interest: IInterest): void {
    const changed =
      interest.usage !== this.interest.usage || interest.logs !== this.interest.logs;
    this.interest = { ...interest };
    if (!changed) {
      return;
    }
    if (!interest.usage && !interest.logs) {
      this.closeComm();
    } else if (this.comm !== null) {
      this.send({ type: 'subscribe', usage: interest.usage, logs: interest.logs });
    } else {
      this.openComm();
    }
  }

  dispose(): void {
    if (this.disposed) {
      return;
    }
    this.disposed = true;
    this.closeComm();
    Signal.clearData(this);
  }

  private setStatus(status: ConnectionStatus): void {
    if (status !== this._status) {
      this._status = status;
      this._statusChanged.emit(status);
    }
  }

  private onKernelChanged(
    _: ISessionContext,
    change: { newValue: Kernel.IKernelConnection | null }
  ): void {
    void this.setKernel(change.newValue);
  }

  private onKernelStatus(_: ISessionContext, status: Kernel.Status): void {
    if (status === 'restarting' || status === 'autorestarting' || status === 'dead') {
      // The kernel's comms die with it; forget what it told us.
      this.comm = null;
      this.model.reset();
      if (this.isCellbox) {
        this.setStatus('idle');
      }
    } else if (status === 'idle' && this.isCellbox && this.comm === null) {
      this.openComm();
    }
  }

  private async setKernel(kernel: Kernel.IKernelConnection | null): Promise<void> {
    this.closeComm();
    this.kernel = kernel;
    this.isCellbox = false;
    this.model.reset();
    if (kernel === null) {
      this.setStatus('no-kernel');
      return;
    }
    this.setStatus('checking');
    let cellbox = kernel.name === CELLBOX_KERNEL;
    if (!cellbox) {
      try {
        const info = await kernel.info;
        cellbox = info?.implementation === CELLBOX_KERNEL;
      } catch {
        cellbox = false;
      }
    }
    if (this.kernel !== kernel || this.disposed) {
      return; // the kernel changed again while we asked
    }
    this.isCellbox = cellbox;
    this.setStatus(cellbox ? 'idle' : 'not-cellbox');
    if (cellbox) {
      this.openComm();
    }
  }

  private openComm(): void {
    const kernel = this.kernel;
    if (
      kernel === null ||
      !this.isCellbox ||
      this.comm !== null ||
      this.disposed ||
      (!this.interest.usage && !this.interest.logs)
    ) {
      return;
    }
    let comm: Kernel.IComm;
    try {
      comm = kernel.createComm(COMM_TARGET);
    } catch (err) {
      this.model.setError(`cannot open the cellbox comm: ${err}`);
      return;
    }
    this.comm = comm;
    comm.onMsg = (msg: KernelMessage.ICommMsgMsg) => {
      if (this.comm === comm) {
        this.model.apply(msg.content.data);
      }
    };
    comm.onClose = () => {
      if (this.comm === comm) {
        this.comm = null;
        this.setStatus('idle');
      }
    };
    try {
      comm.open({
        version: PROTOCOL_VERSION,
        usage: this.interest.usage,
        logs: this.interest.logs
      });
      this.setStatus('open');
    } catch (err) {
      this.comm = null;
      this.model.setError(`cannot open the cellbox comm: ${err}`);
    }
  }

  private closeComm(): void {
    const comm = this.comm;
    this.comm = null;
    if (comm !== null && !comm.isDisposed) {
      try {
        comm.close();
      } catch {
        // The kernel is gone already; nothing to tell it.
      }
    }
    if (this.isCellbox) {
      this.setStatus('idle');
    }
  }

  private send(message: FrontendMessage): void {
    if (this.comm === null || this.comm.isDisposed) {
      return;
    }
    try {
      this.comm.send(message as any);
    } catch {
      // A dead kernel: the status signal will tell the rest.
    }
  }
}
