import { ExperimentView, IExperiment, ITrial, sortTrials, TRIAL_ROW_HEIGHT } from '../src/experimentview';

function trial(index: number, lr: number, last: number | null, state = 'Succeeded'): ITrial {
  return {
    index,
    name: `exp-${String(index).padStart(3, '0')}`,
    parameters: { lr, opt: index % 2 ? 'adam' : 'sgd' },
    state,
    best: last,
    last,
    duration: 10 + index,
    curve:
      last === null
        ? []
        : [
            [1, last / 2],
            [2, last]
          ]
  };
}

function experiment(trials: ITrial[], best: string | null): IExperiment {
  return { name: 'exp', state: 'Running', metric: 'accuracy', goal: 'max', best, parallel: 2, trials };
}

describe('sortTrials', () => {
  const trials = [trial(0, 0.1, 0.5), trial(1, 0.01, null, 'Waiting'), trial(2, 0.3, 0.9)];

  it('sorts by a parameter or the metric, missing values last either way', () => {
    expect(sortTrials(trials, 'param:lr').map(t => t.index)).toEqual([1, 0, 2]);
    expect(sortTrials(trials, 'last').map(t => t.index)).toEqual([0, 2, 1]);
    expect(sortTrials(trials, 'last', true).map(t => t.index)).toEqual([2, 0, 1]);
    expect(sortTrials(trials, 'state').map(t => t.index)).toEqual([0, 2, 1]);
  });
});

describe('ExperimentView', () => {
  it('shows every trial, sorts when a header is clicked and marks the best', () => {
    const view = new ExperimentView();
    view.update(experiment([trial(0, 0.1, 0.5), trial(1, 0.01, 0.2), trial(2, 0.3, 0.9)], 'exp-002'));
    const names = () => [...view.node.querySelectorAll('tr[data-trial]')].map(r => (r as HTMLElement).dataset.trial);
    expect(names()).toEqual(['exp-000', 'exp-001', 'exp-002']);
    const header = view.node.querySelector('th[data-column="last"]') as HTMLElement;
    header.click();
    expect(names()).toEqual(['exp-001', 'exp-000', 'exp-002']);
    (view.node.querySelector('th[data-column="last"]') as HTMLElement).click();
    expect(names()).toEqual(['exp-002', 'exp-000', 'exp-001']);
    expect(view.node.querySelector('tr.dlw-mod-best')?.getAttribute('data-trial')).toBe('exp-002');
    expect([...view.node.querySelectorAll('th')].map(th => th.textContent?.replace(/ [▲▼]/, ''))).toEqual([
      'name',
      'lr',
      'opt',
      'state',
      'best',
      'last',
      'duration'
    ]);
  });

  it('overlays one line per trial with a curve and scatters the chosen parameter against the metric', () => {
    const view = new ExperimentView();
    view.update(experiment([trial(0, 0.1, 0.5), trial(1, 0.01, null, 'Waiting'), trial(2, 0.3, 0.9)], null));
    expect(view.node.querySelectorAll('.dlw-Experiment-overlay polyline')).toHaveLength(2);
    const dots = [...view.node.querySelectorAll('.dlw-Experiment-scatter circle')];
    expect(dots.map(d => d.getAttribute('data-trial'))).toEqual(['exp-000', 'exp-002']);
    // the higher lr has the higher accuracy: further right and higher up (smaller y)
    expect(Number(dots[1].getAttribute('cx'))).toBeGreaterThan(Number(dots[0].getAttribute('cx')));
    expect(Number(dots[1].getAttribute('cy'))).toBeLessThan(Number(dots[0].getAttribute('cy')));
    const [openBest, promote] = [...view.node.querySelectorAll('button')] as HTMLButtonElement[];
    expect(openBest.disabled && promote.disabled).toBe(true); // no best trial yet
  });

  it('hands the actions to the caller', () => {
    const promoted: string[] = [];
    const opened: string[][] = [];
    const notebooks: string[] = [];
    const view = new ExperimentView({
      onPromote: e => promoted.push(e.name),
      onTensorBoard: ts => opened.push(ts.map(t => t.name)),
      onOpen: t => notebooks.push(t.name)
    });
    view.update(experiment([trial(0, 0.1, 0.5), trial(1, 0.2, null, 'Waiting')], 'exp-000'));
    const [openBest, promote, tensorboard] = [...view.node.querySelectorAll('button')] as HTMLButtonElement[];
    openBest.click();
    promote.click();
    tensorboard.click();
    expect(notebooks).toEqual(['exp-000']);
    expect(promoted).toEqual(['exp']);
    expect(opened).toEqual([['exp-000']]); // waiting trials have no event files yet
  });

  it('renders 500 trials: a window of table rows (the rest stood in by padding), every line', () => {
    const view = new ExperimentView();
    const many = Array.from({ length: 500 }, (_, i) => trial(i, i / 500, i / 1000));
    view.update(experiment(many, 'exp-499'));
    const rows = view.node.querySelectorAll<HTMLElement>('tr[data-trial]');
    expect(rows.length).toBeGreaterThan(20);
    expect(rows.length).toBeLessThan(60);
    const pads = view.node.querySelectorAll<HTMLElement>('tr.dlw-Experiment-pad');
    expect(pads[0].hidden).toBe(true); // at the top
    expect(pads[1].style.height).toBe(`${(500 - rows.length) * TRIAL_ROW_HEIGHT}px`);
    expect(view.node.querySelectorAll('polyline')).toHaveLength(500);
    // sorting brings the best to the window's first row
    (view.node.querySelector('th[data-column="last"]') as HTMLElement).click();
    (view.node.querySelector('th[data-column="last"]') as HTMLElement).click();
    expect(view.node.querySelector('tr[data-trial]')!.getAttribute('data-trial')).toBe('exp-499');
  });

  it('updates a poll in place: changed cells rewritten, rows and lines kept, gone trials removed', () => {
    const view = new ExperimentView();
    view.update(experiment([trial(0, 0.1, 0.5), trial(1, 0.01, null, 'Running'), trial(2, 0.3, 0.9)], 'exp-002'));
    const row = (n: string) => view.node.querySelector<HTMLTableRowElement>(`tr[data-trial="${n}"]`)!;
    const before = row('exp-000');
    const line = view.node.querySelector('.dlw-Experiment-overlay polyline[data-trial="exp-000"]');
    view.update(experiment([trial(0, 0.1, 0.5), trial(1, 0.01, 0.95)], 'exp-001'));
    expect(row('exp-000')).toBe(before); // the same element, not a rebuilt one
    expect(view.node.querySelector('.dlw-Experiment-overlay polyline[data-trial="exp-000"]')).toBe(line);
    expect([...row('exp-001').cells].map(c => c.textContent)).toEqual([
      'exp-001',
      '0.01',
      'adam',
      'Succeeded',
      '0.95',
      '0.95',
      '11s'
    ]);
    expect(row('exp-001').classList.contains('dlw-mod-best')).toBe(true);
    expect(before.classList.contains('dlw-mod-best')).toBe(false);
    expect(view.node.querySelector('tr[data-trial="exp-002"]')).toBeNull();
    expect(view.node.querySelectorAll('.dlw-Experiment-overlay polyline')).toHaveLength(2);
    expect(view.node.querySelectorAll('.dlw-Experiment-scatter circle')).toHaveLength(2);
  });
});
