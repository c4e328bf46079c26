/**
 * One experiment (a sweep) as the panel shows it: a results table sortable by any column, a chart
 * overlaying the goal metric of every trial over steps, and a parameter-vs-metric scatter.
 *
 * Pure DOM over the REST API's experiment summary (``GET dlw/api/experiments/NAME``); the actions
 * (open a trial, promote the best, TensorBoard) are the caller's callbacks.
 *
 * A poll redraws only what changed: the table scrolls in its own box and only the rows in view exist
 * (windowed, as the Jobs panel's list), kept per trial and rewritten when their text changed; overlay
 * lines and scatter dots are kept per trial too and rewritten when their points or the chart's scale
 * changed. So 500 trials cost a poll of what changed, not a rebuild (``benchmarks/bench_panel_trials.py``).
 */

import { visibleRange } from './virtual.js';

/** Height of a results row (CSS ``.dlw-Experiment-table tr``): the table window's unit. */
export const TRIAL_ROW_HEIGHT = 20;

export interface ITrial {
  index: number;
  name: string;
  parameters: Record<string, unknown>;
  state: string;
  reason?: string | null;
  message?: string | null;
  best?: number | null;
  last?: number | null;
  step?: number | null;
  duration?: number | null;
  curve?: [number, number][];
}

export interface IExperiment {
  name: string;
  state: string;
  metric: string | null;
  goal: 'max' | 'min';
  best: string | null;
  parallel: number;
  trials: ITrial[];
}

export interface IExperimentHandlers {
  onOpen?: (trial: ITrial) => void;
  onPromote?: (experiment: IExperiment) => void;
  onTensorBoard?: (trials: ITrial[]) => void;
}

const SVG = 'http://www.w3.org/2000/svg';

/** The value a column sorts by: ``param:lr`` for a parameter, else a trial field. */
export function columnValue(trial: ITrial, column: string): unknown {
  if (column.startsWith('param:')) {
    return trial.parameters[column.slice(6)];
  }
  return (trial as unknown as Record<string, unknown>)[column];
}

/** Trials sorted by a column; missing values last whichever the direction; ties keep trial order. */
export function sortTrials(trials: readonly ITrial[], column: string, descending = false): ITrial[] {
  const sign = descending ? -1 : 1;
  return [...trials].sort((a, b) => {
    const x = columnValue(a, column);
    const y = columnValue(b, column);
    const xm = x === null || x === undefined;
    const ym = y === null || y === undefined;
    if (xm || ym) {
      return xm === ym ? a.index - b.index : xm ? 1 : -1;
    }
    let c: number;
    if (typeof x === 'number' && typeof y === 'number') {
      c = x - y;
    } else {
      c = String(x).localeCompare(String(y), undefined, { numeric: true });
    }
    return c !== 0 ? sign * c : a.index - b.index;
  });
}

function text(v: unknown): string {
  if (v === null || v === undefined) {
    return '-';
  }
  if (typeof v === 'number') {
    return Number.isInteger(v) ? String(v) : v.toPrecision(4).replace(/\.?0+$/, '');
  }
  return typeof v === 'string' ? v : JSON.stringify(v);
}

function scale(lo: number, hi: number, from: number, to: number): (v: number) => number {
  const span = hi - lo || 1;
  return v => from + ((v - lo) / span) * (to - from);
}

export class ExperimentView {
  readonly node: HTMLElement;
  private experiment: IExperiment | null = null;
  private sortColumn = 'name';
  private descending = false;
  private scatterParam = '';
  private readonly heading: HTMLElement;
  private readonly table: HTMLTableElement;
  private readonly tableBox: HTMLElement;
  private readonly padTop: HTMLTableRowElement;
  private readonly padBottom: HTMLTableRowElement;
  private frame = 0;
  private readonly overlay: SVGSVGElement;
  private readonly scatter: SVGSVGElement;
  private readonly paramPicker: HTMLSelectElement;
  private readonly promote: HTMLButtonElement;
  private readonly openBest: HTMLButtonElement;
  private readonly tensorboard: HTMLButtonElement;
  private readonly rows = new Map<string, { tr: HTMLTableRowElement; key: string }>();
  private readonly lines = new Map<string, { line: SVGPolylineElement; key: string }>();
  private readonly dots = new Map<string, { dot: SVGCircleElement; key: string }>();
  private headKey = '';
  private scatterKey = '';

