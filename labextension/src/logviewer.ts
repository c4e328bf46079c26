/**
 * A main-area tab following one job's log, per rank.
 *
 * The stream is resumable: after a dropped connection it reconnects from the last byte offset of the
 * rank it shows, so no line is lost or repeated. "All ranks" interleaves by arrival and restarts.
 */

import { Widget } from '@lumino/widgets';

import { DLWApiError, followLogs } from './api.js';
import { RankPrefixer } from './format.js';
import { LogView } from './logview.js';
import type { IJob, ILogChunk } from './types.js';

export class LogViewer extends Widget {
  readonly view = new LogView();
  private readonly status: HTMLElement;
  private readonly rankSelect: HTMLSelectElement;
  private abort: AbortController | null = null;
  private offset = 0;
  private rank: number | undefined;
  private finished = false;
  private readonly prefixer = new RankPrefixer();

  constructor(readonly job: IJob) {
    super();
    this.id = `dlw-logs-content-${job.name}`;
    this.addClass('dlw-LogViewer');
    this.title.label = `Logs: ${job.name}`;
    this.title.closable = true;

    const bar = document.createElement('div');
    bar.className = 'dlw-LogViewer-bar';
    const label = document.createElement('label');
    label.textContent = 'Rank ';
    this.rankSelect = document.createElement('select');
    this.rankSelect.className = 'dlw-LogViewer-rank';
    const ranks = Math.max(1, job.world_size || 1);
    for (let r = 0; r < ranks; r++) {
      this.rankSelect.add(new Option(String(r), String(r)));
    }
    if (ranks > 1) {
      this.rankSelect.add(new Option('all', 'all'));
    }
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
    this.node.append(bar, this.view.node);
  }

  protected onAfterAttach(): void {
    this.start();
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
    this.prefixer.clear();
    const value = this.rankSelect.value;
    this.rank = value === 'all' ? undefined : Number(value);
    void this.follow();
  }

  private async follow(): Promise<void> {
    const abort = new AbortController();
    this.abort = abort;
    let retries = 0;
    while (!abort.signal.aborted && !this.finished) {
      this.setStatus('following…');
      try {
        const complete = await followLogs(this.job.name, this.rank, this.offset, {
          onChunk: chunks => this.onChunks(chunks),
          onEnd: state => {
            this.finished = true;
            this.setStatus(`${state} · ${this.view.lineCount} lines`);
          },
          onError: message => {
            this.finished = true;
            this.setStatus(`error: ${message}`);
          }
        }, abort.signal);
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
        this.prefixer.clear();
        this.offset = 0;
      }
      this.setStatus(`reconnecting (${retries})…`);
      await new Promise(r => setTimeout(r, Math.min(5000, 500 * retries)));
    }
  }

  private onChunks(chunks: ILogChunk[]): void {
    for (const c of chunks) {
      this.view.append(this.rank === undefined && (this.job.world_size || 1) > 1 ? this.prefixer.prefix(c.rank, c.text) : c.text);
      if (this.rank !== undefined) {
        this.offset = c.offset;
      }
    }
    this.setStatus(`following… ${this.view.lineCount} lines`);
  }

  private setStatus(text: string): void {
    this.status.textContent = text;
  }

  dispose(): void {
    this.abort?.abort();
    this.view.dispose();
    super.dispose();
  }
}

