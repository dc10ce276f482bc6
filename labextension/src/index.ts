/**
 * cellbox-labextension: the "Container" side panel and the memory status-bar item.
 *
 * Both follow the active notebook or console. For each session there is at most one
 * CellboxConnection (one comm); only the followed one is open, and only while the panel is
 * visible (usage + logs) or the status-bar item is on (usage only), so a kernel nobody
 * looks at does no sampling.
 */

import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, ISessionContext } from '@jupyterlab/apputils';
import { ConsolePanel, IConsoleTracker } from '@jupyterlab/console';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { LabIcon } from '@jupyterlab/ui-components';
import { Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { CellboxConnection } from './connection';
import { ContainerPanel } from './panel';
import { MemoryStatus } from './statusbar';

const PLUGIN_ID = 'cellbox-labextension:plugin';

export const COMMAND_SHOW = 'cellbox:show-panel';

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M12 2 3 6.5v11L12 22l9-4.5v-11L12 2zm0 2.2 6.6 3.3L12 10.8 5.4 7.5 12 4.2zM5 9.1l6 3v7.7l-6-3V9.1zm8 10.7v-7.7l6-3v7.7l-6 3z"/>
  </g>
</svg>`;

export const containerIcon = new LabIcon({ name: 'cellbox:container', svgstr: ICON_SVG });

/** Which session (notebook or console) a main-area widget belongs to, if any. */
function sessionOf(
  widget: Widget | null,
  notebooks: INotebookTracker | null,
  consoles: IConsoleTracker | null
): ISessionContext | null {
  if (widget === null) {
    return null;
  }
  if (notebooks?.has(widget)) {
    return (widget as NotebookPanel).sessionContext;
  }
  if (consoles?.has(widget)) {
    return (widget as ConsolePanel).sessionContext;
  }
  return null;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'A live panel of the cellbox container: layers, logs and cgroup usage.',
  autoStart: true,
  optional: [
    INotebookTracker,
    IConsoleTracker,
    IStatusBar,
    ISettingRegistry,
    ILayoutRestorer,
    ICommandPalette
  ],
  activate: (
    app: JupyterFrontEnd,
    notebooks: INotebookTracker | null,
    consoles: IConsoleTracker | null,
    statusBar: IStatusBar | null,
    settingRegistry: ISettingRegistry | null,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null
  ) => {
    const connections = new Map<ISessionContext, CellboxConnection>();
    let followed: CellboxConnection | null = null;
    let showStatus = true;

    const panel = new ContainerPanel();
    panel.title.icon = containerIcon;
    app.shell.add(panel, 'right', { rank: 650 });
    restorer?.add(panel, panel.id);

    const status = new MemoryStatus(() => app.shell.activateById(panel.id));
    // Tells the status bar to ask isActive() again (kernel changed, setting changed).
    const statusActiveChanged = new Signal<MemoryStatus, void>(status);

    /** Tell each connection what is wanted of it now. */
    const updateInterest = (): void => {
      for (const connection of connections.values()) {
        const active = connection === followed;
        connection.setInterest({
          usage: active && (panel.isVisible || showStatus),
          logs: active && panel.isVisible
        });
      }
    };

    const connectionFor = (context: ISessionContext): CellboxConnection => {
      let connection = connections.get(context);
      if (connection === undefined) {
        connection = new CellboxConnection(context);
        connections.set(context, connection);
        connection.statusChanged.connect(() => {
          status.refresh();
          statusActiveChanged.emit();
        });
        context.disposed.connect(() => {
          connections.get(context)?.dispose();
          connections.delete(context);
          if (followed?.sessionContext === context) {
            follow(null);
          }
        });
      }
      return connection;
    };

    const follow = (context: ISessionContext | null): void => {
      const next = context === null ? null : connectionFor(context);
      if (next === followed) {
        return;
      }
      followed = next;
      panel.follow(next);
      status.follow(next);
      statusActiveChanged.emit();
      updateInterest();
    };

    // Follow the main area's current widget when it is a notebook or a console; keep the
    // last one while something else (an editor, a terminal) is in front.
    const onCurrentChanged = (): void => {
      const context = sessionOf(app.shell.currentWidget, notebooks, consoles);
      if (context !== null) {
        follow(context);
      }
    };
    app.shell.currentChanged?.connect(onCurrentChanged);
    notebooks?.currentChanged.connect(onCurrentChanged);
    consoles?.currentChanged.connect(onCurrentChanged);
    panel.visibilityChanged.connect(updateInterest);
    app.restored.then(onCurrentChanged).catch(() => undefined);

    if (statusBar !== null) {
      statusBar.registerStatusItem(PLUGIN_ID + ':memory', {
        item: status,
        align: 'left',
        rank: 4,
        isActive: () => showStatus && status.active,
        activeStateChanged: statusActiveChanged
      });
    }

    if (settingRegistry !== null) {
      const apply = (settings: ISettingRegistry.ISettings): void => {
        showStatus = settings.get('statusBar').composite !== false;
        statusActiveChanged.emit();
        updateInterest();
      };
      settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          apply(settings);
          settings.changed.connect(apply);
        })
        .catch(reason => console.warn('cellbox: cannot load settings', reason));
    }

    app.commands.addCommand(COMMAND_SHOW, {
      label: 'Show Container Panel',
      caption: 'Show the layers, logs and usage of the notebook’s container',
      icon: containerIcon,
      execute: () => app.shell.activateById(panel.id)
    });
    palette?.addItem({ command: COMMAND_SHOW, category: 'cellbox' });
  }
};

export default plugin;
