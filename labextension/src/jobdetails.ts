/**
 * The top of a job's log tab: why a queued job waits, its preemption history, a "Notebook" button
 * for the executed notebook, and live charts of the metrics it logs. Plain DOM, fed the job as the
 * single-job GET returns it (with ``metrics``); every field may be absent.
 */

import { MetricCharts } from './chart.js';
import type { IJob, IPreemption } from './types.js';

export class JobDetails {
  readonly node: HTMLElement;
  readonly charts = new MetricCharts();
  private readonly info: HTMLElement;
  private readonly history: HTMLElement;
  private readonly notebook: HTMLButtonElement;
  private job: IJob | null = null;

  constructor(onOpenNotebook: (job: IJob) => void, onDiff?: (job: IJob) => void) {
    this.node = document.createElement('div');
    this.node.className = 'dlw-JobDetails';
    const bar = document.createElement('div');
    bar.className = 'dlw-JobDetails-bar';
    this.notebook = document.createElement('button');
    this.notebook.className = 'jp-Button jp-mod-minimal dlw-JobDetails-notebook';
    this.notebook.textContent = 'Notebook';
    this.notebook.title = 'Open the executed notebook: the cells run so far, with their outputs';
    this.notebook.disabled = true;
    this.notebook.addEventListener('click', () => this.job && onOpenNotebook(this.job));
    this.info = document.createElement('span');
    this.info.className = 'dlw-JobDetails-info';
    const diff = document.createElement('button');
    diff.className = 'jp-Button jp-mod-minimal dlw-JobDetails-diff';
    diff.textContent = 'Diff with…';
    diff.title = 'What changed: parameters, cells, code, image, packages, resources';
    diff.hidden = !onDiff;
    diff.addEventListener('click', () => this.job && onDiff?.(this.job));
    bar.append(this.notebook, diff, this.info);
    this.history = document.createElement('div');
    this.history.className = 'dlw-JobDetails-history';
    this.node.append(bar, this.history, this.charts.node);
  }

  update(job: IJob): void {
    this.job = job;
    this.notebook.disabled = !job.executed_notebook_path;
    const parts = [job.state];
    if ((job.attempt ?? 0) > 1) {
      parts.push(`attempt ${job.attempt}`);
    }
    if (job.state === 'Queued' && (job.message || job.reason)) {
      parts.push(job.message || job.reason || '');
    }
    this.info.textContent = parts.join(' · ');
    this.history.textContent = (job.history ?? []).map(historyLine).join('\n');
    this.history.hidden = !job.history?.length;
    this.charts.update(job.metrics);
  }
}

/** "preempted 12:03:04 by urgent-1 (attempt 1); resumed 12:05:10 from /out (ckpt-3.pt)". */
export function historyLine(h: IPreemption): string {
  const when = (t: number | null | undefined): string => (t ? new Date(t * 1000).toLocaleTimeString() : '-');
  let text = `preempted ${when(h.preemptedAt)} by ${h.by ?? '?'}`;
  if (h.attempt !== undefined) {
    text += ` (attempt ${h.attempt})`;
  }
  if (h.resumedAt) {
    text += `; resumed ${when(h.resumedAt)}`;
    if (h.resumedFrom) {
      text += ` from ${h.resumedFrom}`;
    }
    text += h.checkpoint ? ` (${h.checkpoint})` : ' (no checkpoint written)';
  }
  return text;
}
