/**
 * The "Train as job" dialog body: name, workers, GPUs, engine, queue, priority, parameters (prefilled
 * from the notebook's ``parameters`` cell), the notebook's folder and the admin's volumes.
 *
 * "Sweep" instead of "One job": each parameter takes a comma-separated list of values, each typed as
 * the parameter is, plus parallel, metric and goal; the request goes to ``POST dlw/api/experiments``
 * (``dlw sweep NOTEBOOK -p NAME=A,B``), one trial per point of the grid.
 *
 * Fields are checked as the user types: a bad value is marked, its message shown under it, and the
 * Dialog's own validation (``:invalid`` / ``.jp-mod-error``) keeps Submit disabled, so the dialog never
 * closes on input it cannot send. What the backend cannot run is not offered (``options.unavailable``).
 */

import type { Dialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { paramToText, textToParam } from './format.js';
import type { INameRule, IOptions, IParamType, ISubmitRequest, ISweepRequest } from './types.js';

/** The sweep part of the dialog's request: values per parameter and the sweep's settings. */
export interface ISweepSettings {
  parameters: Record<string, unknown[]>;
  parallel: number;
  metric?: string;
  goal: 'max' | 'min';
}

/** What the dialog returns: a job, or with ``sweep`` an experiment whose trials share these options. */
export interface ITrainRequest extends ISubmitRequest {
  sweep?: ISweepSettings;
}

/** The dialog's sweep as ``POST dlw/api/experiments`` takes it: the job fields become the trials' options. */
export function sweepRequest(value: ITrainRequest): ISweepRequest {
  const { sweep, notebook, name, ...options } = value;
  return {
    notebook: notebook ?? '',
    ...(name ? { name } : {}),
    parameters: sweep?.parameters ?? {},
    parallel: sweep?.parallel,
    ...(sweep?.metric ? { metric: sweep.metric, goal: sweep.goal } : {}),
    options
  };
}

/**
 * "0.01, 0.1" or "[1, 2], [3]" as the texts of its values: split at commas outside brackets and
 * quotes; blank items are dropped.
 */
export function splitValues(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quote = '';
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === '\\') {
        i++;
      } else if (c === quote) {
        quote = '';
      }
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if ('[{('.includes(c)) {
      depth++;
    } else if (']})'.includes(c)) {
      depth = Math.max(0, depth - 1);
    } else if (c === ',' && depth === 0) {
      out.push(text.slice(start, i));
      start = i + 1;
    }
  }
  out.push(text.slice(start));
  return out.map(v => v.trim()).filter(v => v);
}

/** ``source.files`` pattern for "ship the notebook's folder": everything below it but hidden files. */
export const SHIP_FOLDER = '**';

/**
 * "seed=7, note=fast run" as parameters: values read as the notebook's would be (JSON, Python's
 * True/False/None, else text); ``problem`` names the first item that is not NAME=VALUE.
 */
export function extraParams(text: string): { values: Record<string, unknown>; problem: string | null } {
  const values: Record<string, unknown> = {};
  for (const item of text.split(',').map(s => s.trim())) {
    if (!item) {
      continue;
    }
    const eq = item.indexOf('=');
    const name = eq > 0 ? item.slice(0, eq).trim() : '';
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      return { values, problem: `More parameters: ${JSON.stringify(item)} is not NAME=VALUE with NAME a Python name` };
    }
    values[name] = textToParam(name, item.slice(eq + 1).trim(), undefined);
  }
  return { values, problem: null };
}

/** Tags as typed: separated by spaces or commas. */
export function splitTags(text: string): string[] {
  return text.split(/[\s,]+/).filter(t => t);
}

export interface ITrainDefaults {
  workers: number;
  gpus: number;
  engine: string;
  queue: string;
  priority: string;
}

