import { downsample, formatValue, MetricCharts, MetricPoint } from '../src/chart';

describe('downsample', () => {
  it('keeps a short series as it is', () => {
    const pts: MetricPoint[] = [
      [0, 1, 0],
      [1, 0.5, 1],
      [2, 0.25, 2]
    ];
    expect(downsample(pts, 100)).toEqual([
      [0, 1],
      [1, 0.5],
      [2, 0.25]
    ]);
  });

  it('reduces 20,000 points to a few per pixel, keeping the ends and the extremes', () => {
    const pts: MetricPoint[] = [];
    for (let i = 0; i < 20000; i++) {
      pts.push([i, Math.sin(i / 100), i]);
    }
    pts[12345][1] = 50; // a spike must survive
    const out = downsample(pts, 200);
    expect(out.length).toBeLessThanOrEqual(800);
    expect(out[0]).toEqual([0, 0]);
    expect(out[out.length - 1][0]).toBe(19999);
    expect(out).toContainEqual([12345, 50]);
    expect(Math.min(...out.map(p => p[1]))).toBeCloseTo(-1, 3);
    const steps = out.map(p => p[0]);
    expect([...steps].sort((a, b) => a - b)).toEqual(steps);
  });

  it('drops non-finite values', () => {
    expect(
      downsample(
        [
          [0, NaN],
          [1, 2]
        ],
        10
      )
    ).toEqual([[1, 2]]);
  });
});

describe('MetricCharts', () => {
  it('draws one chart per metric with its last value, and follows new points', () => {
    const charts = new MetricCharts();
    charts.update({
      loss: [
        [0, 2.3, 0],
        [1, 1.1, 1]
      ],
      accuracy: [[0, 0.5, 0]]
    });
    const labels = [...charts.node.querySelectorAll('.dlw-Chart-label')].map(e => e.textContent);
    expect(labels).toEqual(['accuracy: 0.5 (step 0)', 'loss: 1.1 (step 1)']);
    const line = charts.node.querySelector('[data-metric="loss"] polyline')!;
    expect(line.getAttribute('points')!.split(' ')).toHaveLength(2);

    charts.update({
      loss: [
        [0, 2.3, 0],
        [1, 1.1, 1],
        [2, 0.4, 2]
      ]
    });
    expect(charts.count).toBe(1);
    expect(charts.node.querySelector('.dlw-Chart-label')!.textContent).toBe('loss: 0.4 (step 2)');
    expect(line.getAttribute('points')!.split(' ')).toHaveLength(3);
  });

  it('is hidden when the job logged no metric', () => {
    const charts = new MetricCharts();
    charts.update({});
    expect(charts.node.hidden).toBe(true);
  });

  it('formats values compactly', () => {
    expect(formatValue(0.123456)).toBe('0.1235');
    expect(formatValue(1234567)).toBe('1.23e+6');
  });
});
