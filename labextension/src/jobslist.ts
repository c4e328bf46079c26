/**
 * The job list of the "DLW Jobs" panel, in plain DOM so it can be measured outside JupyterLab.
 *
 * Virtualized: rows are a small pool of absolutely positioned elements re-used while scrolling, and
 * an update touches only rows whose text changed. ``virtualize: false`` renders every row (the naive
 * baseline the benchmark compares against).
 */

import { failureLine, formatDuration, gpuLabel, isFinished, jobDuration, jobTimes } from './format.js';
import type { IJob } from './types.js';
import { visibleRange } from './virtual.js';

export type JobAction = 'logs' | 'cancel' | 'output' | 'download' | 'notebook' | 'html' | 'yaml' | 'rerun' | 'delete';

export interface IJobsListOptions {
  rowHeight?: number;
  virtualize?: boolean;
  onAction: (action: JobAction, job: IJob) => void;
  now?: () => number; // seconds
}

interface IRow {
  el: HTMLElement;
  state: HTMLElement;
  name: HTMLElement;
  tags: HTMLElement;
  meta: HTMLElement;
  why: HTMLElement;
  cancel: HTMLButtonElement;
  remove: HTMLButtonElement;
  notebook: HTMLButtonElement;
  key: string;
}

const ACTIONS: [JobAction, string, string][] = [
  ['logs', 'Logs', "Follow the job's logs"],
  ['cancel', 'Cancel', 'Stop every process of the job'],
  ['output', 'Output', "Open the job's output folder"],
  ['download', 'Zip', "Download the job's output folder as one zip file"],
  ['notebook', 'Notebook', 'Open the executed notebook: the cells run so far, with their outputs'],
  ['html', 'HTML', 'Open the executed notebook as an HTML page, to keep or share'],
  ['yaml', 'YAML', "Copy the job's spec as YAML"],
  ['rerun', 'Rerun', 'Submit the job again: same code and spec, a new name'],
  ['delete', 'Delete', 'Forget the finished job and delete its files (logs, output)']
];

export class JobsList {
  readonly node: HTMLElement;
  private readonly spacer: HTMLElement;
  private readonly rowHeight: number;
  private readonly virtualize: boolean;
  private readonly opts: IJobsListOptions;
  private jobs: IJob[] = [];
  private view: IJob[] = [];
  private filterText = '';
  private rows: IRow[] = [];
  private frame = 0;

  constructor(opts: IJobsListOptions) {
    this.opts = opts;
    this.rowHeight = opts.rowHeight ?? 122; // name, times, a failed job's reason (2 lines), two lines of buttons
    this.virtualize = opts.virtualize ?? true;
    this.node = document.createElement('div');
    this.node.className = 'dlw-JobsList';
    this.spacer = document.createElement('div');
    this.spacer.className = 'dlw-JobsList-spacer';
    this.node.appendChild(this.spacer);
    this.node.addEventListener('scroll', () => this.schedule(), { passive: true });
    this.node.addEventListener('click', ev => this.onClick(ev));
  }

  get count(): number {
    return this.view.length;
  }

  get allJobs(): readonly IJob[] {
    return this.jobs;
  }

  setJobs(jobs: IJob[]): void {
    this.jobs = jobs;
    this.applyFilter();
  }

  setFilter(text: string): void {
    this.filterText = text.trim().toLowerCase();
    this.applyFilter();
  }

  private applyFilter(): void {
    const f = this.filterText;
    // "#tag" (or "tag:x") matches a tag exactly; other text a name, a state or a tag.
    const tag = f.startsWith('#') ? f.slice(1) : f.startsWith('tag:') ? f.slice(4) : null;
    const tagged = (j: IJob, t: string, exact: boolean): boolean =>
      (j.tags ?? []).some(x => (exact ? x.toLowerCase() === t : x.toLowerCase().includes(t)));
    this.view = !f
      ? this.jobs
      : tag !== null
        ? this.jobs.filter(j => tagged(j, tag, true))
        : this.jobs.filter(j => j.name.includes(f) || j.state.toLowerCase().includes(f) || tagged(j, f, false));
    this.spacer.style.height = this.virtualize ? `${this.view.length * this.rowHeight}px` : '0';
    this.schedule();
  }

