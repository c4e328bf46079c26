/**
 * Recurring jobs in the lab: "Run on a schedule" (a dialog beside "Train as job"), the panel's
 * Schedules section (each definition with its runs grouped under it, pause/resume, run now, delete),
 * and "Diff with…" for a job. A thin face over ``dlw/api/schedules`` and ``dlw/api/jobs/NAME/diff``.
 */

import { Dialog, Notification, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import type { NotebookPanel } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import { listJobs, request } from './api.js';

export interface IScheduleRun {
  job: string | null;
  state: string;
  scheduled: number;
  reason: string | null;
  message: string | null;
  metrics?: string | null; // the run's last logged metrics: "loss 0.08 (step 12)"
}

export interface ISchedule {
  name: string;
  cron: string;
  timezone: string;
  concurrency: string;
  keep: number;
  paused: boolean;
  notebook: string | null;
  nextRun: number | null;
  runs: IScheduleRun[];
}

export interface IScheduleRequest {
  notebook: string;
  name?: string;
  cron: string;
  timezone: string;
  concurrency: string;
  keep: number;
}

export interface IDiff {
  a: string;
  b: string;
  same: boolean;
  text: string;
}

export const listSchedules = async (): Promise<ISchedule[]> =>
  (await request<{ schedules: ISchedule[] }>('schedules')).schedules;
export const createSchedule = (body: IScheduleRequest): Promise<ISchedule> =>
  request<ISchedule>('schedules', { method: 'POST', body: JSON.stringify(body) });
export const scheduleAction = (name: string, action: 'pause' | 'resume' | 'run'): Promise<unknown> =>
  request(`schedules/${name}/${action}`, { method: 'POST', body: '{}' });
export const deleteSchedule = (name: string): Promise<void> => request<void>(`schedules/${name}`, { method: 'DELETE' });
export const diffJob = (name: string, other?: string): Promise<IDiff> =>
  request<IDiff>(`jobs/${name}/diff`, {}, { other });

const when = (t: number | null): string => (t ? new Date(t * 1000).toLocaleString() : '-');

/** The "Run on a schedule" form: name, cron, time zone, overlap policy, runs kept. */
export class ScheduleForm extends Widget implements Dialog.IBodyWidget<IScheduleRequest> {
  private readonly fields: Record<string, HTMLInputElement | HTMLSelectElement> = {};

  constructor(
    readonly notebook: string,
    previous?: IScheduleRequest
  ) {
    super();
    this.addClass('dlw-ScheduleForm');
    const stem = (notebook.split('/').pop() ?? 'schedule').replace(/\.ipynb$/, '');
    const guess = stem
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '');
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
    const note = document.createElement('div');
    note.textContent = `Notebook: ${notebook} (each run reads it as last saved)`;
    this.node.appendChild(note);
    this.add('name', 'Name', previous?.name ?? guess);
    this.add('cron', 'Cron (e.g. 0 3 * * *, @daily)', previous?.cron ?? '0 3 * * *');
    this.add('timezone', 'Time zone', previous?.timezone ?? zone);
    this.add('concurrency', 'If the last run is still running', previous?.concurrency ?? 'Forbid', [
      'Forbid',
      'Replace',
      'Allow'
    ]);
    this.add('keep', 'Runs kept', String(previous?.keep ?? 5));
  }

  private add(name: string, label: string, value: string, choices?: string[]): void {
    const row = document.createElement('label');
    row.className = 'dlw-ScheduleForm-row';
    row.textContent = label;
    let input: HTMLInputElement | HTMLSelectElement;
    if (choices) {
      input = document.createElement('select');
      for (const c of choices) {
        input.add(new Option(c, c, c === value, c === value));
      }
    } else {
      input = document.createElement('input');
      input.value = value;
    }
    input.name = name;
    input.className = 'jp-mod-styled';
    row.appendChild(input);
    this.node.appendChild(row);
    this.fields[name] = input;
  }

  getValue(): IScheduleRequest {
    const v = (k: string): string => this.fields[k].value.trim();
    return {
      notebook: this.notebook,
      name: v('name') || undefined,
      cron: v('cron'),
      timezone: v('timezone'),
      concurrency: v('concurrency'),
      keep: Number.parseInt(v('keep'), 10)
    };
  }
}

/** Save the notebook, ask for the schedule, create it; the server's one-line message reopens the form. */
export async function scheduleNotebook(current: NotebookPanel, onCreated: () => Promise<void>): Promise<void> {
  await current.context.ready;
  if (current.context.model.dirty) {
    await current.context.save();
  }
  let previous: IScheduleRequest | undefined;
  for (;;) {
    const result = await showDialog({
      title: 'Run on a schedule',
      body: new ScheduleForm(current.context.path, previous),
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Schedule' })]
    });
    if (!result.button.accept || !result.value) {
      return;
    }
    previous = result.value;
    try {
      const created = await createSchedule(previous);
      Notification.success(`Scheduled ${created.name}: next run ${when(created.nextRun)}`, { autoClose: 4000 });
      await onCreated();
      return;
    } catch (err) {
      await showErrorMessage('Cannot create the schedule', (err as Error).message);
    }
  }
}

