/**
 * Small dependency-free SVG line charts of a job's metrics (``log_metrics``), one per metric.
 *
 * Cheap for long runs: points are reduced to the chart's pixel width (first, min, max and last of
 * each pixel column) before drawing, so 10,000+ points cost a few hundred path segments.
 */

/** A metric series as the API gives it: ``[step, value, time]``. */
export type MetricPoint = [number, number, number?];

const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * Reduce ``points`` (sorted by step) to at most ~4 per pixel column of ``width``: the first, the
 * lowest, the highest and the last point of each column, in step order. Non-finite values are dropped.
 */
export function downsample(points: readonly MetricPoint[], width: number): [number, number][] {
  const finite = points.filter(p => Number.isFinite(p[0]) && Number.isFinite(p[1]));
  const columns = Math.max(1, Math.floor(width));
  if (finite.length <= columns * 2) {
    return finite.map(p => [p[0], p[1]]);
  }
  const x0 = finite[0][0];
  const span = finite[finite.length - 1][0] - x0 || 1;
  const out: [number, number][] = [];
  let bucket = -1;
  let group: MetricPoint[] = [];
  const flush = (): void => {
    if (!group.length) {
      return;
    }
    let lo = group[0];
    let hi = group[0];
    for (const p of group) {
      if (p[1] < lo[1]) {
        lo = p;
      }
      if (p[1] > hi[1]) {
        hi = p;
      }
    }
    const keep = new Set([group[0], lo, hi, group[group.length - 1]]);
    for (const p of group) {
      if (keep.has(p)) {
        out.push([p[0], p[1]]);
      }
    }
    group = [];
  };
  for (const p of finite) {
    const b = Math.min(columns - 1, Math.floor(((p[0] - x0) / span) * columns));
    if (b !== bucket) {
      flush();
      bucket = b;
    }
    group.push(p);
  }
  flush();
  return out;
}

/** A compact number for the chart's labels: 0.1235, 12.3, 1.23e+6. */
export function formatValue(v: number): string {
  if (!Number.isFinite(v)) {
    return String(v);
  }
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) {
    return v.toExponential(2);
  }
  return String(Number(v.toPrecision(4)));
}

/** One metric's chart: title with the last value, an SVG polyline over the steps. */
export class LineChart {
  readonly node: HTMLElement;
  private readonly label: HTMLElement;
  private readonly svg: SVGSVGElement;
  private readonly line: SVGPolylineElement;
  private readonly range: HTMLElement;

  constructor(
    readonly metric: string,
    private readonly width = 240,
    private readonly height = 60
  ) {
    this.node = document.createElement('div');
    this.node.className = 'dlw-Chart';
    this.node.dataset.metric = metric;
    this.label = document.createElement('div');
    this.label.className = 'dlw-Chart-label';
    this.svg = document.createElementNS(SVG_NS, 'svg') as SVGSVGElement;
    this.svg.setAttribute('class', 'dlw-Chart-svg');
    this.svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
    this.svg.setAttribute('width', String(width));
    this.svg.setAttribute('height', String(height));
    this.svg.setAttribute('preserveAspectRatio', 'none');
    this.line = document.createElementNS(SVG_NS, 'polyline') as SVGPolylineElement;
    this.line.setAttribute('class', 'dlw-Chart-line');
    this.line.setAttribute('fill', 'none');
    this.line.setAttribute('vector-effect', 'non-scaling-stroke');
    this.svg.appendChild(this.line);
    this.range = document.createElement('div');
    this.range.className = 'dlw-Chart-range';
    this.node.append(this.label, this.svg, this.range);
  }

  /** Redraw from the whole series (already cheap: it is downsampled first). */
  update(points: readonly MetricPoint[]): void {
    const pts = downsample(points, this.width);
    if (!pts.length) {
      this.label.textContent = `${this.metric}: –`;
      this.line.setAttribute('points', '');
      this.range.textContent = '';
      return;
    }
    const last = pts[pts.length - 1];
    this.label.textContent = `${this.metric}: ${formatValue(last[1])} (step ${last[0]})`;
    let lo = Infinity;
    let hi = -Infinity;
    for (const p of pts) {
      lo = Math.min(lo, p[1]);
      hi = Math.max(hi, p[1]);
    }
    const x0 = pts[0][0];
    const xs = last[0] - x0 || 1;
    const ys = hi - lo || 1;
    const pad = 2;
    const h = this.height - 2 * pad;
    this.line.setAttribute(
      'points',
      pts
        .map(([x, y]) => {
          const px = ((x - x0) / xs) * this.width;
          const py = pad + h - ((y - lo) / ys) * h;
          return `${px.toFixed(1)},${py.toFixed(1)}`;
        })
        .join(' ')
    );
    this.range.textContent = `min ${formatValue(lo)} · max ${formatValue(hi)} · steps ${x0}–${last[0]}`;
  }
}

/** Charts of all a job's metrics, kept in one container; metrics appear as they are first logged. */
export class MetricCharts {
  readonly node: HTMLElement;
  private readonly charts = new Map<string, LineChart>();

  constructor() {
    this.node = document.createElement('div');
    this.node.className = 'dlw-Charts';
  }

  update(metrics: Record<string, MetricPoint[]> | null | undefined): void {
    const names = Object.keys(metrics ?? {}).sort();
    for (const [name, chart] of this.charts) {
      if (!names.includes(name)) {
        chart.node.remove();
        this.charts.delete(name);
      }
    }
    for (const name of names) {
      let chart = this.charts.get(name);
      if (!chart) {
        chart = new LineChart(name);
        this.charts.set(name, chart);
        this.node.appendChild(chart.node);
      }
      chart.update(metrics![name]);
    }
    this.node.hidden = names.length === 0;
  }

  get count(): number {
    return this.charts.size;
  }
}
