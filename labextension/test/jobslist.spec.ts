import { JobsList } from '../src/jobslist';
import type { IJob } from '../src/types';

function job(i: number, state = 'Running'): IJob {
  return {
    name: `job-${i}`,
    user: 'u',
    state,
    backend: 'local',
    engine: 'job',
    workers: 2,
    world_size: 2,
    gpus: 1,
    created: 0,
    started: 1000,
    finished: null,
    duration: null,
    exit_code: null,
    reason: null,
    message: null,
    output_dir: null,
    output_path: null,
    queue: null,
    priority: 0
  };
}

describe('JobsList', () => {
  it('keeps the DOM small with 1,000 jobs and shows live state', () => {
    const actions: string[] = [];
    const list = new JobsList({ onAction: (a, j) => actions.push(`${a}:${j.name}`), now: () => 1065 });
    document.body.appendChild(list.node);
    list.setJobs(Array.from({ length: 1000 }, (_, i) => job(i)));
    list.render();
    const rows = list.node.querySelectorAll('.dlw-JobRow');
    expect(rows.length).toBeLessThan(40);
    expect(rows[0].querySelector('.dlw-JobRow-meta')!.textContent).toMatch(
      /^1m 5s · 2 GPUs · 2×job · \d\d:\d\d:\d\d–now$/
    );

    list.setJobs([job(0, 'Succeeded'), ...Array.from({ length: 999 }, (_, i) => job(i + 1))]);
    list.render();
    const first = list.node.querySelector('.dlw-JobRow[data-job="job-0"]')!;
    expect(first.getAttribute('data-state')).toBe('Succeeded');
    expect((first.querySelector('.dlw-action-cancel') as HTMLButtonElement).disabled).toBe(true);

    (first.querySelector('.dlw-action-logs') as HTMLButtonElement).click();
    expect(actions).toEqual(['logs:job-0']);
  });

  it('filters by name or state', () => {
    const list = new JobsList({ onAction: () => undefined });
    list.setJobs([job(1), job(2, 'Failed'), job(12)]);
    list.setFilter('failed');
    expect(list.count).toBe(1);
    list.setFilter('job-1');
    expect(list.count).toBe(2);
  });

  it('says why a queued job waits, and opens the executed notebook only when there is one', () => {
    const actions: string[] = [];
    const list = new JobsList({ onAction: (a, j) => actions.push(`${a}:${j.name}`), now: () => 1065 });
    const queued = {
      ...job(1, 'Queued'),
      reason: 'WaitingForGPUs',
      message: 'waiting for 2 GPUs held by big-1, big-2; 3rd in the queue',
      executed_notebook_path: null
    };
    const done = { ...job(2, 'Succeeded'), executed_notebook_path: 'dlw-outputs/job-2/executed.ipynb' };
    list.setJobs([queued, done, job(3)]);
    list.render();
    const row = (name: string): HTMLElement => list.node.querySelector(`.dlw-JobRow[data-job="${name}"]`)!;
    const meta = row('job-1').querySelector('.dlw-JobRow-meta')!;
    expect(meta.textContent).toBe('waiting for 2 GPUs held by big-1, big-2; 3rd in the queue');
    expect(meta.getAttribute('title')).toContain('2 GPUs · 2×job');
    expect(row('job-3').querySelector('.dlw-JobRow-meta')!.textContent).toMatch(
      /^1m 5s · 2 GPUs · 2×job · \d\d:\d\d:\d\d–now$/
    );

    const notebook = (name: string): HTMLButtonElement => row(name).querySelector('.dlw-action-notebook')!;
    expect(notebook('job-1').disabled).toBe(true);
    expect(notebook('job-2').disabled).toBe(false);
    expect(notebook('job-3').disabled).toBe(false); // the list may not know it: the click asks the server
    notebook('job-2').click();
    expect(actions).toEqual(['notebook:job-2']);
  });
});

