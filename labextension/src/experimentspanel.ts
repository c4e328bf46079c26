/**
 * The "DLW Experiments" side panel: the user's sweeps, and the chosen one's results (``ExperimentView``),
 * refreshed by polling ``GET dlw/api/experiments`` and ``GET dlw/api/experiments/NAME``. Promote and
 * TensorBoard call the REST API; TensorBoard opens in a new tab behind the lab's own login.
 */

import { Widget } from '@lumino/widgets';

import { getJob, listExperiments, request } from './api.js';
import { ExperimentView, IExperiment, ITrial } from './experimentview.js';
const getExperiment = (name: string): Promise<IExperiment> => request<IExperiment>(`experiments/${name}`);
const promote = (name: string): Promise<{ name: string }> =>
  request(`experiments/${name}/promote`, { method: 'POST', body: '{}' });
const openTensorBoard = (jobs: string[]): Promise<{ url: string }> =>
  request('tensorboard', { method: 'POST', body: JSON.stringify({ jobs }) });

export class ExperimentsPanel extends Widget {
  readonly view: ExperimentView;
  private readonly picker: HTMLSelectElement;
  private readonly status: HTMLElement;
  private timer = 0;

  /** ``openFile``: opens a root-relative path in the lab (a trial's executed notebook). */
  constructor(
    private readonly openFile: (path: string) => void = () => undefined,
    private readonly intervalMs = 3000
  ) {
    super();
    this.id = 'dlw-experiments-panel';
    this.addClass('dlw-ExperimentsPanel');
    this.title.caption = 'DLW Experiments';
    const title = document.createElement('h2');
    title.textContent = 'DLW Experiments';
    this.picker = document.createElement('select');
    this.picker.className = 'dlw-ExperimentsPanel-picker jp-mod-styled';
    this.picker.addEventListener('change', () => void this.refresh());
    this.status = document.createElement('div');
    this.status.className = 'dlw-ExperimentsPanel-status';
    this.view = new ExperimentView({
      onPromote: exp => void this.run(async () => `Submitted ${(await promote(exp.name)).name}`),
      onTensorBoard: trials => void this.tensorBoard(trials),
      onOpen: trial => void this.openExecuted(trial.name)
    });
    this.node.append(title, this.picker, this.status, this.view.node);
  }

  private async run(action: () => Promise<string>): Promise<void> {
    try {
      this.status.textContent = await action();
    } catch (err) {
      this.status.textContent = (err as Error).message;
    }
  }

  /** A trial's executed notebook (double-click its row; "Best trial" for the best one). */
  private async openExecuted(name: string): Promise<void> {
    await this.run(async () => {
      const path = (await getJob(name)).executed_notebook_path;
      if (!path) {
        return `${name} has no executed notebook here yet`;
      }
      this.openFile(path);
      return `Opened ${path}`;
    });
  }

  private async tensorBoard(trials: ITrial[]): Promise<void> {
    const tab = window.open('', '_blank'); // opened now: a popup blocker allows it during the click
    await this.run(async () => {
      const { url } = await openTensorBoard(trials.slice(0, 20).map(t => t.name));
      if (tab) {
        tab.location.href = url;
      }
      return `TensorBoard: ${url}`;
    });
  }

  async refresh(): Promise<void> {
    try {
      const items = await listExperiments();
      const chosen = this.picker.value || items[0]?.name || '';
      this.picker.replaceChildren(
        ...items.map(e => {
          const o = document.createElement('option');
          o.value = e.name;
          o.textContent = `${e.name} (${e.state})`;
          o.selected = e.name === chosen;
          return o;
        })
      );
      if (chosen) {
        this.view.update(await getExperiment(chosen));
      } else {
        this.status.textContent = 'No experiments yet: dlw sweep NOTEBOOK -p NAME=A,B,C (or %dlw sweep ...)';
      }
    } catch (err) {
      this.status.textContent = (err as Error).message;
    }
  }

  protected onAfterShow(): void {
    void this.refresh();
    window.clearInterval(this.timer);
    this.timer = window.setInterval(() => void this.refresh(), this.intervalMs);
  }

  protected onBeforeHide(): void {
    window.clearInterval(this.timer);
    this.timer = 0;
  }

  dispose(): void {
    window.clearInterval(this.timer);
    super.dispose();
  }
}
