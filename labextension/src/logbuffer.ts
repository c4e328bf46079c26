/**
 * Lines of one log, appended in arbitrary chunks (a chunk may end mid-line).
 *
 * The unfinished last line is kept apart and shown as the last row, so a progress line appears
 * before its newline arrives. Beyond ``maxLines`` the oldest lines are dropped in bulk.
 */

export class LogBuffer {
  readonly lines: string[] = [];
  private partial = '';
  dropped = 0;

  constructor(readonly maxLines = 1_000_000) {}

  append(text: string): void {
    if (!text) {
      return;
    }
    const parts = (this.partial + text).split('\n');
    this.partial = parts.pop() as string;
    for (const p of parts) {
      this.lines.push(p);
    }
    const over = this.lines.length - this.maxLines;
    if (over > 0) {
      // Drop a tenth more than needed so trimming happens rarely, not on every append.
      const n = Math.min(this.lines.length, over + Math.floor(this.maxLines / 10));
      this.lines.splice(0, n);
      this.dropped += n;
    }
  }

  /** Rows to show: complete lines plus the unfinished one. */
  get length(): number {
    return this.lines.length + (this.partial ? 1 : 0);
  }

  line(i: number): string {
    return i < this.lines.length ? this.lines[i] : this.partial;
  }

  clear(): void {
    this.lines.length = 0;
    this.partial = '';
    this.dropped = 0;
  }
}