  /** Render on the next animation frame; many updates in one frame cost one render. */
  schedule(): void {
    if (!this.frame) {
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        this.render();
      });
    }
  }

  render(): void {
    const { start, end } = this.virtualize
      ? visibleRange(this.node.scrollTop, this.node.clientHeight || 600, this.rowHeight, this.view.length)
      : { start: 0, end: this.view.length };
    const needed = end - start;
    while (this.rows.length < needed) {
      this.rows.push(this.makeRow());
    }
    while (this.rows.length > needed) {
      this.rows.pop()!.el.remove();
    }
    const now = (this.opts.now ?? (() => Date.now() / 1000))();
    for (let i = 0; i < needed; i++) {
      this.fill(this.rows[i], start + i, now);
    }
  }

  private makeRow(): IRow {
    const el = document.createElement('div');
    el.className = 'dlw-JobRow';
    el.style.height = `${this.rowHeight}px`;
    const top = document.createElement('div');
    top.className = 'dlw-JobRow-top';
    const name = document.createElement('span');
    name.className = 'dlw-JobRow-name';
    const tags = document.createElement('span');
    tags.className = 'dlw-JobRow-tags';
    const state = document.createElement('span');
    state.className = 'dlw-JobState';
    top.append(name, tags, state);
    const meta = document.createElement('div');
    meta.className = 'dlw-JobRow-meta';
    const why = document.createElement('div');
    why.className = 'dlw-JobRow-why';
    why.hidden = true;
    const actions = document.createElement('div');
    actions.className = 'dlw-JobRow-actions';
    const buttons = new Map<JobAction, HTMLButtonElement>();
    for (const [action, label, title] of ACTIONS) {
      const b = document.createElement('button');
      b.className = `dlw-JobRow-action dlw-action-${action}`;
      b.dataset.action = action;
      b.textContent = label;
      b.title = title;
      actions.appendChild(b);
      buttons.set(action, b);
    }
    el.append(top, meta, why, actions);
    this.node.appendChild(el);
    return {
      el,
      state,
      name,
      tags,
      meta,
      why,
      cancel: buttons.get('cancel')!,
      remove: buttons.get('delete')!,
      notebook: buttons.get('notebook')!,
      key: ''
    };
  }

  private fill(row: IRow, index: number, now: number): void {
    const job = this.view[index];
    const duration = formatDuration(jobDuration(job, now));
    const times = jobTimes(job, now);
    const meta = `${duration} · ${gpuLabel(job)} · ${job.workers}×${job.engine}${times ? ` · ${times}` : ''}`;
    // A queued job says why it waits (the scheduler's message) instead of its size; the size is in the tooltip.
    const waiting = job.state === 'Queued' && job.message ? job.message : '';
    const failed = failureLine(job);
    const tags = (job.tags ?? []).join(' ');
    const key = `${index}|${job.name}|${job.state}|${meta}|${job.message ?? ''}|${job.executed_notebook_path}|${tags}`;
    if (row.key === key) {
      return; // unchanged since the last frame: no DOM write
    }
    row.key = key;
    row.el.dataset.index = String(index);
    row.el.dataset.job = job.name;
    row.el.dataset.state = job.state;
    row.el.style.transform = this.virtualize ? `translateY(${index * this.rowHeight}px)` : '';
    row.el.classList.toggle('dlw-mod-virtual', this.virtualize);
    row.name.textContent = job.name;
    row.name.title = job.message ? `${job.name}: ${job.message}` : job.name;
    row.tags.textContent = (job.tags ?? []).map(t => `#${t}`).join(' ');
    row.tags.title = tags ? `tags: ${tags} (type one in the filter to see its jobs)` : '';
    row.state.textContent = job.state;
    row.state.className = `dlw-JobState dlw-state-${job.state.toLowerCase()}`;
    row.state.title = job.reason ? `${job.state} (${job.reason})` : job.state;
    row.meta.textContent = waiting || meta;
    row.meta.title = waiting ? `${waiting}\n${meta}` : meta;
    row.meta.classList.toggle('dlw-mod-waiting', !!waiting);
    // A failed job says why in its row, not only in a tooltip.
    row.why.textContent = failed;
    row.why.title = failed;
    row.why.hidden = !failed;
    // The list may not know the notebook yet (it is read for one job's details): the click asks then.
    row.notebook.disabled = job.state === 'Queued' && !job.executed_notebook_path;
    row.cancel.disabled = isFinished(job.state);
    row.remove.disabled = !isFinished(job.state); // a running job is cancelled first
  }

  private onClick(ev: MouseEvent): void {
    const target = ev.target as HTMLElement;
    const action = target.closest<HTMLElement>('[data-action]')?.dataset.action as JobAction | undefined;
    const rowEl = target.closest<HTMLElement>('.dlw-JobRow');
    if (!action || !rowEl) {
      return;
    }
    const job = this.view[Number(rowEl.dataset.index)];
    if (job) {
      this.opts.onAction(action, job);
    }
  }

  dispose(): void {
    cancelAnimationFrame(this.frame);
    this.node.remove();
  }
}
