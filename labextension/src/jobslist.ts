/**
 * The job list of the "DLW Jobs" panel, in plain DOM so it can be measured outside JupyterLab.
 *
 * Virtualized: rows are a small pool of absolutely positioned elements re-used while scrolling, and
 * an update touches only rows whose text changed. ``virtualize: false`` renders every row (the naive
 * baseline the benchmark compares against).
 *
 * A sweep's trials (jobs whose ``experiment`` is set) sit under one collapsible group row per
 * experiment, placed where its newest trial would be; the group shows the experiment's state and best
 * trial (``setExperiments``, from ``GET dlw/api/experiments``). Each job row has a checkbox: the
 * selection is what the panel's Compare sends to ``GET dlw/api/compare``.
 */

import { failureLine, formatDuration, gpuLabel, isFinished, jobDuration, jobTimes } from './format.js';
import type { IJob } from './types.js';
import { rangeByOffsets } from './virtual.js';

export type JobAction = 'logs' | 'cancel' | 'output' | 'download' | 'notebook' | 'html' | 'yaml' | 'rerun' | 'delete';

export interface IJobsListOptions {
  rowHeight?: number;
  groupHeight?: number;
  virtualize?: boolean;
  onAction: (action: JobAction, job: IJob) => void;
  /** The checked jobs changed (names, in the order checked). */
  onSelect?: (names: string[]) => void;
  now?: () => number; // seconds
}

/** What the group row of an experiment says (``GET dlw/api/experiments``). */
export interface IExperimentInfo {
  name: string;
  state: string;
  best: string | null;
  metric?: string | null;
}

type Item = { kind: 'job'; job: IJob; trial: boolean } | { kind: 'group'; name: string; trials: IJob[] };

interface IGroupRow {
  el: HTMLElement;
  toggle: HTMLElement;
  name: HTMLElement;
  state: HTMLElement;
  meta: HTMLElement;
  key: string;
}

interface IRow {
  el: HTMLElement;
  state: HTMLElement;
  name: HTMLElement;
  tags: HTMLElement;
  meta: HTMLElement;
  why: HTMLElement;
  select: HTMLInputElement;
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
  private readonly groupHeight: number;
  private readonly virtualize: boolean;
  private readonly opts: IJobsListOptions;
  private jobs: IJob[] = [];
  private view: IJob[] = [];
  private items: Item[] = [];
  private offsets: number[] = [0];
  private experiments = new Map<string, IExperimentInfo>();
  private readonly expanded = new Set<string>();
  private readonly selected = new Set<string>();
  private filterText = '';
  private rows: IRow[] = [];
  private groupRows: IGroupRow[] = [];
  private frame = 0;

  constructor(opts: IJobsListOptions) {
    this.opts = opts;
    this.rowHeight = opts.rowHeight ?? 122; // name, times, a failed job's reason (2 lines), two lines of buttons
    this.groupHeight = opts.groupHeight ?? 48;
    this.virtualize = opts.virtualize ?? true;
    this.node = document.createElement('div');
    this.node.className = 'dlw-JobsList';
    this.spacer = document.createElement('div');
    this.spacer.className = 'dlw-JobsList-spacer';
    this.node.appendChild(this.spacer);
    this.node.addEventListener('scroll', () => this.schedule(), { passive: true });
    this.node.addEventListener('click', ev => this.onClick(ev));
    this.node.addEventListener('change', ev => this.onChange(ev));
  }

  /** Jobs that pass the filter (trials of collapsed groups included). */
  get count(): number {
    return this.view.length;
  }

  get allJobs(): readonly IJob[] {
    return this.jobs;
  }

  /** The checked jobs, in the order they were checked. */
  get selection(): string[] {
    return [...this.selected];
  }

  setJobs(jobs: IJob[]): void {
    this.jobs = jobs;
    const names = new Set(jobs.map(j => j.name));
    const before = this.selected.size;
    for (const n of [...this.selected]) {
      if (!names.has(n)) {
        this.selected.delete(n); // deleted meanwhile
      }
    }
    if (this.selected.size !== before) {
      this.opts.onSelect?.(this.selection);
    }
    this.applyFilter();
  }

  /** The experiments the group rows describe (state, best trial). */
  setExperiments(experiments: readonly IExperimentInfo[]): void {
    this.experiments = new Map(experiments.map(e => [e.name, e]));
    this.layout();
  }

  setFilter(text: string): void {
    this.filterText = text.trim().toLowerCase();
    this.applyFilter();
  }

