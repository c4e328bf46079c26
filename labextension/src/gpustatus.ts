/** Status bar item: GPU utilization and memory of this machine (or "No GPU" with the reason). */

import { Notification } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { getGpus } from './api.js';
import { gpuSummary } from './format.js';
import type { IGpuIdle } from './types.js';

export class GpuStatus extends Widget {
  private timer = 0;
  private intervalMs: number;
  private idleKey = '';
  private idleNotice = '';

  constructor(refreshSeconds: number) {
    super();
    this.addClass('dlw-GpuStatus');
    this.node.textContent = 'GPU …';
    this.intervalMs = Math.max(1000, refreshSeconds * 1000);
  }

  set refreshSeconds(seconds: number) {
    this.intervalMs = Math.max(1000, seconds * 1000);
    if (this.timer) {
      this.start();
    }
  }

  async refresh(): Promise<void> {
    try {
      const { gpus: local, reason, server, usage } = await getGpus();
      // On Kubernetes this pod has no GPU: the server's GPUs are the ones the jobs use.
      const gpus = local.length ? local : (server?.gpus ?? []);
      const idle = server?.idle ?? null;
      const summary = gpuSummary(gpus);
      this.node.textContent = idle ? `⚠ ${summary}` : summary;
      const details = gpus.length
        ? gpus
            .map(
              g =>
                `GPU ${g.index} ${g.name}: ${g.utilization_pct ?? 'n/a'}% · ${g.memory_used_mib}/${g.memory_total_mib} MiB`
            )
            .join('\n')
        : (reason ?? 'No GPU');
      const withUsage = usage ? `${details}\n${usage.line}` : details;
      this.node.title = idle ? `${idle.message}\n${withUsage}` : withUsage;
      this.node.classList.toggle('dlw-GpuStatus-idle', !!idle);
      // Past warnAt (or the budget) the item says so; the line names the budget and its reset.
      this.node.classList.toggle('dlw-GpuStatus-budget', !!usage && (usage.warning || usage.exhausted));
      this.node.dataset.gpuHours = usage ? usage.gpuHours.toFixed(2) : '';
      this.node.dataset.gpus = String(gpus.length);
      this.notifyIdle(idle);
    } catch (err) {
      this.node.textContent = 'GPU ?';
      this.node.title = (err as Error).message;
    }
  }

  /** One sticky warning per idle episode (a new idleSince/stopAt pair); gone when the GPUs are used again. */
  private notifyIdle(idle: IGpuIdle | null): void {
    if (!idle) {
      if (this.idleNotice) {
        Notification.dismiss(this.idleNotice);
      }
      this.idleNotice = '';
      this.idleKey = '';
      return;
    }
    const key = `${idle.idleSince}|${idle.stopAt ?? ''}`;
    if (key === this.idleKey) {
      return;
    }
    if (this.idleNotice) {
      Notification.dismiss(this.idleNotice);
    }
    this.idleKey = key;
    this.idleNotice = Notification.warning(idle.message, { autoClose: false });
  }

  private start(): void {
    window.clearInterval(this.timer);
    this.timer = window.setInterval(() => {
      if (!document.hidden) {
        void this.refresh();
      }
    }, this.intervalMs);
  }

  protected onAfterAttach(): void {
    void this.refresh();
    this.start();
  }

  protected onBeforeDetach(): void {
    window.clearInterval(this.timer);
    this.timer = 0;
  }
}
