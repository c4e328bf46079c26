import { SHIP_FOLDER, splitValues, sweepRequest, TrainForm } from '../src/dialog';
import type { IOptions } from '../src/types';

const DEFAULTS = { workers: 1, gpus: 0, engine: 'job', queue: '', priority: '' };

function options(extra: Partial<IOptions> = {}): IOptions {
  return {
    engines: ['job', 'volcano', 'pytorchjob'],
    volumes: [{ name: 'datasets', mountPath: '/data' }],
    queues: [{ name: 'research', default: true }],
    priorityClasses: [],
    profiles: [],
    reason: null,
    ...extra
  };
}

function type(input: HTMLInputElement, text: string): void {
  input.value = text;
  input.dispatchEvent(new Event('input', { bubbles: true }));
}

describe('TrainForm', () => {
  it('marks a wrong typed parameter as the user types, keeps it, and never throws', () => {
    const form = new TrainForm('nb.ipynb', { epochs: 3, lr: 0.1, tag: 'x' }, options(), DEFAULTS);
    document.body.appendChild(form.node);
    form.processMessage({ type: 'after-attach' } as any);
    const epochs = form.node.querySelector<HTMLInputElement>('input[name="param-epochs"]')!;
    type(epochs, 'eighty');
    expect(epochs.classList.contains('jp-mod-error')).toBe(true);
    expect(epochs.value).toBe('eighty');
    const error = form.node.querySelector<HTMLElement>('.dlw-TrainForm-error')!;
    expect(error.hidden).toBe(false);
    expect(error.textContent).toBe('parameter epochs: "eighty" is not a valid number');
    expect(form.problem).toBe('parameter epochs: "eighty" is not a valid number');
    expect(() => form.getValue()).not.toThrow();

    type(epochs, '80');
    expect(epochs.classList.contains('jp-mod-error')).toBe(false);
    expect(error.hidden).toBe(true);
    expect(form.problem).toBeNull();
    expect(form.getValue().parameters).toEqual({ epochs: 80 });
    form.dispose();
  });

  it('refuses a fraction for an int parameter and a job name the spec refuses, as typed', () => {
    const rules = { name: { pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 52, rule: 'lowercase letters' } };
    const types = { epochs: { type: 'int', optional: false }, lr: { type: 'float', optional: false } };
    const form = new TrainForm(
      'nb.ipynb',
      { epochs: 3, lr: 0.1 },
      options({ rules }),
      DEFAULTS,
      undefined,
      null,
      types
    );
    document.body.appendChild(form.node);
    form.processMessage({ type: 'after-attach' } as any);
    const epochs = form.node.querySelector<HTMLInputElement>('input[name="param-epochs"]')!;
    type(epochs, '5.5');
    expect(form.problem).toBe('parameter epochs: expected a whole number (int), got "5.5"');
    type(epochs, '5');
    const lr = form.node.querySelector<HTMLInputElement>('input[name="param-lr"]')!;
    type(lr, '1');
    expect(form.problem).toBeNull();
    expect(form.getValue().parameters).toEqual({ epochs: 5, lr: 1 });

    const name = form.node.querySelector<HTMLInputElement>('input[name="name"]')!;
    type(name, 'My_Job');
    expect(name.validity.valid).toBe(false);
    expect(form.problem).toBe('Job name: "My_Job" is not a valid job name (lowercase letters)');
    type(name, 'x'.repeat(53));
    expect(form.problem).toContain('is not a valid job name');
    type(name, 'my-job');
    expect(form.problem).toBeNull();
    form.dispose();
  });

  it('sends tags as typed and refuses one the spec would refuse', () => {
    const rules = {
      tag: { pattern: '^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$', maxLength: 63, rule: 'tag rule' }
    };
    const form = new TrainForm('nb.ipynb', {}, options({ rules }), DEFAULTS);
    document.body.appendChild(form.node);
    form.processMessage({ type: 'after-attach' } as any);
    const tags = form.node.querySelector<HTMLInputElement>('input[name="tags"]')!;
    type(tags, 'baseline, lr sweep!');
    expect(form.problem).toBe('Tags: "sweep!" is not a valid tag (tag rule)');
    type(tags, 'baseline, lr-sweep');
    expect(form.problem).toBeNull();
    expect(form.getValue().tags).toEqual(['baseline', 'lr-sweep']);
    form.dispose();
  });

  it('refuses an empty or fractional worker count', () => {
    const form = new TrainForm('nb.ipynb', {}, options(), DEFAULTS);
    document.body.appendChild(form.node);
    form.processMessage({ type: 'after-attach' } as any);
    const workers = form.node.querySelector<HTMLInputElement>('input[name="workers"]')!;
    type(workers, '');
    expect(form.problem).toBe('Workers: expected a whole number of at least 1');
    type(workers, '2');
    expect(form.problem).toBeNull();
    form.dispose();
  });

  it('does not offer what the local backend cannot run, and says why', () => {
    const form = new TrainForm(
      'nb.ipynb',
      {},
      options({
        engines: ['job'],
        volumes: [],
        queues: [],
        unavailable: { engines: 'local processes only', queues: 'no queues here', volumes: 'no catalogue volumes' }
      }),
      DEFAULTS
    );
    const engine = form.node.querySelector<HTMLSelectElement>('select[name="engine"]')!;
    expect([...engine.options].map(o => o.value)).toEqual(['job']);
    expect(engine.disabled).toBe(true);
    expect(form.node.querySelector('[name="queue"]')).toBeNull();
    expect(form.node.textContent).toContain('Not available: no catalogue volumes.');
    expect(form.getValue()).toEqual({ notebook: 'nb.ipynb', workers: 1, gpus: 0, engine: 'job' });
  });

  it('ships the notebook folder when asked', () => {
    const form = new TrainForm('nb.ipynb', {}, options(), DEFAULTS);
    const box = form.node.querySelector<HTMLInputElement>('input[name="ship-folder"]')!;
    expect(form.getValue().files).toBeUndefined();
    box.checked = true;
    expect(form.getValue().files).toEqual([SHIP_FOLDER]);
    const again = new TrainForm('nb.ipynb', {}, options(), DEFAULTS, form.getValue());
    expect(again.node.querySelector<HTMLInputElement>('input[name="ship-folder"]')!.checked).toBe(true);
  });

  it('asks for a preemptible job with the checkbox, says what it means, and remembers it', () => {
    const form = new TrainForm('nb.ipynb', {}, options(), DEFAULTS);
    const box = form.node.querySelector<HTMLInputElement>('input[name="preemptible"]')!;
    expect(box.closest('label')!.title).toContain('higher-priority');
    expect(box.closest('label')!.title).toContain('checkpoint');
    expect(form.getValue().preemptible).toBeUndefined();
    box.checked = true;
    expect(form.getValue().preemptible).toBe(true);
    const again = new TrainForm('nb.ipynb', {}, options(), DEFAULTS, form.getValue());
    expect(again.node.querySelector<HTMLInputElement>('input[name="preemptible"]')!.checked).toBe(true);
  });
});