  /** Open or close an experiment's group. */
  toggleGroup(name: string, open?: boolean): void {
    if (open ?? !this.expanded.has(name)) {
      this.expanded.add(name);
    } else {
      this.expanded.delete(name);
    }
    this.layout();
  }

  clearSelection(): void {
    this.selected.clear();
    this.opts.onSelect?.([]);
    this.schedule();
  }

  private applyFilter(): void {
    const f = this.filterText;
    // "#tag" (or "tag:x") matches a tag exactly; other text a name, a state, a tag or the experiment.
    const tag = f.startsWith('#') ? f.slice(1) : f.startsWith('tag:') ? f.slice(4) : null;
    const tagged = (j: IJob, t: string, exact: boolean): boolean =>
      (j.tags ?? []).some(x => (exact ? x.toLowerCase() === t : x.toLowerCase().includes(t)));
    this.view = !f
      ? this.jobs
      : tag !== null
        ? this.jobs.filter(j => tagged(j, tag, true))
        : this.jobs.filter(
            j =>
              j.name.includes(f) ||
              j.state.toLowerCase().includes(f) ||
              tagged(j, f, false) ||
              (j.experiment ?? '').includes(f)
          );
    this.layout();
  }

  /** Items (group rows, then their trials when open; other jobs) and their offsets. */
  private layout(): void {
    const groups = new Map<string, IJob[]>();
    const items: Item[] = [];
    for (const job of this.view) {
      const exp = job.experiment;
      if (!exp) {
        items.push({ kind: 'job', job, trial: false });
        continue;
      }
      let trials = groups.get(exp);
      if (!trials) {
        trials = [];
        groups.set(exp, trials);
        items.push({ kind: 'group', name: exp, trials });
      }
      trials.push(job);
    }
    const open = (name: string): boolean => this.expanded.has(name) || this.filterText !== '';
    this.items = [];
    for (const item of items) {
      this.items.push(item);
      if (item.kind === 'group') {
        item.trials.sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
        if (open(item.name)) {
          this.items.push(...item.trials.map(job => ({ kind: 'job' as const, job, trial: true })));
        }
      }
    }
    this.offsets = [0];
    for (const item of this.items) {
      this.offsets.push(this.offsets[this.offsets.length - 1] + this.heightOf(item));
    }
    this.spacer.style.height = this.virtualize ? `${this.offsets[this.offsets.length - 1]}px` : '0';
    this.schedule();
  }

  private heightOf(item: Item): number {
    return item.kind === 'group' ? this.groupHeight : this.rowHeight;
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
      ? rangeByOffsets(this.offsets, this.node.scrollTop, this.node.clientHeight || 600)
      : { start: 0, end: this.items.length };
    const shown = this.items.slice(start, end);
    const jobsNeeded = shown.filter(i => i.kind === 'job').length;
    const groupsNeeded = shown.length - jobsNeeded;
    while (this.rows.length < jobsNeeded) {
      this.rows.push(this.makeRow());
    }
    while (this.rows.length > jobsNeeded) {
      this.rows.pop()!.el.remove();
    }
    while (this.groupRows.length < groupsNeeded) {
      this.groupRows.push(this.makeGroupRow());
    }
    while (this.groupRows.length > groupsNeeded) {
      this.groupRows.pop()!.el.remove();
    }
    const now = (this.opts.now ?? (() => Date.now() / 1000))();
    let j = 0;
    let g = 0;
    const order: HTMLElement[] = [];
    shown.forEach((item, i) => {
      if (item.kind === 'job') {
        const row = this.rows[j++];
        this.fill(row, start + i, item.job, item.trial, now);
        order.push(row.el);
      } else {
        const row = this.groupRows[g++];
        this.fillGroup(row, start + i, item.name, item.trials);
        order.push(row.el);
      }
    });
    if (!this.virtualize && groupsNeeded) {
      this.node.append(...order); // unpositioned rows of two pools: DOM order is list order
    }
  }

  private makeGroupRow(): IGroupRow {
    const el = document.createElement('div');
    el.className = 'dlw-JobGroup';
    el.style.height = `${this.groupHeight}px`;
    el.setAttribute('role', 'button');
    const top = document.createElement('div');
    top.className = 'dlw-JobGroup-top';
    const toggle = document.createElement('span');
    toggle.className = 'dlw-JobGroup-toggle';
    const name = document.createElement('span');
    name.className = 'dlw-JobGroup-name';
    const state = document.createElement('span');
    state.className = 'dlw-JobState';
    top.append(toggle, name, state);
    const meta = document.createElement('div');
    meta.className = 'dlw-JobGroup-meta';
    el.append(top, meta);
    this.node.appendChild(el);
    return { el, toggle, name, state, meta, key: '' };
  }

