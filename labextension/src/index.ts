/**
 * DLW for JupyterLab: "Train as job" on a notebook, the "DLW Jobs" panel, per-rank log viewers and a
 * GPU status bar item. A thin face over the server extension (``dlw_magic.server``), which calls the
 * same core as the %dlw magics and the CLI.
 */

import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  Clipboard,
  Dialog,
  ICommandPalette,
  MainAreaWidget,
  Notification,
  showDialog,
  showErrorMessage
} from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { LabIcon } from '@jupyterlab/ui-components';

import { cancelJob, getJob, getOptions, getParameters, IJob, ISubmitRequest, submitJob } from './api.js';
import { ITrainDefaults, TrainForm } from './dialog.js';
import { GpuStatus } from './gpustatus.js';
import { JobAction } from './jobslist.js';
import { LogViewer } from './logviewer.js';
import { JobsPanel } from './panel.js';

const PLUGIN_ID = 'dlw-labextension:plugin';

namespace CommandIDs {
  export const train = 'dlw:train-notebook';
  export const openPanel = 'dlw:open-jobs-panel';
}

const trainIcon = new LabIcon({
  name: 'dlw:train',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16"><path class="jp-icon3" fill="#616161" d="M12 2 3 7v10l9 5 9-5V7zm0 2.3 6.6 3.7L12 11.7 5.4 8zM5 9.7l6 3.4v6.6l-6-3.4zm8 10v-6.6l6-3.4v6.6z"/></svg>'
});

interface ISettings extends ITrainDefaults {
  refreshInterval: number;
  gpuRefreshInterval: number;
}

const DEFAULTS: ISettings = {
  refreshInterval: 2,
  gpuRefreshInterval: 5,
  workers: 1,
  gpus: 0,
  engine: 'job',
  queue: '',
  priority: ''
};

