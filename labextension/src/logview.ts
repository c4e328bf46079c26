/**
 * A log pane for one job, in plain DOM so it can be measured outside JupyterLab.
 *
 * Text is appended to a LogBuffer and drawn at most once per animation frame, and only the lines in
 * view exist in the DOM: a job printing 100,000 lines keeps the page responsive. While the view is at
 * the bottom it follows the tail; scrolling up stops following until the user scrolls back down.
 * ``virtualize: false`` appends one element per line as it arrives (the naive baseline).
 */

import { LogBuffer } from './logbuffer.js';
import { atBottom, visibleRange } from './virtual.js';

export interface ILogViewOptions {
  lineHeight?: number;
  virtualize?: boolean;
  maxLines?: number;
}

export class LogView {
  readonly node: HTMLElement;
  readonly buffer: LogBuffer;
  follow = true;
  private readonly spacer: HTMLElement;
  private readonly lineHeight: number;
  private readonly virtualize: boolean;
  private pool: HTMLElement[] = [];
  private frame = 0;
  private programmaticScroll = false;

  constructor(opts: ILogViewOptions = {}) {
    this.lineHeight = opts.lineHeight ?? 17;
    this.virtualize = opts.virtualize ?? true;
    this.buffer = new LogBuffer(opts.maxLines);
    this.node = document.createElement('div');
    this.node.className = 'dlw-LogView';
    this.spacer = document.createElement('div');
    this.spacer.className = 'dlw-LogView-spacer';
    this.node.appendChild(this.spacer);
    this.node.addEventListener('scroll', () => this.onScroll(), { passive: true });
  }

  get lineCount(): number {
    return this.buffer.length;
  }

  append(text: string): void {
    if (!this.virtualize) {
      this.appendNaive(text);
      return;
    }
    this.buffer.append(text);
    this.schedule();
  }

  clear(): void {
    this.buffer.clear();
    if (!this.virtualize) {
      this.node.replaceChildren(this.spacer);
    }
    this.schedule();
  }

  scrollToEnd(): void {
    this.follow = true;
    this.schedule();
  }

  schedule(): void {
    if (!this.frame) {
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        this.render();
      });
    }
  }

  render(): void {
    const count = this.buffer.length;
    this.spacer.style.height = `${count * this.lineHeight}px`;
    const viewport = this.node.clientHeight || 400;
    if (this.follow) {
      const top = Math.max(0, count * this.lineHeight - viewport);
      if (Math.abs(this.node.scrollTop - top) > 1) {
        this.programmaticScroll = true;
        this.node.scrollTop = top;
      }
    }
    const { start, end } = visibleRange(this.node.scrollTop, viewport, this.lineHeight, count, 20);
    const needed = end - start;
    while (this.pool.length < needed) {
      const el = document.createElement('div');
      el.className = 'dlw-LogLine';
      el.style.height = `${this.lineHeight}px`;
      this.node.appendChild(el);
      this.pool.push(el);
    }
    while (this.pool.length > needed) {
      this.pool.pop()!.remove();
    }
    for (let i = 0; i < needed; i++) {
      const el = this.pool[i];
      const text = this.buffer.line(start + i);
      if (el.textContent !== text) {
        el.textContent = text;
      }
      el.style.transform = `translateY(${(start + i) * this.lineHeight}px)`;
    }
  }

  private onScroll(): void {
    if (this.programmaticScroll) {
      this.programmaticScroll = false;
    } else {
      this.follow = atBottom(this.node.scrollTop, this.node.clientHeight, this.buffer.length * this.lineHeight);
    }
    if (this.virtualize) {
      this.schedule();
    }
  }

  private appendNaive(text: string): void {
    this.buffer.append(text);
    for (const line of text.split('\n')) {
      if (line) {
        const el = document.createElement('div');
        el.className = 'dlw-LogLine dlw-mod-static';
        el.textContent = line;
        this.node.appendChild(el);
      }
    }
    this.node.scrollTop = this.node.scrollHeight;
  }

  dispose(): void {
    cancelAnimationFrame(this.frame);
    this.node.remove();
  }
}
