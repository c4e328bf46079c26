/**
 * Jobs side by side (``GET dlw/api/compare?jobs=A,B``, the function ``dlw compare`` prints): a table of
 * state, image, code hash, git commit, the parameters and packages that differ (marked), and one chart
 * per metric overlaying every job's curve. Pure DOM, so it is tested and measured outside JupyterLab.
 */

import { downsample, formatValue, type MetricPoint } from './chart.js';

export interface ICompareJob {
  name: string;
  state: string;
  image: string | null;
  codeHash: string | null;
  gitCommit: string | null;
  notebook: string | null;
  experiment: string | null;
  duration: number | null;
  parameters: Record<string, unknown>;
  metrics: Record<string, MetricPoint[]>;
}

export interface ICompare {
  jobs: ICompareJob[];
  /** Parameters whose values differ. */
  parameters: string[];
  /** Packages whose versions differ: ``{name: [version per job, null where unknown]}``. */
  packages: Record<string, (string | null)[]>;
  metrics: string[];
  /** What is the same for every job ("image", "codeHash", "param lr", "packages"...). */
  same: string[];
}

const SVG = 'http://www.w3.org/2000/svg';
/** One color per job, in job order (as in the legend). */
export const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#be185d', '#4d7c0f'];

function text(v: unknown): string {
  if (v === null || v === undefined) {
    return '-';
  }
  if (typeof v === 'number') {
    return Number.isInteger(v) ? String(v) : formatValue(v);
  }
  return typeof v === 'string' ? v : JSON.stringify(v);
}

const FIELDS: [keyof ICompareJob, string][] = [
  ['state', 'state'],
  ['image', 'image'],
  ['codeHash', 'code hash'],
  ['gitCommit', 'git commit'],
  ['notebook', 'notebook'],
  ['duration', 'duration']
];

export class CompareView {
  readonly node: HTMLElement;

  constructor(
    private readonly width = 320,
    private readonly height = 120
  ) {
    this.node = document.createElement('div');
    this.node.className = 'dlw-Compare';
  }

  update(result: ICompare): void {
    const jobs = result.jobs;
    const table = document.createElement('table');
    table.className = 'dlw-Compare-table';
    const head = document.createElement('tr');
    head.append(this.cell('th', ''), ...jobs.map(j => this.cell('th', j.name)));
    table.append(head);
    const row = (key: string, label: string, values: unknown[], differs: boolean): void => {
      const tr = document.createElement('tr');
      tr.dataset.row = key;
      tr.classList.toggle('dlw-mod-differs', differs);
      const cells = values.map(v => {
        const full = text(v);
        // a sha256 tells itself apart in its first 12 digits; the tooltip has it all
        const td = this.cell('td', key === 'codeHash' ? full.replace(/^(sha256:[0-9a-f]{12})[0-9a-f]+$/, '$1…') : full);
        td.title = full;
        return td;
      });
      tr.append(this.cell('th', label), ...cells);
      table.append(tr);
    };
    for (const [key, label] of FIELDS) {
      const values = jobs.map(j =>
        key === 'duration' && typeof j.duration === 'number' ? `${Math.round(j.duration)}s` : j[key]
      );
      const differs = ['image', 'codeHash', 'gitCommit'].includes(key) && !result.same.includes(key);
      row(key, label, values, differs);
    }
    for (const p of result.parameters) {
      row(
        `param:${p}`,
        `param ${p}`,
        jobs.map(j => j.parameters[p]),
        true
      );
    }
    for (const [pkg, versions] of Object.entries(result.packages)) {
      row(`package:${pkg}`, `package ${pkg}`, versions, true);
    }
    const same = document.createElement('div');
    same.className = 'dlw-Compare-same';
    const names = result.same.map(s => (s === 'codeHash' ? 'code hash' : s === 'gitCommit' ? 'git commit' : s));
    same.textContent = names.length ? `Same for all: ${names.join(', ')}` : 'Nothing is the same for all.';
    const legend = document.createElement('div');
    legend.className = 'dlw-Compare-legend';
    jobs.forEach((j, i) => {
      const s = document.createElement('span');
      s.style.color = COLORS[i % COLORS.length];
      s.textContent = `■ ${j.name}`;
      legend.append(s);
    });
    const charts = result.metrics.map(m => this.chart(m, jobs));
    this.node.replaceChildren(table, same, ...(charts.length ? [legend, ...charts] : []));
  }

  private cell(tag: 'th' | 'td', content: string): HTMLElement {
    const el = document.createElement(tag);
    el.textContent = content;
    return el;
  }

  /** One metric, every job's curve on the same axes. */
  private chart(metric: string, jobs: ICompareJob[]): HTMLElement {
    const box = document.createElement('div');
    box.className = 'dlw-Compare-chart';
    box.dataset.metric = metric;
    const label = document.createElement('div');
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', `0 0 ${this.width} ${this.height}`);
    svg.setAttribute('width', String(this.width));
    svg.setAttribute('height', String(this.height));
    const series = jobs.map(j => downsample(j.metrics[metric] ?? [], this.width));
    const all = series.flat();
    const lastOf = series.map(s => (s.length ? formatValue(s[s.length - 1][1]) : '-'));
    label.textContent = `${metric}: ${lastOf.join(' · ')}`;
    box.append(label, svg);
    if (!all.length) {
      return box;
    }
    const xs = all.map(p => p[0]);
    const ys = all.map(p => p[1]);
    const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    const px = (x: number): number => 2 + ((x - x0) / (x1 - x0 || 1)) * (this.width - 4);
    const py = (y: number): number => this.height - 2 - ((y - y0) / (y1 - y0 || 1)) * (this.height - 4);
    series.forEach((pts, i) => {
      if (!pts.length) {
        return;
      }
      const line = document.createElementNS(SVG, 'polyline');
      line.setAttribute('points', pts.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' '));
      line.setAttribute('stroke', COLORS[i % COLORS.length]);
      line.setAttribute('data-job', jobs[i].name);
      svg.append(line);
    });
    return box;
  }
}
