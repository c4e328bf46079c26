/**
 * DLW for JupyterLab: "Train as job" on a notebook, the "DLW Jobs" panel, a log tab and a GPU status
 * bar item. A thin face over the server extension (``dlw_magic.server``), which calls the same core as
 * the %dlw magics and the CLI. Each feature lives in its own module; ``activate`` only wires them.
 */

import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';

import { GpuStatus } from './gpustatus.js';
import { trainIcon } from './icons.js';
import { JobActions } from './jobactions.js';
import { JobsPanel } from './panel.js';
import { ExperimentsPanel } from './experimentspanel.js';
import { scheduleNotebook } from './schedules.js';
import { DEFAULTS, ISettings, PLUGIN_ID, watchSettings } from './settings.js';
import { trainNotebook } from './train.js';
import { watchWidgetCancel } from './widgetcancel.js';

namespace CommandIDs {
  export const train = 'dlw:train-notebook';
  export const openPanel = 'dlw:open-jobs-panel';
  export const schedule = 'dlw:schedule-notebook';
}

function addJobsPanel(app: JupyterFrontEnd, restorer: ILayoutRestorer | null): JobsPanel {
  let actions: JobActions | null = null;
  const panel = new JobsPanel(
    (action, job) => actions?.run(action, job),
    DEFAULTS.refreshInterval,
    names => void actions?.compare(names)
  );
  actions = new JobActions(app, () => panel.refresh());
  panel.title.icon = trainIcon;
  app.shell.add(panel, 'right', { rank: 600 });
  restorer?.add(panel, 'dlw-jobs-panel');
  return panel;
}

function addCommands(
  app: JupyterFrontEnd,
  notebooks: INotebookTracker,
  panel: JobsPanel,
  palette: ICommandPalette | null,
  settings: () => ISettings
): void {
  app.commands.addCommand(CommandIDs.train, {
    label: 'Train as job',
    caption: 'Run this notebook as a DLW training job',
    describedBy: {
      args: {
        type: 'object',
        properties: { toolbar: { type: 'boolean', description: 'Shown in the notebook toolbar (with the icon)' } }
      }
    },
    icon: args => (args.toolbar ? trainIcon : undefined),
    isEnabled: () => notebooks.currentWidget !== null,
    execute: async () => {
      const current = notebooks.currentWidget;
      if (current) {
        await trainNotebook(current, settings(), async () => {
          app.shell.activateById(panel.id);
          await panel.refresh();
        });
      }
    }
  });
  app.commands.addCommand(CommandIDs.openPanel, {
    label: 'Show DLW Jobs',
    describedBy: { args: { type: 'object', properties: {} } },
    execute: () => app.shell.activateById(panel.id)
  });
  app.commands.addCommand(CommandIDs.schedule, {
    label: 'Run on a schedule',
    caption: 'Run this notebook as a DLW job on a cron schedule',
    describedBy: { args: { type: 'object', properties: {} } },
    isEnabled: () => notebooks.currentWidget !== null,
    execute: async () => {
      const current = notebooks.currentWidget;
      if (current) {
        await scheduleNotebook(current, async () => {
          app.shell.activateById(panel.id);
          await panel.refresh();
        });
      }
    }
  });
  palette?.addItem({ command: CommandIDs.train, category: 'DLW' });
  palette?.addItem({ command: CommandIDs.schedule, category: 'DLW' });
  palette?.addItem({ command: CommandIDs.openPanel, category: 'DLW' });
}

function addGpuStatus(statusBar: IStatusBar | null): GpuStatus | null {
  if (!statusBar) {
    return null;
  }
  const gpuStatus = new GpuStatus(DEFAULTS.gpuRefreshInterval);
  statusBar.registerStatusItem('dlw:gpus', { item: gpuStatus, align: 'left', rank: 50 });
  return gpuStatus;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Train a notebook as a DLW job, watch jobs, logs and GPUs.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette, ISettingRegistry, IStatusBar, ILayoutRestorer],
  activate: async (
    app: JupyterFrontEnd,
    notebooks: INotebookTracker,
    palette: ICommandPalette | null,
    registry: ISettingRegistry | null,
    statusBar: IStatusBar | null,
    restorer: ILayoutRestorer | null
  ) => {
    let settings: ISettings = { ...DEFAULTS };
    const panel = addJobsPanel(app, restorer);
    const experiments = new ExperimentsPanel(path => void app.commands.execute('docmanager:open', { path }));
    experiments.title.icon = trainIcon;
    app.shell.add(experiments, 'right', { rank: 610 }); // sweeps: dlw_magic.experiments
    addCommands(app, notebooks, panel, palette, () => settings);
    const gpuStatus = addGpuStatus(statusBar);
    watchWidgetCancel();
    await watchSettings(registry, s => {
      settings = s;
      panel.refreshSeconds = s.refreshInterval;
      if (gpuStatus) {
        gpuStatus.refreshSeconds = s.gpuRefreshInterval;
      }
    });
  }
};

export default plugin;