describe('JobsList rows', () => {
  it("shows a failed job's reason in its row, and when each job ran", () => {
    const failed = {
      ...job(1, 'Failed'),
      started: 1000,
      finished: 1075,
      reason: 'Error',
      message: "NameError: name 'x' is not defined (cell 3)"
    };
    const list = new JobsList({ virtualize: false, onAction: () => undefined, now: () => 2000 });
    document.body.appendChild(list.node);
    list.setJobs([failed, job(2, 'Running')]);
    list.render();
    const rows = list.node.querySelectorAll<HTMLElement>('.dlw-JobRow');
    const why = rows[0].querySelector<HTMLElement>('.dlw-JobRow-why')!;
    expect(why.hidden).toBe(false);
    expect(why.textContent).toBe("NameError: name 'x' is not defined (cell 3)");
    expect(rows[1].querySelector<HTMLElement>('.dlw-JobRow-why')!.hidden).toBe(true);
    // start–end in local time: the same instants, whatever the time zone
    const clock = (s: number): string => new Date(s * 1000).toTimeString().slice(0, 8);
    expect(rows[0].querySelector('.dlw-JobRow-meta')!.textContent).toContain(`${clock(1000)}–${clock(1075)}`);
    expect(rows[1].querySelector('.dlw-JobRow-meta')!.textContent).toContain(`${clock(1000)}–now`);
    list.dispose();
  });
});

describe('JobsList tags', () => {
  it('shows tags on the row and filters by #tag exactly or by text', () => {
    const list = new JobsList({ virtualize: false, onAction: () => undefined, now: () => 2000 });
    document.body.appendChild(list.node);
    list.setJobs([{ ...job(1), tags: ['baseline'] }, { ...job(2), tags: ['baseline-2'] }, job(3)]);
    list.render();
    expect(list.node.querySelector('.dlw-JobRow-tags')!.textContent).toBe('#baseline');
    list.setFilter('#baseline');
    expect(list.count).toBe(1);
    list.setFilter('baseline');
    expect(list.count).toBe(2);
    list.setFilter('');
    expect(list.count).toBe(3);
    list.dispose();
  });

  it("groups a sweep's trials under one row per experiment, with its state and best trial", () => {
    const list = new JobsList({ onAction: () => undefined, now: () => 2000 });
    document.body.appendChild(list.node);
    const trials = Array.from({ length: 50 }, (_, i) => ({
      ...job(i, i < 2 ? 'Running' : 'Succeeded'),
      name: `sweep-${String(i).padStart(3, '0')}`,
      experiment: 'sweep'
    }));
    list.setJobs([job(900), ...trials.reverse(), job(901)]);
    list.render();
    const groups = list.node.querySelectorAll<HTMLElement>('.dlw-JobGroup');
    expect(groups.length).toBe(1);
    const group = groups[0];
    expect(group.dataset.experiment).toBe('sweep');
    expect(group.getAttribute('aria-expanded')).toBe('false');
    expect(group.textContent).toContain('50 trials (2 running, 48 succeeded)');
    expect(list.node.querySelectorAll('.dlw-JobRow').length).toBe(2); // the other jobs only
    list.setExperiments([{ name: 'sweep', state: 'Running', best: 'sweep-017' }]);
    list.render();
    expect(group.textContent).toContain('best: sweep-017');

    group.click();
    list.render();
    const rows = [...list.node.querySelectorAll<HTMLElement>('.dlw-JobRow')];
    expect(rows.length).toBeGreaterThan(2);
    const names = rows.sort((a, b) => Number(a.dataset.index) - Number(b.dataset.index)).map(r => r.dataset.job);
    expect(names.slice(0, 3)).toEqual(['job-900', 'sweep-000', 'sweep-001']); // in trial order, under the group
    expect(list.node.querySelector('.dlw-JobRow[data-job="sweep-000"]')!.classList.contains('dlw-mod-trial')).toBe(
      true
    );
    group.click();
    list.render();
    expect(list.node.querySelectorAll('.dlw-JobRow').length).toBe(2);
    list.dispose();
  });

  it('collects the checked jobs for Compare, and forgets a deleted one', () => {
    const selections: string[][] = [];
    const list = new JobsList({ onAction: () => undefined, onSelect: s => selections.push(s), now: () => 2000 });
    document.body.appendChild(list.node);
    list.setJobs([job(1), job(2), job(3)]);
    list.render();
    for (const n of ['job-3', 'job-1']) {
      const box = list.node.querySelector<HTMLInputElement>(`.dlw-JobRow[data-job="${n}"] .dlw-JobRow-select`)!;
      box.click();
    }
    expect(list.selection).toEqual(['job-3', 'job-1']); // in the order checked: the Compare tab's columns
    expect(selections[selections.length - 1]).toEqual(['job-3', 'job-1']);
    list.setJobs([job(1), job(2)]);
    expect(list.selection).toEqual(['job-1']);
    expect(selections[selections.length - 1]).toEqual(['job-1']);
    list.dispose();
  });
});