export class TrainForm extends Widget implements Dialog.IBodyWidget<ITrainRequest> {
  private readonly inputs: Record<string, HTMLInputElement | HTMLSelectElement> = {};
  private readonly paramInputs = new Map<string, HTMLInputElement>();
  private readonly volumeBoxes = new Map<string, HTMLInputElement>();
  private readonly errors = new Map<HTMLInputElement, HTMLElement>();
  private readonly nameRule: INameRule | undefined;
  private readonly tagRule: INameRule | undefined;
  private folderBox: HTMLInputElement | null = null;
  private preemptibleBox: HTMLInputElement | null = null;
  private readonly modeBoxes: HTMLInputElement[] = [];
  private readonly sweepSection: HTMLElement;
  // Capture on window runs before the Dialog's document-level 'input' check, so it sees our marks.
  private readonly onInput = (ev: Event): void => {
    const target = ev.target as HTMLElement;
    if (target instanceof HTMLInputElement && this.node.contains(target)) {
      if (target.name === 'mode') {
        this.setMode(target.value === 'sweep');
      } else {
        this.check(target);
      }
    }
  };

  constructor(
    readonly notebook: string,
    readonly parameters: Record<string, unknown>,
    options: IOptions,
    defaults: ITrainDefaults,
    previous?: ITrainRequest,
    paramsReason?: string | null,
    readonly paramTypes: Record<string, IParamType> = {}
  ) {
    super();
    this.nameRule = options.rules?.name;
    this.tagRule = options.rules?.tag;
    this.addClass('dlw-TrainForm');
    const p = previous ?? {};
    const form = document.createElement('div');
    form.className = 'dlw-TrainForm-grid';
    this.node.appendChild(form);

    const note = document.createElement('div');
    note.className = 'dlw-TrainForm-notebook';
    note.textContent = `Notebook: ${notebook}`;
    form.appendChild(note);

    const mode = document.createElement('div');
    mode.className = 'dlw-TrainForm-mode';
    for (const [value, label, title] of [
      ['job', 'One job', 'Run the notebook once with these parameter values'],
      ['sweep', 'Sweep', 'Run it once per combination of the listed values: one experiment, each trial a job']
    ]) {
      const l = document.createElement('label');
      const box = document.createElement('input');
      box.type = 'radio';
      box.name = 'mode';
      box.value = value;
      box.checked = value === (p.sweep ? 'sweep' : 'job');
      l.append(box, ` ${label}`);
      l.title = title;
      mode.appendChild(l);
      this.modeBoxes.push(box);
    }
    form.appendChild(mode);

    this.text(form, 'name', 'Job name', p.name ?? '', 'generated from the notebook name');
    this.check(this.inputs.name as HTMLInputElement);
    this.text(form, 'tags', 'Tags', (p.tags ?? []).join(' '), 'e.g. baseline lr-sweep (to find the job by)');
    this.number(form, 'workers', 'Workers', p.workers ?? defaults.workers, 1);
    this.number(form, 'gpus', 'GPUs per worker', p.gpus ?? defaults.gpus, 0);
    const unavailable = options.unavailable ?? {};
    const engine = this.select(
      form,
      'engine',
      'Engine',
      options.engines.map(e => [e, e]),
      p.engine ?? defaults.engine
    );
    if (options.engines.length === 1) {
      engine.disabled = true; // one engine: shown, not a choice
      engine.title = unavailable.engines ?? '';
    }
    if (unavailable.queues) {
      // not offered: the backend has no queues
    } else if (options.queues.length) {
      const def = options.queues.find(q => q.default)?.name ?? '';
      this.select(
        form,
        'queue',
        'Queue',
        [['', `(default${def ? `: ${def}` : ''})`], ...options.queues.map(q => [q.name, q.name] as [string, string])],
        p.queue ?? defaults.queue
      );
    } else {
      this.text(form, 'queue', 'Queue', p.queue ?? defaults.queue, 'none');
    }
    if (options.priorityClasses.length) {
      this.select(
        form,
        'priority',
        'Priority',
        [
          ['', '(default)'],
          ...options.priorityClasses.map(c => [c.name, `${c.name} (${c.value})`] as [string, string])
        ],
        String(p.priority ?? defaults.priority)
      );
    } else {
      this.text(form, 'priority', 'Priority', String(p.priority ?? defaults.priority), 'a number or a priority class');
    }

    const preemptLabel = document.createElement('label');
    preemptLabel.className = 'dlw-TrainForm-preemptible';
    this.preemptibleBox = document.createElement('input');
    this.preemptibleBox.type = 'checkbox';
    this.preemptibleBox.name = 'preemptible';
    this.preemptibleBox.checked = !!p.preemptible;
    preemptLabel.append(this.preemptibleBox, ' Preemptible');
    preemptLabel.title = 'May be stopped for higher-priority work and requeued; it resumes from its checkpoint.';
    form.appendChild(preemptLabel);

    this.sweepSection = this.section(form, 'Sweep');
    this.number(this.sweepSection, 'parallel', 'Parallel', p.sweep?.parallel ?? 2, 1);
    this.inputs.parallel.title = 'At most this many trials at once; the others wait in DLW';
    this.text(this.sweepSection, 'metric', 'Metric', p.sweep?.metric ?? '', 'e.g. accuracy (from log_metrics)');
    this.inputs.metric.title = 'The metric that ranks the trials (the best trial is the one to promote)';
    this.select(
      this.sweepSection,
      'goal',
      'Goal',
      [
        ['max', 'maximize'],
        ['min', 'minimize']
      ],
      p.sweep?.goal ?? 'max'
    );

    const params = this.section(form, 'Parameters');
    const names = Object.keys(parameters);
    if (!names.length) {
      params.appendChild(this.hint(paramsReason || 'The notebook has no cell tagged "parameters".'));
    }
    for (const name of names) {
      const value = p.parameters && name in p.parameters ? p.parameters[name] : parameters[name];
      const input = this.row(params, `param-${name}`, name, 'input') as HTMLInputElement;
      const swept = p.sweep?.parameters[name];
      input.value = swept ? swept.map(paramToText).join(', ') : paramToText(value);
      const help = paramTypes[name]?.help;
      input.title = `default: ${paramToText(parameters[name])}${help ? ` (${help})` : ''}`;
      this.paramInputs.set(name, input);
      this.check(input);
    }

    // Names the cell does not define: set as new variables after it, as papermill does (the server notes it).
    const more = this.row(params, 'more-params', 'More', 'input') as HTMLInputElement;
    more.placeholder = 'name=value, ... (not in the parameters cell)';
    more.value = Object.entries(p.parameters ?? {})
      .filter(([k]) => !(k in parameters))
      .map(([k, v]) => `${k}=${paramToText(v)}`)
      .join(', ');
    more.title = 'Extra parameters, set as new variables right after the parameters cell';

    const files = this.section(form, 'Files');
    const folderLabel = document.createElement('label');
    folderLabel.className = 'dlw-TrainForm-volume';
    this.folderBox = document.createElement('input');
    this.folderBox.type = 'checkbox';
    this.folderBox.name = 'ship-folder';
    this.folderBox.checked = (p.files ?? []).includes(SHIP_FOLDER);
    folderLabel.append(this.folderBox, " Ship the notebook's folder");
    folderLabel.title =
      'Copy the files beside the notebook (and below it) into the job, so it can read them by ' +
      'relative path. Hidden files and the outputs of earlier jobs are left out.';
    files.append(folderLabel, this.hint('Otherwise the job gets the notebook alone.'));

    const vols = this.section(form, 'Volumes');
    if (unavailable.volumes) {
      vols.appendChild(this.hint(`Not available: ${unavailable.volumes}.`));
    } else if (!options.volumes.length) {
      vols.appendChild(this.hint(options.reason || 'The admin offers no volumes.'));
    }
    for (const v of options.volumes) {
      const label = document.createElement('label');
      label.className = 'dlw-TrainForm-volume';
      const box = document.createElement('input');
      box.type = 'checkbox';
      box.name = `volume-${v.name}`;
      box.checked = (p.volumes ?? []).includes(v.name);
      label.append(box, ` ${v.name} → ${v.mountPath ?? ''}${v.readOnly ? ' (read-only)' : ''}`);
      if (v.description) {
        label.title = String(v.description);
      }
      vols.appendChild(label);
      this.volumeBoxes.set(v.name, box);
    }
    this.setMode(this.sweep);
  }