  constructor(private readonly handlers: IExperimentHandlers = {}) {
    this.node = document.createElement('div');
    this.node.className = 'dlw-Experiment';
    this.heading = document.createElement('div');
    this.heading.className = 'dlw-Experiment-heading';
    this.promote = this.button('Promote best', 'Rerun the best trial as an ordinary job', () => {
      if (this.experiment) {
        this.handlers.onPromote?.(this.experiment);
      }
    });
    this.tensorboard = this.button('TensorBoard', "Open the trials' TensorBoard", () => {
      if (this.experiment) {
        this.handlers.onTensorBoard?.(this.experiment.trials.filter(t => t.state !== 'Waiting'));
      }
    });
    const actions = document.createElement('div');
    actions.className = 'dlw-Experiment-actions';
    this.openBest = this.button('Best trial', "Open the best trial's executed notebook", () => {
      const best = this.experiment?.trials.find(t => t.name === this.experiment?.best);
      if (best) {
        this.handlers.onOpen?.(best);
      }
    });
    actions.append(this.openBest, this.promote, this.tensorboard);
    this.table = document.createElement('table');
    this.table.className = 'dlw-Experiment-table';
    this.tableBox = document.createElement('div');
    this.tableBox.className = 'dlw-Experiment-tableBox';
    this.tableBox.append(this.table);
    this.tableBox.addEventListener(
      'scroll',
      () => {
        if (!this.frame) {
          this.frame = requestAnimationFrame(() => {
            this.frame = 0;
            this.drawTable();
          });
        }
      },
      { passive: true }
    );
    const pad = (): HTMLTableRowElement => {
      const tr = document.createElement('tr');
      tr.className = 'dlw-Experiment-pad';
      tr.append(document.createElement('td'));
      return tr;
    };
    this.padTop = pad();
    this.padBottom = pad();
    this.table.addEventListener('dblclick', ev => {
      const name = (ev.target as HTMLElement).closest<HTMLElement>('tr[data-trial]')?.dataset.trial;
      const t = this.experiment?.trials.find(x => x.name === name);
      if (t) {
        this.handlers.onOpen?.(t);
      }
    });
    this.overlay = document.createElementNS(SVG, 'svg');
    this.overlay.setAttribute('class', 'dlw-Experiment-overlay');
    this.overlay.setAttribute('viewBox', '0 0 300 120');
    this.paramPicker = document.createElement('select');
    this.paramPicker.className = 'dlw-Experiment-scatterParam';
    this.paramPicker.addEventListener('change', () => {
      this.scatterParam = this.paramPicker.value;
      this.drawScatter();
    });
    this.scatter = document.createElementNS(SVG, 'svg');
    this.scatter.setAttribute('class', 'dlw-Experiment-scatter');
    this.scatter.setAttribute('viewBox', '0 0 300 120');
    this.node.append(this.heading, actions, this.tableBox, this.overlay, this.paramPicker, this.scatter);
  }

  private button(label: string, title: string, onClick: () => void): HTMLButtonElement {
    const b = document.createElement('button');
    b.className = 'jp-Button jp-mod-styled';
    b.textContent = label;
    b.title = title;
    b.addEventListener('click', onClick);
    return b;
  }

  get parameterNames(): string[] {
    const names: string[] = [];
    for (const t of this.experiment?.trials ?? []) {
      for (const k of Object.keys(t.parameters)) {
        if (!names.includes(k)) {
          names.push(k);
        }
      }
    }
    return names;
  }