/** "Diff with…": pick another job (or the notebook now) and show what changed. */
export async function showDiff(name: string): Promise<void> {
  const others = await listJobs()
    .then(jobs => jobs.map(j => j.name))
    .catch(() => [] as string[]);
  const select = document.createElement('select');
  select.className = 'jp-mod-styled dlw-DiffWith';
  select.add(new Option('the notebook and environment now', ''));
  for (const o of others.filter(o => o !== name)) {
    select.add(new Option(o, o));
  }
  const body = new Widget({ node: select });
  const pick = await showDialog({
    title: `Diff ${name} with…`,
    body,
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Diff' })]
  });
  if (!pick.button.accept) {
    return;
  }
  try {
    const d = await diffJob(name, select.value || undefined);
    const pre = document.createElement('pre');
    pre.className = 'dlw-Diff';
    pre.textContent = d.text;
    await showDialog({ title: `${d.a} → ${d.b}`, body: new Widget({ node: pre }), buttons: [Dialog.okButton()] });
  } catch (err) {
    await showErrorMessage('Cannot diff', (err as Error).message);
  }
}

/** The panel's Schedules section: definitions with their runs grouped under them. */
export class SchedulesSection {
  readonly node: HTMLElement;
  private readonly list: HTMLElement;
  private readonly error: HTMLElement;

  constructor(private readonly onOpenJob: (name: string) => void) {
    this.node = document.createElement('div');
    this.node.className = 'dlw-Schedules';
    const title = document.createElement('h3');
    title.textContent = 'Schedules';
    this.error = document.createElement('div');
    this.error.className = 'dlw-Schedules-error';
    this.list = document.createElement('div');
    this.node.append(title, this.error, this.list);
    this.node.hidden = true;
  }

  async refresh(): Promise<void> {
    let schedules: ISchedule[];
    try {
      schedules = await listSchedules();
      this.error.textContent = '';
    } catch (err) {
      this.error.textContent = `Cannot list schedules: ${(err as Error).message}`;
      return;
    }
    this.node.hidden = schedules.length === 0;
    this.list.replaceChildren(...schedules.map(s => this.row(s)));
  }

  private row(s: ISchedule): HTMLElement {
    const item = document.createElement('div');
    item.className = 'dlw-Schedule';
    item.dataset.name = s.name;
    const head = document.createElement('div');
    head.className = 'dlw-Schedule-head';
    const label = document.createElement('span');
    label.className = 'dlw-Schedule-label';
    label.textContent = `${s.name} · ${s.cron} (${s.timezone}) · ${s.paused ? 'paused' : 'next ' + when(s.nextRun)}`;
    head.appendChild(label);
    const button = (text: string, title: string, act: () => Promise<unknown>): void => {
      const b = document.createElement('button');
      b.className = 'jp-Button jp-mod-minimal dlw-Schedule-action';
      b.textContent = text;
      b.title = title;
      b.addEventListener('click', () => {
        act()
          .then(() => this.refresh())
          .catch(err => showErrorMessage(`Schedule ${s.name}`, (err as Error).message));
      });
      head.appendChild(b);
    };
    button(s.paused ? 'Resume' : 'Pause', s.paused ? 'Fire again from the next time on' : 'Stop firing', () =>
      scheduleAction(s.name, s.paused ? 'resume' : 'pause')
    );
    button('Run now', 'Start a run now, outside the schedule', () => scheduleAction(s.name, 'run'));
    button('Delete', 'Forget the definition (its runs stay)', async () => {
      const ok = await showDialog({
        title: `Delete schedule ${s.name}?`,
        body: 'Its runs stay in the jobs list.',
        buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
      });
      if (ok.button.accept) {
        await deleteSchedule(s.name);
      }
    });
    item.appendChild(head);
    for (const r of s.runs) {
      const run = document.createElement('div');
      run.className = 'dlw-Schedule-run';
      run.dataset.state = r.state;
      const why = r.reason ? ` · ${r.reason}${r.message ? ': ' + r.message : ''}` : '';
      const metrics = r.metrics ? ` · ${r.metrics}` : '';
      run.textContent = `${when(r.scheduled)} · ${r.job ?? '-'} · ${r.state}${metrics}${why}`;
      if (r.job) {
        const job = r.job;
        run.addEventListener('click', () => this.onOpenJob(job));
      }
      item.appendChild(run);
    }
    return item;
  }
}