function readSettings(s: ISettingRegistry.ISettings | null): ISettings {
  if (!s) {
    return { ...DEFAULTS };
  }
  const c = s.composite as Record<string, any>;
  return {
    refreshInterval: c.refreshInterval ?? DEFAULTS.refreshInterval,
    gpuRefreshInterval: c.gpuRefreshInterval ?? DEFAULTS.gpuRefreshInterval,
    workers: c.defaultWorkers ?? DEFAULTS.workers,
    gpus: c.defaultGpus ?? DEFAULTS.gpus,
    engine: c.defaultEngine ?? DEFAULTS.engine,
    queue: c.defaultQueue ?? DEFAULTS.queue,
    priority: c.defaultPriority ?? DEFAULTS.priority
  };
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Train a notebook as a DLW job, watch jobs, logs and GPUs.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette, ISettingRegistry, IStatusBar, ILayoutRestorer, ILabShell],
  activate: async (
    app: JupyterFrontEnd,
    notebooks: INotebookTracker,
    palette: ICommandPalette | null,
    registry: ISettingRegistry | null,
    statusBar: IStatusBar | null,
    restorer: ILayoutRestorer | null
  ) => {
    let settingsObj: ISettingRegistry.ISettings | null = null;
    let settings = { ...DEFAULTS };
    const viewers = new Map<string, MainAreaWidget<LogViewer>>();

    const onAction = (action: JobAction, job: IJob): void => {
      switch (action) {
        case 'logs':
          openLogs(job);
          break;
        case 'cancel':
          void cancel(job);
          break;
        case 'output':
          void openOutput(job);
          break;
        case 'yaml':
          void copyYaml(job);
          break;
      }
    };

    const panel = new JobsPanel(onAction, settings.refreshInterval);
    panel.title.icon = trainIcon;
    app.shell.add(panel, 'right', { rank: 600 });
    restorer?.add(panel, 'dlw-jobs-panel');

    const openLogs = (job: IJob): void => {
      let viewer = viewers.get(job.name);
      if (!viewer || viewer.isDisposed) {
        viewer = new MainAreaWidget({ content: new LogViewer(job) });
        viewer.id = `dlw-logs-${job.name}`;
        viewer.title.label = `Logs: ${job.name}`;
        viewer.title.icon = trainIcon;
        viewers.set(job.name, viewer);
        app.shell.add(viewer, 'main', { mode: 'split-bottom' });
      }
      app.shell.activateById(viewer.id);
    };

    const cancel = async (job: IJob): Promise<void> => {
      const answer = await showDialog({
        title: 'Cancel job',
        body: `Stop every process of ${job.name}?`,
        buttons: [Dialog.cancelButton({ label: 'Keep running' }), Dialog.warnButton({ label: 'Cancel job' })]
      });
      if (!answer.button.accept) {
        return;
      }
      try {
        await cancelJob(job.name);
        Notification.info(`Cancelled ${job.name}`, { autoClose: 3000 });
      } catch (err) {
        await showErrorMessage('Cannot cancel the job', (err as Error).message);
      }
      await panel.refresh();
    };

    const openOutput = async (job: IJob): Promise<void> => {
      if (job.output_path !== null && job.output_path !== undefined) {
        await app.commands.execute('filebrowser:go-to-path', { path: job.output_path });
        return;
      }
      // Outside the server root (the local backend's data dir): show where it is instead.
      await showDialog({
        title: `Output of ${job.name}`,
        body: job.output_dir
          ? `The output folder is outside the file browser's root:\n${job.output_dir}`
          : 'This job has no output folder on this machine.',
        buttons: [Dialog.okButton()]
      });
    };

    const copyYaml = async (job: IJob): Promise<void> => {
      try {
        const full = await getJob(job.name);
        Clipboard.copyToSystem(full.yaml ?? '');
        Notification.success(`Copied the YAML of ${job.name}`, { autoClose: 3000 });
      } catch (err) {
        await showErrorMessage('Cannot read the job', (err as Error).message);
      }
    };

    const train = async (): Promise<void> => {
      const current = notebooks.currentWidget;
      if (!current) {
        return;
      }
      await current.context.ready;
      if (current.context.model.dirty) {
        await current.context.save(); // the job runs the notebook as saved on disk
      }
      const path = current.context.path;
      const [options, params] = await Promise.all([
        getOptions().catch(err => ({
          engines: ['job', 'volcano', 'pytorchjob'], volumes: [], queues: [], priorityClasses: [], profiles: [],
          reason: (err as Error).message
        })),
        getParameters(path).catch(err => ({ parameters: {}, reason: (err as Error).message }))
      ]);
      let previous: ISubmitRequest | undefined;
      for (;;) {
        const form = new TrainForm(path, params.parameters, options, settings, previous, params.reason);
        const result = await showDialog({
          title: 'Train as job',
          body: form,
          buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Submit' })],
          focusNodeSelector: 'input[name="name"]'
        });
        if (!result.button.accept) {
          return;
        }
        try {
          previous = form.getValue();
        } catch (err) {
          await showErrorMessage('Check the parameters', (err as Error).message);
          continue;
        }
        try {
          const job = await submitJob(previous);
          Notification.success(`Submitted ${job.name}`, { autoClose: 4000 });
          app.shell.activateById(panel.id);
          await panel.refresh();
          return;
        } catch (err) {
          // Keep what the user typed: the dialog opens again with the server's message fixed in mind.
          await showErrorMessage('Cannot submit the job', (err as Error).message);
        }
      }
    };

    app.commands.addCommand(CommandIDs.train, {
      label: 'Train as job',
      caption: 'Run this notebook as a DLW training job',
      icon: args => (args.toolbar ? trainIcon : undefined),
      isEnabled: () => notebooks.currentWidget !== null,
      execute: () => train()
    });
    app.commands.addCommand(CommandIDs.openPanel, {
      label: 'Show DLW Jobs',
      execute: () => app.shell.activateById(panel.id)
    });
    palette?.addItem({ command: CommandIDs.train, category: 'DLW' });
    palette?.addItem({ command: CommandIDs.openPanel, category: 'DLW' });

    let gpuStatus: GpuStatus | null = null;
    if (statusBar) {
      gpuStatus = new GpuStatus(settings.gpuRefreshInterval);
      statusBar.registerStatusItem('dlw:gpus', { item: gpuStatus, align: 'left', rank: 50 });
    }

    if (registry) {
      try {
        settingsObj = await registry.load(PLUGIN_ID);
        const apply = (): void => {
          settings = readSettings(settingsObj);
          panel.refreshSeconds = settings.refreshInterval;
          if (gpuStatus) {
            gpuStatus.refreshSeconds = settings.gpuRefreshInterval;
          }
        };
        apply();
        settingsObj.changed.connect(apply);
      } catch (err) {
        console.warn('dlw: cannot load settings', err);
      }
    }
  }
};

export default plugin;