  private fillGroup(row: IGroupRow, index: number, name: string, trials: IJob[]): void {
    const info = this.experiments.get(name);
    const open = this.expanded.has(name) || this.filterText !== '';
    const counts = new Map<string, number>();
    for (const t of trials) {
      counts.set(t.state, (counts.get(t.state) ?? 0) + 1);
    }
    // Before the experiments' list arrives, the trials' own states say enough.
    const state =
      info?.state ??
      (trials.some(t => !isFinished(t.state)) ? 'Running' : counts.get('Failed') ? 'Failed' : 'Succeeded');
    const parts = [...counts].map(([s, n]) => `${n} ${s.toLowerCase()}`).join(', ');
    const best = info?.best ? ` · best: ${info.best}` : '';
    const meta = `${trials.length} trial${trials.length === 1 ? '' : 's'} (${parts})${best}`;
    const key = `${index}|${name}|${state}|${meta}|${open}`;
    if (row.key === key) {
      return;
    }
    row.key = key;
    row.el.dataset.index = String(index);
    row.el.dataset.experiment = name;
    row.el.dataset.state = state;
    row.el.setAttribute('aria-expanded', String(open));
    row.el.title = open ? 'Hide the trials' : 'Show the trials';
    row.el.style.transform = this.virtualize ? `translateY(${this.offsets[index]}px)` : '';
    row.el.classList.toggle('dlw-mod-virtual', this.virtualize);
    row.toggle.textContent = open ? '▾' : '▸';
    row.name.textContent = name;
    row.state.textContent = state;
    row.state.className = `dlw-JobState dlw-state-${state.toLowerCase()}`;
    row.meta.textContent = meta;
    row.meta.title = meta;
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
    const select = document.createElement('input');
    select.type = 'checkbox';
    select.className = 'dlw-JobRow-select';
    select.title = 'Select to compare with other jobs';
    top.append(select, name, tags, state);
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
      select,
      cancel: buttons.get('cancel')!,
      remove: buttons.get('delete')!,
      notebook: buttons.get('notebook')!,
      key: ''
    };
  }

  private fill(row: IRow, index: number, job: IJob, trial: boolean, now: number): void {
    const duration = formatDuration(jobDuration(job, now));
    const times = jobTimes(job, now);
    const meta = `${duration} · ${gpuLabel(job)} · ${job.workers}×${job.engine}${times ? ` · ${times}` : ''}`;
    // A queued job says why it waits (the scheduler's message) instead of its size; the size is in the tooltip.
    const waiting = job.state === 'Queued' && job.message ? job.message : '';
    const failed = failureLine(job);
    const tags = (job.tags ?? []).join(' ');
    const checked = this.selected.has(job.name);
    const key = `${index}|${job.name}|${job.state}|${meta}|${job.message ?? ''}|${job.executed_notebook_path}|${tags}|${checked}|${this.offsets[index]}`;
    if (row.key === key) {
      return; // unchanged since the last frame: no DOM write
    }
    row.key = key;
    row.el.dataset.index = String(index);
    row.el.dataset.job = job.name;
    row.el.dataset.state = job.state;
    row.el.style.transform = this.virtualize ? `translateY(${this.offsets[index]}px)` : '';
    row.el.classList.toggle('dlw-mod-virtual', this.virtualize);
    row.el.classList.toggle('dlw-mod-trial', trial);
    row.select.checked = checked;
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
    const group = target.closest<HTMLElement>('.dlw-JobGroup');
    if (group?.dataset.experiment) {
      this.toggleGroup(group.dataset.experiment);
      return;
    }
    const action = target.closest<HTMLElement>('[data-action]')?.dataset.action as JobAction | undefined;
    const rowEl = target.closest<HTMLElement>('.dlw-JobRow');
    if (!action || !rowEl) {
      return;
    }
    const item = this.items[Number(rowEl.dataset.index)];
    if (item?.kind === 'job') {
      this.opts.onAction(action, item.job);
    }
  }

  private onChange(ev: Event): void {
    const box = ev.target as HTMLInputElement;
    const name = box.closest<HTMLElement>('.dlw-JobRow')?.dataset.job;
    if (!box.classList.contains('dlw-JobRow-select') || !name) {
      return;
    }
    if (box.checked) {
      this.selected.add(name);
    } else {
      this.selected.delete(name);
    }
    this.opts.onSelect?.(this.selection);
    this.schedule();
  }

  dispose(): void {
    cancelAnimationFrame(this.frame);
    this.node.remove();
  }
}
