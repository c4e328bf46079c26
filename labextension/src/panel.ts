/** The "DLW Jobs" side panel: the user's jobs with live state, refreshed by polling the REST API. */

import { Widget } from '@lumino/widgets';

import { getJob, listExperiments, listJobs } from './api.js';
import { JobAction, JobsList } from './jobslist.js';
import { SchedulesSection } from './schedules.js';
import type { IJob } from './types.js';

export class JobsPanel extends Widget {
  readonly list: JobsList;
  readonly schedules: SchedulesSection; // definitions with their runs grouped under them
  private readonly summary: HTMLElement;
  private readonly error: HTMLElement;
  private readonly compare: HTMLButtonElement;
  private timer = 0;
  private ticker = 0;
  private refreshing: Promise<void> | null = null;
  private intervalMs: number;

  /** ``onCompare``: the checked jobs' names (two or more), to show side by side. */
  constructor(
    onAction: (action: JobAction, job: IJob) => void,
    refreshSeconds: number,
    onCompare: (names: string[]) => void = () => undefined
  ) {
    super();
    this.id = 'dlw-jobs-panel';
    this.addClass('dlw-JobsPanel');
    this.title.caption = 'DLW Jobs';
    this.intervalMs = Math.max(500, refreshSeconds * 1000);

    const header = document.createElement('div');
    header.className = 'dlw-JobsPanel-header';
    const title = document.createElement('h2');
    title.textContent = 'DLW Jobs';
    const refresh = document.createElement('button');
    refresh.className = 'dlw-JobsPanel-refresh jp-Button jp-mod-minimal';
    refresh.textContent = '⟳';
    refresh.title = 'Refresh now';
    refresh.addEventListener('click', () => void this.refresh());
    this.compare = document.createElement('button');
    this.compare.className = 'dlw-JobsPanel-compare jp-Button jp-mod-minimal';
    this.compare.textContent = 'Compare';
    this.compare.title = 'Check two or more jobs to compare their metrics, parameters, image, code and packages';
    this.compare.disabled = true;
    this.compare.addEventListener('click', () => onCompare(this.list.selection));
    header.append(title, this.compare, refresh);

    const filter = document.createElement('input');
    filter.className = 'dlw-JobsPanel-filter jp-mod-styled';
    filter.placeholder = 'Filter by name, state or #tag';
    filter.addEventListener('input', () => this.list.setFilter(filter.value));

    this.summary = document.createElement('div');
    this.summary.className = 'dlw-JobsPanel-summary';
    this.error = document.createElement('div');
    this.error.className = 'dlw-JobsPanel-error';

    this.list = new JobsList({
      onAction,
      onSelect: names => {
        this.compare.disabled = names.length < 2;
        this.compare.textContent = names.length ? `Compare (${names.length})` : 'Compare';
      }
    });
    this.schedules = new SchedulesSection(name => void getJob(name).then(job => onAction('logs', job)));
    this.node.append(header, this.schedules.node, filter, this.summary, this.error, this.list.node);
  }

  set refreshSeconds(seconds: number) {
    this.intervalMs = Math.max(500, seconds * 1000);
    if (this.timer) {
      this.startPolling();
    }
  }

  /** Fetch the jobs now (concurrent calls share one request). */
  refresh(): Promise<void> {
    if (!this.refreshing) {
      void this.schedules.refresh();
      // The group rows' state and best trial; without it they still group, from the trials' states.
      void listExperiments()
        .then(items => this.list.setExperiments(items))
        .catch(() => undefined);
      this.refreshing = listJobs()
        .then(jobs => {
          this.error.textContent = '';
          this.list.setJobs(jobs);
          this.updateSummary(jobs);
        })
        .catch(err => {
          this.error.textContent = `Cannot list jobs: ${err.message}`;
        })
        .finally(() => {
          this.refreshing = null;
        });
    }
    return this.refreshing;
  }

  private updateSummary(jobs: IJob[]): void {
    if (!jobs.length) {
      this.summary.textContent = 'No jobs yet. Use "Train as job" on a notebook.';
      return;
    }
    const counts = new Map<string, number>();
    for (const j of jobs) {
      counts.set(j.state, (counts.get(j.state) ?? 0) + 1);
    }
    const parts = ['Running', 'Queued', 'Failed']
      .filter(s => counts.get(s))
      .map(s => `${counts.get(s)} ${s.toLowerCase()}`);
    this.summary.textContent = `${jobs.length} job${jobs.length === 1 ? '' : 's'}${parts.length ? ' · ' + parts.join(' · ') : ''}`;
  }

  private startPolling(): void {
    window.clearInterval(this.timer);
    this.timer = window.setInterval(() => {
      if (!document.hidden && this.isVisible) {
        void this.refresh();
      }
    }, this.intervalMs);
  }

  protected onAfterAttach(): void {
    void this.refresh();
    this.startPolling();
    // Durations of running jobs tick between polls; only visible rows are touched.
    this.ticker = window.setInterval(() => this.list.schedule(), 1000);
  }

  protected onBeforeDetach(): void {
    window.clearInterval(this.timer);
    window.clearInterval(this.ticker);
    this.timer = 0;
  }

  protected onAfterShow(): void {
    void this.refresh();
  }

  protected onResize(): void {
    this.list.schedule();
  }

  dispose(): void {
    window.clearInterval(this.timer);
    window.clearInterval(this.ticker);
    this.list.dispose();
    super.dispose();
  }
}
