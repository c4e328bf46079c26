/**
 * The "Train as job" dialog body: name, workers, GPUs, engine, queue, priority, parameters (prefilled
 * from the notebook's ``parameters`` cell) and the admin's volumes.
 */

import { Dialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { paramToText, textToParam } from './format.js';
import type { IOptions, ISubmitRequest } from './types.js';

export interface ITrainDefaults {
  workers: number;
  gpus: number;
  engine: string;
  queue: string;
  priority: string;
}

export class TrainForm extends Widget implements Dialog.IBodyWidget<ISubmitRequest> {
  private readonly inputs: Record<string, HTMLInputElement | HTMLSelectElement> = {};
  private readonly paramInputs = new Map<string, HTMLInputElement>();
  private readonly volumeBoxes = new Map<string, HTMLInputElement>();

  constructor(
    readonly notebook: string,
    readonly parameters: Record<string, unknown>,
    options: IOptions,
    defaults: ITrainDefaults,
    previous?: ISubmitRequest,
    paramsReason?: string | null
  ) {
    super();
    this.addClass('dlw-TrainForm');
    const p = previous ?? {};
    const form = document.createElement('div');
    form.className = 'dlw-TrainForm-grid';
    this.node.appendChild(form);

    const note = document.createElement('div');
    note.className = 'dlw-TrainForm-notebook';
    note.textContent = `Notebook: ${notebook}`;
    form.appendChild(note);

    this.text(form, 'name', 'Job name', p.name ?? '', 'generated from the notebook name');
    this.number(form, 'workers', 'Workers', p.workers ?? defaults.workers, 1);
    this.number(form, 'gpus', 'GPUs per worker', p.gpus ?? defaults.gpus, 0);
    this.select(form, 'engine', 'Engine', options.engines.map(e => [e, e]), p.engine ?? defaults.engine);
    if (options.queues.length) {
      const def = options.queues.find(q => q.default)?.name ?? '';
      this.select(form, 'queue', 'Queue', [['', `(default${def ? `: ${def}` : ''})`], ...options.queues.map(q => [q.name, q.name] as [string, string])], p.queue ?? defaults.queue);
    } else {
      this.text(form, 'queue', 'Queue', p.queue ?? defaults.queue, 'none');
    }
    if (options.priorityClasses.length) {
      this.select(form, 'priority', 'Priority', [['', '(default)'], ...options.priorityClasses.map(c => [c.name, `${c.name} (${c.value})`] as [string, string])], String(p.priority ?? defaults.priority));
    } else {
      this.text(form, 'priority', 'Priority', String(p.priority ?? defaults.priority), 'a number or a priority class');
    }

    const params = this.section(form, 'Parameters');
    const names = Object.keys(parameters);
    if (!names.length) {
      params.appendChild(this.hint(paramsReason || 'The notebook has no cell tagged "parameters".'));
    }
    for (const name of names) {
      const value = p.parameters && name in p.parameters ? p.parameters[name] : parameters[name];
      const input = this.row(params, `param-${name}`, name, 'input') as HTMLInputElement;
      input.value = paramToText(value);
      input.title = `default: ${paramToText(parameters[name])}`;
      this.paramInputs.set(name, input);
    }

    const vols = this.section(form, 'Volumes');
    if (!options.volumes.length) {
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
  }

  /** The request; throws (with a message naming the parameter) when a parameter does not parse. */
  getValue(): ISubmitRequest {
    const body: ISubmitRequest = { notebook: this.notebook };
    const name = this.inputs.name.value.trim();
    if (name) {
      body.name = name;
    }
    body.workers = Number(this.inputs.workers.value);
    body.gpus = Number(this.inputs.gpus.value);
    body.engine = this.inputs.engine.value;
    const queue = this.inputs.queue.value.trim();
    if (queue) {
      body.queue = queue;
    }
    const priority = this.inputs.priority.value.trim();
    if (priority) {
      body.priority = /^-?\d+$/.test(priority) ? Number(priority) : priority;
    }
    const params: Record<string, unknown> = {};
    for (const [pname, input] of this.paramInputs) {
      const value = textToParam(pname, input.value, this.parameters[pname]);
      if (JSON.stringify(value) !== JSON.stringify(this.parameters[pname])) {
        params[pname] = value; // only what the user changed overrides the notebook
      }
    }
    if (Object.keys(params).length) {
      body.parameters = params;
    }
    const volumes = [...this.volumeBoxes].filter(([, b]) => b.checked).map(([n]) => n);
    if (volumes.length) {
      body.volumes = volumes;
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

  private row(parent: HTMLElement, name: string, labelText: string, tag: 'input' | 'select'): HTMLInputElement | HTMLSelectElement {
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
    input.min = String(min);
    input.value = String(value);
  }

  private select(parent: HTMLElement, name: string, label: string, choices: [string, string][], value: string): void {
    const select = this.row(parent, name, label, 'select') as HTMLSelectElement;
    for (const [v, text] of choices) {
      select.add(new Option(text, v));
    }
    if (choices.some(([v]) => v === value)) {
      select.value = value;
    }
  }
}