  update(experiment: IExperiment): void {
    this.experiment = experiment;
    const metric = experiment.metric ? `, goal ${experiment.goal} ${experiment.metric}` : '';
    this.heading.textContent = `${experiment.name}: ${experiment.state}, ${experiment.trials.length} trials, parallel ${experiment.parallel}${metric}`;
    this.promote.disabled = this.openBest.disabled = !experiment.best;
    const params = this.parameterNames;
    if (!params.includes(this.scatterParam)) {
      this.scatterParam = params[0] ?? '';
    }
    this.paramPicker.replaceChildren(
      ...params.map(p => {
        const o = document.createElement('option');
        o.value = o.textContent = p;
        o.selected = p === this.scatterParam;
        return o;
      })
    );
    this.drawTable();
    this.drawOverlay();
    this.drawScatter();
  }

  /** Sort by a column (``name``, ``state``, ``best``, ``last``, ``duration`` or ``param:NAME``); again: reverse. */
  sortBy(column: string): void {
    this.descending = column === this.sortColumn ? !this.descending : false;
    this.sortColumn = column;
    this.drawTable();
  }

  private drawTable(): void {
    const exp = this.experiment;
    if (!exp) {
      return;
    }
    const columns = ['name', ...this.parameterNames.map(p => `param:${p}`), 'state'];
    if (exp.metric) {
      columns.push('best', 'last');
    }
    columns.push('duration');
    const headKey = `${columns.join('|')}|${this.sortColumn}|${this.descending}`;
    let head = this.table.rows[0];
    if (headKey !== this.headKey || !head) {
      if (columns.join('|') !== this.headKey.split('|').slice(0, -2).join('|')) {
        this.rows.clear(); // other columns: every row anew
      }
      this.headKey = headKey;
      head = document.createElement('tr');
      for (const c of columns) {
        const th = document.createElement('th');
        th.dataset.column = c;
        const label = c.startsWith('param:') ? c.slice(6) : c;
        const arrow = c === this.sortColumn ? (this.descending ? ' ▼' : ' ▲') : '';
        th.textContent = label + arrow;
        th.addEventListener('click', () => this.sortBy(c));
        head.append(th);
      }
    }
    const sorted = sortTrials(exp.trials, this.sortColumn, this.descending);
    const { start, end } = visibleRange(
      this.tableBox.scrollTop,
      this.tableBox.clientHeight || 600,
      TRIAL_ROW_HEIGHT,
      sorted.length
    );
    const seen = new Set<string>();
    const ordered = sorted.slice(start, end).map(t => {
      seen.add(t.name);
      const texts = columns.map(c => {
        const v = columnValue(t, c);
        return c === 'duration' && typeof v === 'number' ? `${Math.round(v)}s` : text(v);
      });
      const best = t.name === exp.best;
      const key = `${texts.join('\u0000')}|${best}|${t.message ?? ''}`;
      let row = this.rows.get(t.name);
      if (!row) {
        const tr = document.createElement('tr');
        tr.dataset.trial = t.name;
        tr.append(...columns.map(() => document.createElement('td')));
        row = { tr, key: '' };
        this.rows.set(t.name, row);
      }
      if (row.key !== key) {
        row.key = key;
        row.tr.classList.toggle('dlw-mod-best', best);
        row.tr.title = t.message ?? '';
        texts.forEach((v, i) => {
          const td = row!.tr.cells[i];
          if (td.textContent !== v) {
            td.textContent = v;
          }
        });
      }
      return row.tr;
    });
    for (const name of [...this.rows.keys()]) {
      if (!seen.has(name)) {
        this.rows.delete(name); // out of view (or gone): made again when scrolled to
      }
    }
    // rows above and below the window stand in as two padding rows of their height
    this.padTop.hidden = start === 0;
    this.padTop.style.height = `${start * TRIAL_ROW_HEIGHT}px`;
    this.padBottom.hidden = end === sorted.length;
    this.padBottom.style.height = `${(sorted.length - end) * TRIAL_ROW_HEIGHT}px`;
    const want = [head, this.padTop, ...ordered, this.padBottom];
    const now = [...this.table.rows];
    if (now.length !== want.length || want.some((tr, i) => now[i] !== tr)) {
      this.table.replaceChildren(...want); // the window or the order changed: rows move, none is rebuilt
    }
  }

