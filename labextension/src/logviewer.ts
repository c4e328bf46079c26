/**
 * The main-area tab following a job's log, per rank. There is one: each Logs click points it at
 * that job (``setJob``) instead of opening another tab.
 *
 * The stream is resumable: after a dropped connection it reconnects from the last byte offset of the
 * rank it shows, so no line is lost or repeated. "All ranks" shows whole lines of every rank in the
 * order they arrive (``RankMerger``) and restarts after a dropped connection.
 *
 * Until the first line comes, the pane says what it waits for (``waitingText``) instead of staying
 * blank, and new log lines pull the charts along (a details refresh at most once a second).
 */

import { Widget } from '@lumino/widgets';

import { DLWApiError, followLogs, getJob } from './api.js';
import { isFinished, RankMerger, waitingText } from './format.js';
import { JobDetails } from './jobdetails.js';
import { LogView } from './logview.js';
import { showDiff } from './schedules.js';
import type { IJob, ILogChunk } from './types.js';

export class LogViewer extends Widget {
  readonly view = new LogView();
  private readonly status: HTMLElement;
  private readonly waiting: HTMLElement;
  private lastPoll = 0;
  private polling = false;
  private readonly rankSelect: HTMLSelectElement;
  private abort: AbortController | null = null;
  private offset = 0;
  private rank: number | undefined;
  private finished = false;
  private readonly merger = new RankMerger();
  readonly details: JobDetails;
  private poller = 0;

  constructor(
    public job: IJob,
    onOpenNotebook: (job: IJob) => void = () => undefined,
    private readonly pollMs = 3000
  ) {
    super();
    this.id = 'dlw-logs-content';
    this.addClass('dlw-LogViewer');
    this.title.closable = true;

    const bar = document.createElement('div');
    bar.className = 'dlw-LogViewer-bar';
    const label = document.createElement('label');
    label.textContent = 'Rank ';
    this.rankSelect = document.createElement('select');
    this.rankSelect.className = 'dlw-LogViewer-rank';
    this.rankSelect.addEventListener('change', () => this.start());
    label.appendChild(this.rankSelect);
    const end = document.createElement('button');
    end.className = 'jp-Button jp-mod-minimal dlw-LogViewer-end';
    end.textContent = 'Follow ⤓';
    end.title = 'Jump to the end and follow new lines';
    end.addEventListener('click', () => this.view.scrollToEnd());
    this.status = document.createElement('span');
    this.status.className = 'dlw-LogViewer-status';
    bar.append(label, end, this.status);
    this.details = new JobDetails(onOpenNotebook, j => void showDiff(j.name));
    this.waiting = document.createElement('div');
    this.waiting.className = 'dlw-LogViewer-waiting';
    this.waiting.setAttribute('role', 'status');
    this.node.append(bar, this.details.node, this.waiting, this.view.node);
    this.showJob(job);
  }

  /** Show ``job`` (another job, or the same one again: then it keeps its place). */
  setJob(job: IJob): void {
    if (job.name === this.job.name) {
      return;
    }
    this.showJob(job);
    if (this.isAttached) {
      this.start();
      void this.poll();
    }
  }

  private showJob(job: IJob): void {
    this.job = job;
    this.updateWaiting();
    this.details.update(job);
    this.title.label = `Logs: ${job.name}`;
    this.rankSelect.length = 0;
    const ranks = Math.max(1, job.world_size || 1);
    for (let r = 0; r < ranks; r++) {
      this.rankSelect.add(new Option(String(r), String(r)));
    }
    if (ranks > 1) {
      this.rankSelect.add(new Option('all', 'all'));
    }
  }

  protected onAfterAttach(): void {
    this.start();
    void this.poll();
  }

  protected onBeforeDetach(): void {
    window.clearTimeout(this.poller);
    this.poller = 0;
  }

