/**
 * What the buttons of a job's row in the DLW Jobs panel do: follow its logs (in the one log tab),
 * cancel, open its output folder in the file browser, copy its YAML, rerun it, delete it; and the
 * panel's Compare: the checked jobs side by side in one Compare tab.
 */

import type { JupyterFrontEnd } from '@jupyterlab/application';
import { Clipboard, Dialog, MainAreaWidget, Notification, showDialog, showErrorMessage } from '@jupyterlab/apputils';

import { Widget } from '@lumino/widgets';

import { cancelJob, compareJobs, deleteJob, downloadUrl, getJob, htmlUrl, IJob, outputPath, rerunJob } from './api.js';
import { CompareView } from './compareview.js';
import { trainIcon } from './icons.js';
import type { JobAction } from './jobslist.js';
import { LogViewer } from './logviewer.js';

export class JobActions {
  private logs: MainAreaWidget<LogViewer> | null = null;
  private comparison: MainAreaWidget<Widget> | null = null;
  private compareView = new CompareView();

  constructor(
    private readonly app: JupyterFrontEnd,
    private readonly refresh: () => Promise<void>
  ) {}

  run(action: JobAction, job: IJob): void {
    const handlers: Record<JobAction, (job: IJob) => Promise<void> | void> = {
      logs: j => this.openLogs(j),
      cancel: j => this.cancel(j),
      output: j => this.openOutput(j),
      download: j => this.download(j),
      notebook: j => this.openNotebook(j),
      html: j => this.openHtml(j),
      yaml: j => this.copyYaml(j),
      rerun: j => this.rerun(j),
      delete: j => this.remove(j)
    };
    void handlers[action](job);
  }

  /** The jobs side by side (``dlw compare``'s table and their metrics overlaid) in one Compare tab. */
  async compare(names: string[]): Promise<void> {
    let result;
    try {
      result = await compareJobs(names);
    } catch (err) {
      await showErrorMessage('Cannot compare the jobs', (err as Error).message);
      return;
    }
    if (!this.comparison || this.comparison.isDisposed) {
      this.compareView = new CompareView();
      const content = new Widget({ node: this.compareView.node });
      this.comparison = new MainAreaWidget({ content });
      this.comparison.id = 'dlw-compare';
      this.comparison.title.icon = trainIcon;
      this.comparison.title.closable = true;
      this.app.shell.add(this.comparison, 'main');
    }
    this.compareView.update(result);
    this.comparison.title.label = `Compare: ${names.join(', ')}`;
    this.app.shell.activateById(this.comparison.id);
  }

  /** One log tab for all jobs: a click points it at this job and brings it forward. */
  openLogs(job: IJob): void {
    if (!this.logs || this.logs.isDisposed) {
      this.logs = new MainAreaWidget({ content: new LogViewer(job, j => void this.openNotebook(j)) });
      this.logs.id = 'dlw-logs';
      this.logs.title.icon = trainIcon;
      this.app.shell.add(this.logs, 'main', { mode: 'split-bottom' });
    } else {
      this.logs.content.setJob(job);
    }
    this.logs.title.label = `Logs: ${job.name}`;
    this.app.shell.activateById(this.logs.id);
  }

  private async cancel(job: IJob): Promise<void> {
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
    await this.refresh();
  }

  private async openOutput(job: IJob): Promise<void> {
    try {
      const path = job.output_path ?? (await outputPath(job.name));
      await this.app.commands.execute('filebrowser:go-to-path', { path });
    } catch (err) {
      await showErrorMessage(`Output of ${job.name}`, (err as Error).message);
    }
  }

  /** The notebook as executed by rank 0 (written as cells finish), opened like any notebook. */
  private async openNotebook(job: IJob): Promise<void> {
    try {
      const path = job.executed_notebook_path ?? (await getJob(job.name)).executed_notebook_path;
      if (!path) {
        throw new Error('no executed notebook yet (it appears when the first cell finishes)');
      }
      await this.app.commands.execute('docmanager:open', { path });
    } catch (err) {
      await showErrorMessage(`Executed notebook of ${job.name}`, (err as Error).message);
    }
  }

  /** The executed notebook as HTML (nbconvert, made beside it by the server), in a new browser tab. */
  private async openHtml(job: IJob): Promise<void> {
    try {
      if (!(job.executed_notebook_path ?? (await getJob(job.name)).executed_notebook)) {
        throw new Error('no executed notebook yet (it appears when the first cell finishes)');
      }
      window.open(htmlUrl(job.name), '_blank', 'noopener');
    } catch (err) {
      await showErrorMessage(`HTML of ${job.name}`, (err as Error).message);
    }
  }

  /** The whole output folder as one zip, saved by the browser. */
  private async download(job: IJob): Promise<void> {
    if (!job.output_dir) {
      await showErrorMessage(`Output of ${job.name}`, 'the job has no output folder on this machine');
      return;
    }
    const link = document.createElement('a');
    link.href = downloadUrl(job.name);
    link.download = `${job.name}-output.zip`;
    document.body.appendChild(link);
    link.click();
    link.remove();
  }

  private async copyYaml(job: IJob): Promise<void> {
    try {
      const full = await getJob(job.name);
      Clipboard.copyToSystem(full.yaml ?? '');
      Notification.success(`Copied the YAML of ${job.name}`, { autoClose: 3000 });
    } catch (err) {
      await showErrorMessage('Cannot read the job', (err as Error).message);
    }
  }

  private async rerun(job: IJob): Promise<void> {
    try {
      const again = await rerunJob(job.name);
      Notification.success(`Submitted ${again.name} (a rerun of ${job.name})`, { autoClose: 4000 });
    } catch (err) {
      await showErrorMessage('Cannot rerun the job', (err as Error).message);
    }
    await this.refresh();
  }

  private async remove(job: IJob): Promise<void> {
    const answer = await showDialog({
      title: 'Delete job',
      body: `Forget ${job.name} and delete its files: snapshot, logs and output folder?`,
      buttons: [Dialog.cancelButton({ label: 'Keep it' }), Dialog.warnButton({ label: 'Delete' })]
    });
    if (!answer.button.accept) {
      return;
    }
    try {
      await deleteJob(job.name);
      if (this.logs && !this.logs.isDisposed && this.logs.content.job.name === job.name) {
        this.logs.dispose(); // its log is gone
      }
      Notification.info(`Deleted ${job.name}`, { autoClose: 3000 });
    } catch (err) {
      await showErrorMessage('Cannot delete the job', (err as Error).message);
    }
    await this.refresh();
  }
}
