/** Status bar item: GPU utilization and memory of this machine (or "No GPU" with the reason). */

import { Widget } from '@lumino/widgets';

import { getGpus } from './api.js';
import { gpuSummary } from './format.js';

export class GpuStatus extends Widget {
  private timer = 0;
  private intervalMs: number;

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
      const { gpus, reason } = await getGpus();
      this.node.textContent = gpuSummary(gpus);
      this.node.title = gpus.length
        ? gpus
            .map(
              g =>
                `GPU ${g.index} ${g.name}: ${g.utilization_pct ?? 'n/a'}% · ${g.memory_used_mib}/${g.memory_total_mib} MiB`
            )
            .join('\n')
        : (reason ?? 'No GPU');
      this.node.dataset.gpus = String(gpus.length);
    } catch (err) {
      this.node.textContent = 'GPU ?';
      this.node.title = (err as Error).message;
    }
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
