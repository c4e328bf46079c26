/** Formatting and parsing shared by the panel, the dialog and the status bar (no DOM, no JupyterLab). */

export type JobState = 'Queued' | 'Running' | 'Succeeded' | 'Failed' | 'Cancelled';

export const FINISHED_STATES: ReadonlySet<string> = new Set(['Succeeded', 'Failed', 'Cancelled']);

export function isFinished(state: string): boolean {
  return FINISHED_STATES.has(state);
}

/** ``75`` -> ``1m 15s``; ``3725`` -> ``1h 2m``; null -> ``-``. */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !isFinite(seconds) || seconds < 0) {
    return '-';
  }
  const s = Math.floor(seconds);
  if (s < 60) {
    return `${s}s`;
  }
  const m = Math.floor(s / 60);
  if (m < 60) {
    return `${m}m ${s % 60}s`;
  }
  const h = Math.floor(m / 60);
  if (h < 24) {
    return `${h}h ${m % 60}m`;
  }
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** A job's duration now: finished jobs are fixed; running ones count from ``started``. */
export function jobDuration(
  job: { started?: number | null; finished?: number | null },
  nowSeconds: number
): number | null {
  if (job.started === null || job.started === undefined) {
    return null;
  }
  return (job.finished ?? nowSeconds) - job.started;
}

/** A time of day (``14:02:11``), with the date when it is not today (``2026-12-05 14:02``). */
export function formatClock(seconds: number, nowSeconds: number): string {
  const t = new Date(seconds * 1000);
  const pad = (n: number): string => String(n).padStart(2, '0');
  const hm = `${pad(t.getHours())}:${pad(t.getMinutes())}`;
  if (t.toDateString() === new Date(nowSeconds * 1000).toDateString()) {
    return `${hm}:${pad(t.getSeconds())}`;
  }
  return `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())} ${hm}`;
}

/** When a job ran, as the panel row shows it: ``14:02:11–14:05:40``, ``14:02:11–now``, ``queued 14:01:58``. */
export function jobTimes(
  job: { created?: number | null; started?: number | null; finished?: number | null },
  nowSeconds: number
): string {
  if (job.started !== null && job.started !== undefined) {
    const end = job.finished !== null && job.finished !== undefined ? formatClock(job.finished, nowSeconds) : 'now';
    return `${formatClock(job.started, nowSeconds)}–${end}`;
  }
  if (job.finished !== null && job.finished !== undefined) {
    return `ended ${formatClock(job.finished, nowSeconds)}`; // cancelled while queued
  }
  return job.created !== null && job.created !== undefined ? `queued ${formatClock(job.created, nowSeconds)}` : '';
}

/** Why a job failed, in one line the row shows: its message (``NameError: ...``), else its reason. */
export function failureLine(job: { state: string; reason?: string | null; message?: string | null }): string {
  if (job.state !== 'Failed') {
    return '';
  }
  return job.message || job.reason || 'no reason recorded';
}

/**
 * What an empty log pane waits for: ``queued: <why>``, ``starting 2 ranks… no output yet``, or that the
 * job ended without writing to this log. ``rank`` undefined: all ranks.
 */
export function waitingText(
  job: { state: string; world_size?: number; message?: string | null },
  rank: number | undefined
): string {
  const ranks = Math.max(1, job.world_size || 1);
  const whose = rank === undefined || ranks === 1 ? '' : `rank ${rank}: `;
  if (job.state === 'Queued') {
    return `Queued${job.message ? `: ${job.message}` : ''}. The log starts when the job runs.`;
  }
  if (job.state === 'Running') {
    return `${whose}starting ${ranks} rank${ranks === 1 ? '' : 's'}… no output yet`;
  }
  if (isFinished(job.state)) {
    return `${whose}no output: the job ended (${job.state}) without writing to this log`;
  }
  return 'waiting for the log…';
}

/** Total GPUs of a job: per worker times workers. */
export function gpuLabel(job: { gpus: number; workers: number }): string {
  const total = (job.gpus || 0) * (job.workers || 1);
  return total ? `${total} GPU${total === 1 ? '' : 's'}` : 'CPU';
}

