import { CompareView, ICompare } from '../src/compareview';

const RESULT: ICompare = {
  jobs: [
    {
      name: 'a',
      state: 'Succeeded',
      image: 'img:1',
      codeHash: 'abc',
      gitCommit: null,
      notebook: 'nb.ipynb',
      experiment: null,
      duration: 12.4,
      parameters: { lr: 0.1, epochs: 3 },
      metrics: {
        loss: [
          [1, 1.0],
          [2, 0.5]
        ]
      }
    },
    {
      name: 'b',
      state: 'Failed',
      image: 'img:1',
      codeHash: 'def',
      gitCommit: null,
      notebook: 'nb.ipynb',
      experiment: null,
      duration: null,
      parameters: { lr: 0.3, epochs: 3 },
      metrics: {
        loss: [
          [1, 2.0],
          [2, 1.0],
          [3, 0.8]
        ]
      }
    }
  ],
  parameters: ['lr'],
  packages: { numpy: ['1.26.0', '2.0.1'] },
  metrics: ['loss'],
  same: ['image', 'gitCommit', 'param epochs']
};

describe('CompareView', () => {
  it('shows what differs side by side, marked, and overlays each metric', () => {
    const view = new CompareView();
    view.update(RESULT);
    const row = (key: string): string[] =>
      [...view.node.querySelectorAll(`tr[data-row="${key}"] > *`)].map(c => c.textContent ?? '');
    expect(row('param:lr')).toEqual(['param lr', '0.1', '0.3']);
    expect(row('package:numpy')).toEqual(['package numpy', '1.26.0', '2.0.1']);
    expect(row('codeHash')).toEqual(['code hash', 'abc', 'def']);
    expect(row('duration')).toEqual(['duration', '12s', '-']);
    expect(view.node.querySelector('tr[data-row="codeHash"]')!.classList.contains('dlw-mod-differs')).toBe(true);
    expect(view.node.querySelector('tr[data-row="image"]')!.classList.contains('dlw-mod-differs')).toBe(false);
    expect(view.node.querySelector('.dlw-Compare-same')!.textContent).toBe(
      'Same for all: image, git commit, param epochs'
    );
    const lines = view.node.querySelectorAll('.dlw-Compare-chart[data-metric="loss"] polyline');
    expect([...lines].map(l => l.getAttribute('data-job'))).toEqual(['a', 'b']);
    expect(lines[1].getAttribute('points')!.split(' ').length).toBe(3);
  });
});
