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
    expect(rows[0].querySelector('.dlw-JobRow-meta')!.textContent).toBe('1m 5s · 2 GPUs · 2×job');

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
});