describe('extra parameters', () => {
  it('sends names the parameters cell does not define, typed, and refuses what is not NAME=VALUE', () => {
    const form = new TrainForm('nb.ipynb', { epochs: 3 }, options(), DEFAULTS);
    document.body.appendChild(form.node);
    form.processMessage({ type: 'after-attach' } as any);
    const more = form.node.querySelector<HTMLInputElement>('input[name="more-params"]')!;
    more.value = 'seed=7, note=fast run, 2bad=1';
    more.dispatchEvent(new Event('input', { bubbles: true }));
    expect(form.problem).toBe('More parameters: "2bad=1" is not NAME=VALUE with NAME a Python name');
    more.value = 'seed=7, note=fast run';
    more.dispatchEvent(new Event('input', { bubbles: true }));
    expect(form.problem).toBeNull();
    expect(form.getValue().parameters).toEqual({ seed: 7, note: 'fast run' });
    form.dispose();
  });

  it('sweeps lists of values typed as each parameter, marks a value that is not, and sends an experiment', () => {
    const types = { epochs: { type: 'int', optional: false }, lr: { type: 'float', optional: false } };
    const form = new TrainForm(
      'nb.ipynb',
      { epochs: 3, lr: 0.1, note: 'x', fast: false },
      options(),
      DEFAULTS,
      undefined,
      null,
      types
    );
    document.body.appendChild(form.node);
    form.processMessage({ type: 'after-attach' } as any);
    const lr = form.node.querySelector<HTMLInputElement>('input[name="param-lr"]')!;
    const epochs = form.node.querySelector<HTMLInputElement>('input[name="param-epochs"]')!;
    const sweepBox = form.node.querySelector<HTMLInputElement>('input[name="mode"][value="sweep"]')!;
    const section = form.node.querySelector<HTMLElement>('input[name="parallel"]')!.closest('fieldset')!;
    expect(section.hidden).toBe(true);
    type(lr, '0.01, 0.1');
    expect(form.problem).toBe('parameter lr: "0.01, 0.1" is not a valid number'); // one job: one value

    sweepBox.checked = true;
    sweepBox.dispatchEvent(new Event('input', { bubbles: true }));
    expect(section.hidden).toBe(false);
    expect(form.problem).toBeNull();
    type(epochs, '2, 3.5');
    expect(epochs.classList.contains('jp-mod-error')).toBe(true);
    expect(form.problem).toBe('parameter epochs: expected a whole number (int), got "3.5"');
    type(epochs, '2, 4');
    type(form.node.querySelector<HTMLInputElement>('input[name="param-note"]')!, 'a, b,c');
    type(form.node.querySelector<HTMLInputElement>('input[name="param-fast"]')!, 'True');
    type(form.node.querySelector<HTMLInputElement>('input[name="metric"]')!, 'accuracy');
    type(form.node.querySelector<HTMLInputElement>('input[name="parallel"]')!, '3');
    expect(form.problem).toBeNull();
    const value = form.getValue();
    expect(value.sweep).toEqual({
      parameters: { lr: [0.01, 0.1], epochs: [2, 4], note: ['a', 'b', 'c'] },
      parallel: 3,
      goal: 'max',
      metric: 'accuracy'
    });
    expect(value.parameters).toEqual({ fast: true }); // one value: the same in every trial
    const request = sweepRequest({ ...value, name: 'my-sweep' });
    expect(request).toMatchObject({
      notebook: 'nb.ipynb',
      name: 'my-sweep',
      parallel: 3,
      metric: 'accuracy',
      goal: 'max',
      parameters: { lr: [0.01, 0.1] }
    });
    expect(request.options).toMatchObject({ parameters: { fast: true }, workers: 1 });
    expect(request.options).not.toHaveProperty('sweep');

    type(form.node.querySelector<HTMLInputElement>('input[name="parallel"]')!, '0');
    expect(form.problem).toBe('Parallel: expected a whole number of at least 1');
    // back to one job: the sweep's fields are not sent and do not block Submit
    const jobBox = form.node.querySelector<HTMLInputElement>('input[name="mode"][value="job"]')!;
    jobBox.checked = true;
    jobBox.dispatchEvent(new Event('input', { bubbles: true }));
    type(lr, '0.2');
    type(epochs, '5');
    type(form.node.querySelector<HTMLInputElement>('input[name="param-note"]')!, 'x');
    expect(form.problem).toBeNull();
    expect(form.getValue().sweep).toBeUndefined();
    form.dispose();
  });

  it('reopens a refused sweep with the values as typed', () => {
    const previous = {
      notebook: 'nb.ipynb',
      sweep: { parameters: { lr: [0.01, 0.1] }, parallel: 4, goal: 'min' as const, metric: 'loss' }
    };
    const form = new TrainForm('nb.ipynb', { lr: 0.1 }, options(), DEFAULTS, previous);
    expect(form.sweep).toBe(true);
    expect(form.node.querySelector<HTMLInputElement>('input[name="param-lr"]')!.value).toBe('0.01, 0.1');
    expect(form.node.querySelector<HTMLInputElement>('input[name="parallel"]')!.value).toBe('4');
    expect(form.node.querySelector<HTMLSelectElement>('select[name="goal"]')!.value).toBe('min');
    form.dispose();
  });

  it('splits values at commas outside brackets and quotes', () => {
    expect(splitValues('[1, 2], [3] ,')).toEqual(['[1, 2]', '[3]']);
    expect(splitValues('"a,b", c')).toEqual(['"a,b"', 'c']);
    expect(splitValues('  ')).toEqual([]);
  });
});