  /** Refresh the details and charts (metrics come with the single-job GET) until the job ends. */
  private async poll(): Promise<void> {
    window.clearTimeout(this.poller);
    const name = this.job.name;
    let done = false;
    this.polling = true;
    this.lastPoll = Date.now();
    try {
      const full = await getJob(name);
      if (this.isDisposed || name !== this.job.name) {
        return; // pointed at another job meanwhile: its own poll runs
      }
      this.details.update(full);
      this.job = { ...this.job, ...full };
      this.updateWaiting();
      done = isFinished(full.state); // a finished job's metrics and notebook are final
    } catch {
      // the log stream reports the job's errors; keep trying while attached
    } finally {
      this.polling = false;
    }
    if (!done && this.isAttached && !this.isDisposed) {
      this.poller = window.setTimeout(() => void this.poll(), document.hidden ? this.pollMs * 5 : this.pollMs);
    }
  }

  protected onResize(): void {
    this.view.schedule();
  }

  protected onAfterShow(): void {
    this.view.schedule();
  }

  /** (Re)start following the selected rank from the beginning. */
  start(): void {
    this.abort?.abort();
    this.view.clear();
    this.offset = 0;
    this.finished = false;
    this.merger.clear();
    const value = this.rankSelect.value;
    this.rank = value === 'all' ? undefined : Number(value);
    this.updateWaiting();
    void this.follow();
  }

  private get merged(): boolean {
    return this.rank === undefined && (this.job.world_size || 1) > 1;
  }

  private async follow(): Promise<void> {
    const abort = new AbortController();
    this.abort = abort;
    const name = this.job.name;
    let retries = 0;
    while (!abort.signal.aborted && !this.finished) {
      this.setStatus('following…');
      try {
        const complete = await followLogs(
          name,
          this.rank,
          this.offset,
          {
            onChunk: chunks => this.onChunks(chunks),
            onEnd: state => {
              this.finished = true;
              if (this.merged) {
                this.view.append(this.merger.flush());
              }
              this.job = { ...this.job, state };
              this.updateWaiting();
              void this.poll(); // the final metrics and notebook state, with the log's end
              this.setStatus(`${state} · ${this.view.lineCount} lines`);
            },
            onError: message => {
              this.finished = true;
              this.setStatus(`error: ${message}`);
            }
          },
          abort.signal
        );
        if (complete) {
          return;
        }
      } catch (err) {
        if (abort.signal.aborted) {
          return;
        }
        if (err instanceof DLWApiError && err.status >= 400 && err.status < 500) {
          this.setStatus(`error: ${err.message}`);
          return; // the job or rank is gone: retrying will not help
        }
      }
      // Dropped connection: resume where we were (per rank), with a short back-off.
      retries += 1;
      if (this.rank === undefined) {
        this.view.clear(); // offsets are per rank: "all ranks" can only restart
        this.merger.clear();
        this.offset = 0;
      }
      this.setStatus(`reconnecting (${retries})…`);
      await new Promise(r => setTimeout(r, Math.min(5000, 500 * retries)));
    }
  }

  private onChunks(chunks: ILogChunk[]): void {
    for (const c of chunks) {
      this.view.append(this.merged ? this.merger.feed(c.rank, c.text) : c.text);
      if (this.rank !== undefined) {
        this.offset = c.offset;
      }
    }
    this.setStatus(`following… ${this.view.lineCount} lines`);
    this.updateWaiting();
    this.pullCharts();
  }

  /** New lines usually come with new metrics: refresh the charts now rather than at the next poll. */
  private pullCharts(): void {
    if (this.polling || !this.isAttached || isFinished(this.job.state) || Date.now() - this.lastPoll < 1000) {
      return;
    }
    void this.poll();
  }

  private updateWaiting(): void {
    const text = this.view.lineCount ? '' : waitingText(this.job, this.rank);
    this.waiting.textContent = text;
    this.waiting.hidden = !text;
  }

  private setStatus(text: string): void {
    this.status.textContent = text;
  }

  dispose(): void {
    window.clearTimeout(this.poller);
    this.abort?.abort();
    this.view.dispose();
    super.dispose();
  }
}