  /** Whether the form asks for a sweep (the "Sweep" choice) rather than one job. */
  get sweep(): boolean {
    return this.modeBoxes[1]?.checked ?? false;
  }

  /** Show the sweep's fields (or not) and check the parameters again: a list is valid only in a sweep. */
  private setMode(sweep: boolean): void {
    this.sweepSection.hidden = !sweep;
    for (const el of this.sweepSection.querySelectorAll<HTMLInputElement | HTMLSelectElement>('input, select')) {
      el.disabled = !sweep; // a disabled field is not validated: a hidden one never blocks Submit
    }
    for (const input of this.paramInputs.values()) {
      input.placeholder = sweep ? 'values, comma-separated' : '';
      this.check(input);
    }
    this.check(this.inputs.parallel as HTMLInputElement);
  }

  protected onAfterAttach(): void {
    window.addEventListener('input', this.onInput, true);
  }

  protected onBeforeDetach(): void {
    window.removeEventListener('input', this.onInput, true);
  }

  dispose(): void {
    window.removeEventListener('input', this.onInput, true);
    super.dispose();
  }

  /** The first problem of the form (field and why), or null when it can be sent. */
  get problem(): string | null {
    for (const input of [...Object.values(this.inputs), ...this.paramInputs.values()]) {
      if (input instanceof HTMLInputElement && !input.disabled) {
        const message = this.check(input);
        if (message) {
          return message;
        }
      }
    }
    return null;
  }