  private drawOverlay(): void {
    const trials = (this.experiment?.trials ?? []).filter(t => t.curve && t.curve.length);
    let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
    for (const t of trials) {
      for (const [px, py] of t.curve ?? []) {
        x0 = Math.min(x0, px);
        x1 = Math.max(x1, px);
        y0 = Math.min(y0, py);
        y1 = Math.max(y1, py);
      }
    }
    const keep = new Set(trials.map(t => t.name));
    for (const [name, l] of [...this.lines]) {
      if (!keep.has(name)) {
        l.line.remove();
        this.lines.delete(name);
      }
    }
    if (!trials.length) {
      return;
    }
    const x = scale(x0, x1, 5, 295);
    const y = scale(y0, y1, 115, 5);
    const frame = `${x0},${x1},${y0},${y1}`;
    for (const t of trials) {
      const curve = t.curve ?? [];
      const last = curve[curve.length - 1];
      const best = t.name === this.experiment?.best;
      // a curve only grows: its length and last point tell whether it changed
      const key = `${frame}|${curve.length}|${last[0]},${last[1]}|${best}`;
      let l = this.lines.get(t.name);
      if (!l) {
        const line = document.createElementNS(SVG, 'polyline');
        line.setAttribute('data-trial', t.name);
        this.overlay.append(line);
        l = { line, key: '' };
        this.lines.set(t.name, l);
      }
      if (l.key !== key) {
        l.key = key;
        l.line.setAttribute('points', curve.map(p => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' '));
        l.line.setAttribute('class', best ? 'dlw-mod-best' : '');
      }
    }
  }

  private drawScatter(): void {
    const p = this.scatterParam;
    const metric = this.experiment?.metric ?? '';
    const trials = (this.experiment?.trials ?? []).filter(
      t => typeof t.parameters[p] === 'number' && typeof t.last === 'number'
    );
    if (p !== this.scatterKey) {
      this.scatterKey = p; // another parameter: every dot anew
      this.dots.clear();
      this.scatter.replaceChildren();
    }
    const keep = new Set(trials.map(t => t.name));
    for (const [name, d] of [...this.dots]) {
      if (!keep.has(name)) {
        d.dot.remove();
        this.dots.delete(name);
      }
    }
    if (!trials.length) {
      return;
    }
    const xs = trials.map(t => t.parameters[p] as number);
    const ys = trials.map(t => t.last as number);
    const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    const x = scale(x0, x1, 5, 295);
    const y = scale(y0, y1, 115, 5);
    trials.forEach((t, i) => {
      const key = `${x0},${x1},${y0},${y1}|${xs[i]}|${ys[i]}`;
      let d = this.dots.get(t.name);
      if (!d) {
        const dot = document.createElementNS(SVG, 'circle');
        dot.setAttribute('r', '3');
        dot.setAttribute('data-trial', t.name);
        dot.append(document.createElementNS(SVG, 'title'));
        this.scatter.append(dot);
        d = { dot, key: '' };
        this.dots.set(t.name, d);
      }
      if (d.key !== key) {
        d.key = key;
        d.dot.setAttribute('cx', x(xs[i]).toFixed(1));
        d.dot.setAttribute('cy', y(ys[i]).toFixed(1));
        d.dot.firstChild!.textContent = `${t.name}: ${p}=${text(xs[i])}, ${metric} ${text(ys[i])}`;
      }
    });
  }
}