/** A parameter as the dialog shows it: strings bare, everything else as JSON. */
export function paramToText(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/**
 * The typed value of what the user typed, keeping the type of the notebook's default: a string
 * parameter stays a string ("1e-3" stays text); a number, bool or list is read as JSON, and text
 * that is not valid JSON for it is an error naming the parameter.
 */
export function textToParam(name: string, text: string, original: unknown, kind?: string | null): unknown {
  if (typeof original === 'string') {
    return text;
  }
  const value = parseParam(name, text, original);
  // JSON cannot tell 5 from 5.0: the server's type of the default says whether a fraction fits.
  if (kind === 'int' && typeof value === 'number' && !Number.isInteger(value)) {
    throw new Error(`parameter ${name}: expected a whole number (int), got ${JSON.stringify(text)}`);
  }
  return value;
}

function parseParam(name: string, text: string, original: unknown): unknown {
  const trimmed = text.trim();
  if (original === null && trimmed === '') {
    return null;
  }
  const pythonish = trimmed === 'True' ? 'true' : trimmed === 'False' ? 'false' : trimmed === 'None' ? 'null' : trimmed;
  let value: unknown;
  try {
    value = JSON.parse(pythonish);
  } catch {
    if (original === null || original === undefined) {
      return text; // no type to keep: take the text as it is
    }
    throw new Error(`parameter ${name}: ${JSON.stringify(text)} is not a valid ${typeName(original)}`);
  }
  if (original !== null && original !== undefined && typeName(value) !== typeName(original)) {
    const bothNumbers = typeof value === 'number' && typeof original === 'number';
    if (!bothNumbers) {
      throw new Error(`parameter ${name}: expected a ${typeName(original)}, got ${JSON.stringify(text)}`);
    }
  }
  return value;
}

function typeName(v: unknown): string {
  if (Array.isArray(v)) {
    return 'list';
  }
  if (v === null) {
    return 'null';
  }
  if (typeof v === 'object') {
    return 'mapping';
  }
  return typeof v === 'boolean' ? 'boolean' : typeof v === 'number' ? 'number' : 'text';
}

/** Status bar text for the GPUs: mean utilization and memory summed over GPUs. */
export function gpuSummary(
  gpus: { utilization_pct: number | null; memory_used_mib: number; memory_total_mib: number }[]
): string {
  if (!gpus.length) {
    return 'No GPU';
  }
  const utils = gpus.map(g => g.utilization_pct).filter((u): u is number => u !== null && u !== undefined);
  const util = utils.length ? `${Math.round(utils.reduce((a, b) => a + b, 0) / utils.length)}%` : 'n/a';
  const used = gpus.reduce((a, g) => a + g.memory_used_mib, 0) / 1024;
  const total = gpus.reduce((a, g) => a + g.memory_total_mib, 0) / 1024;
  const count = gpus.length > 1 ? `${gpus.length} GPUs ` : 'GPU ';
  return `${count}${util} · ${used.toFixed(1)}/${total.toFixed(0)} GiB`;
}

/**
 * The "all ranks" log: whole lines of every rank, each tagged "[3] ", in the order they arrive.
 *
 * Ranks write their own files, so a chunk may end mid-line; a rank's unfinished line is held back
 * until its newline comes (or ``flush`` at the end), so it is never spliced into another rank's line.
 */
export class RankMerger {
  private readonly pending = new Map<number, string>();

  /** The complete lines ``text`` finishes, tagged with ``rank`` (with their newlines). */
  feed(rank: number, text: string): string {
    const all = (this.pending.get(rank) ?? '') + text;
    const end = all.lastIndexOf('\n') + 1;
    this.pending.set(rank, all.slice(end));
    return end ? tagLines(rank, all.slice(0, end)) : '';
  }

  /** Unfinished lines of every rank, as lines (the log has ended). */
  flush(): string {
    let out = '';
    for (const [rank, rest] of [...this.pending].sort(([a], [b]) => a - b)) {
      if (rest) {
        out += tagLines(rank, rest + '\n');
      }
    }
    this.pending.clear();
    return out;
  }

  clear(): void {
    this.pending.clear();
  }
}

function tagLines(rank: number, lines: string): string {
  const tag = `[${rank}] `;
  return tag + lines.slice(0, -1).replace(/\n/g, `\n${tag}`) + '\n';
}