  /** Mark ``input`` valid or not; returns its message. */
  private check(input: HTMLInputElement): string | null {
    let message: string | null = null;
    const pname = input.name.startsWith('param-') ? input.name.slice(6) : null;
    if (pname !== null && this.paramInputs.get(pname) === input) {
      try {
        if (this.sweep) {
          this.values(pname, input.value);
        } else {
          textToParam(pname, input.value, this.parameters[pname], this.paramTypes[pname]?.type);
        }
      } catch (err) {
        message = (err as Error).message;
      }
    } else if (input.disabled) {
      message = null; // a sweep's field in "One job": not sent
    } else if (input.name === 'more-params') {
      message = extraParams(input.value).problem;
    } else if (input.name === 'name') {
      message = this.nameProblem(input.value.trim());
    } else if (input.name === 'tags') {
      const rule = this.tagRule;
      const bad = rule
        ? splitTags(input.value).find(t => t.length > rule.maxLength || !new RegExp(rule.pattern).test(t))
        : undefined;
      message = bad !== undefined && rule ? `Tags: ${JSON.stringify(bad)} is not a valid tag (${rule.rule})` : null;
    } else if (input.type === 'number') {
      const label = input.closest('label')?.querySelector('span')?.textContent ?? input.name;
      if (!/^\d+$/.test(input.value.trim()) || Number(input.value) < Number(input.min)) {
        message = `${label}: expected a whole number of at least ${input.min}`;
      }
    }
    input.classList.toggle('jp-mod-error', message !== null);
    input.setCustomValidity(message ?? '');
    let line = this.errors.get(input);
    if (message && !line) {
      line = document.createElement('div');
      line.className = 'dlw-TrainForm-error';
      line.setAttribute('role', 'alert');
      input.closest('label')?.after(line);
      this.errors.set(input, line);
    }
    if (line) {
      line.textContent = message ?? '';
      line.hidden = message === null;
    }
    return message;
  }

  /** A sweep's values of a parameter, each typed as the parameter; throws naming the value that is not. */
  private values(pname: string, text: string): unknown[] {
    const original = this.parameters[pname];
    const kind = this.paramTypes[pname]?.type;
    const items = splitValues(text);
    if (!items.length) {
      throw new Error(`parameter ${pname}: give one or more values, separated by commas`);
    }
    return items.map(item => textToParam(pname, item, original, kind));
  }

  /** Why ``name`` is not a job name the spec accepts (empty: generated), or null. */
  private nameProblem(name: string): string | null {
    const rule = this.nameRule;
    if (!name || !rule) {
      return null;
    }
    if (name.length > rule.maxLength || !new RegExp(rule.pattern).test(name)) {
      return `Job name: ${JSON.stringify(name)} is not a valid job name (${rule.rule})`;
    }
    return null;
  }

  /**
   * The request. Never throws (the Dialog closes on a throwing getValue): a value that does not parse
   * is sent as typed, but Submit stays disabled while ``problem`` is set.
   */
  getValue(): ITrainRequest {
    const body: ITrainRequest = { notebook: this.notebook };
    const name = this.inputs.name.value.trim();
    if (name) {
      body.name = name;
    }
    const tags = splitTags(this.inputs.tags.value);
    if (tags.length) {
      body.tags = tags;
    }
    body.workers = Number(this.inputs.workers.value);
    body.gpus = Number(this.inputs.gpus.value);
    body.engine = this.inputs.engine.value;
    const queue = this.inputs.queue?.value.trim();
    if (queue) {
      body.queue = queue;
    }
    const priority = this.inputs.priority.value.trim();
    if (priority) {
      body.priority = /^-?\d+$/.test(priority) ? Number(priority) : priority;
    }
    const params: Record<string, unknown> = {};
    const swept: Record<string, unknown[]> = {};
    for (const [pname, input] of this.paramInputs) {
      if (this.sweep) {
        let values: unknown[];
        try {
          values = this.values(pname, input.value);
        } catch {
          values = [input.value];
        }
        if (values.length > 1) {
          swept[pname] = values;
        } else if (JSON.stringify(values[0]) !== JSON.stringify(this.parameters[pname])) {
          params[pname] = values[0]; // one value: the same for every trial
        }
        continue;
      }
      let value: unknown;
      try {
        value = textToParam(pname, input.value, this.parameters[pname], this.paramTypes[pname]?.type);
      } catch {
        value = input.value;
      }
      if (JSON.stringify(value) !== JSON.stringify(this.parameters[pname])) {
        params[pname] = value; // only what the user changed overrides the notebook
      }
    }
    for (const [pname, value] of Object.entries(extraParams(this.inputs['more-params'].value).values)) {
      if (!(pname in params)) {
        params[pname] = value;
      }
    }
    if (Object.keys(params).length) {
      body.parameters = params;
    }
    const volumes = [...this.volumeBoxes].filter(([, b]) => b.checked).map(([n]) => n);
    if (volumes.length) {
      body.volumes = volumes;
    }
    if (this.folderBox?.checked) {
      body.files = [SHIP_FOLDER];
    }
    if (this.preemptibleBox?.checked) {
      body.preemptible = true;
    }
    if (this.sweep) {
      const metric = this.inputs.metric.value.trim();
      body.sweep = {
        parameters: swept,
        parallel: Number(this.inputs.parallel.value),
        goal: this.inputs.goal.value === 'min' ? 'min' : 'max',
        ...(metric ? { metric } : {})
      };
    }
    return body;
  }

  private section(parent: HTMLElement, title: string): HTMLElement {
    const fs = document.createElement('fieldset');
    fs.className = 'dlw-TrainForm-section';
    const legend = document.createElement('legend');
    legend.textContent = title;
    fs.appendChild(legend);
    parent.appendChild(fs);
    return fs;
  }

  private hint(text: string): HTMLElement {
    const el = document.createElement('div');
    el.className = 'dlw-TrainForm-hint';
    el.textContent = text;
    return el;
  }

  private row(
    parent: HTMLElement,
    name: string,
    labelText: string,
    tag: 'input' | 'select'
  ): HTMLInputElement | HTMLSelectElement {
    const label = document.createElement('label');
    label.className = 'dlw-TrainForm-row';
    const span = document.createElement('span');
    span.textContent = labelText;
    const input = document.createElement(tag);
    input.name = name;
    input.className = 'jp-mod-styled';
    label.append(span, input);
    parent.appendChild(label);
    this.inputs[name] = input;
    return input;
  }

  private text(parent: HTMLElement, name: string, label: string, value: string, placeholder: string): void {
    const input = this.row(parent, name, label, 'input') as HTMLInputElement;
    input.value = value;
    input.placeholder = placeholder;
  }

  private number(parent: HTMLElement, name: string, label: string, value: number, min: number): void {
    const input = this.row(parent, name, label, 'input') as HTMLInputElement;
    input.type = 'number';
    input.required = true;
    input.step = '1';
    input.min = String(min);
    input.value = String(value);
  }

  private select(
    parent: HTMLElement,
    name: string,
    label: string,
    choices: [string, string][],
    value: string
  ): HTMLSelectElement {
    const select = this.row(parent, name, label, 'select') as HTMLSelectElement;
    for (const [v, text] of choices) {
      select.add(new Option(text, v));
    }
    if (choices.some(([v]) => v === value)) {
      select.value = value;
    }
    return select;
  }
}
