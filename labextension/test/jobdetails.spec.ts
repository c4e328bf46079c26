import { JobDetails } from '../src/jobdetails';
import type { IJob } from '../src/types';

const BASE: IJob = {
  name: 'digits-1',
  user: 'u',
  state: 'Running',
  backend: 'local',
  engine: 'job',
  workers: 1,
  world_size: 1,
  gpus: 0,
  created: 0,
  started: 0,
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

describe('JobDetails', () => {
  it('charts the metrics, shows the history and opens the executed notebook', () => {
    const opened: string[] = [];
    const details = new JobDetails(j => opened.push(j.executed_notebook_path!));
    details.update(BASE); // an older server: no metrics, no notebook, no history
    const button = details.node.querySelector<HTMLButtonElement>('.dlw-JobDetails-notebook')!;
    expect(button.disabled).toBe(true);
    expect(details.charts.node.hidden).toBe(true);

    details.update({
      ...BASE,
      state: 'Succeeded',
      attempt: 2,
      executed_notebook_path: 'dlw-outputs/digits-1/executed.ipynb',
      metrics: {
        loss: [
          [0, 2.1, 1],
          [1, 0.7, 2]
        ],
        accuracy: [[1, 0.93, 2]]
      },
      history: [
        { attempt: 1, preemptedAt: 100, by: 'urgent-1', resumedAt: 200, resumedFrom: '/out', checkpoint: 'ckpt-3.pt' },
        { attempt: 2, preemptedAt: 300, by: 'urgent-2', resumedAt: null, resumedFrom: null, checkpoint: null }
      ]
    });
    expect(details.node.querySelector('.dlw-JobDetails-info')!.textContent).toBe('Succeeded · attempt 2');
    const history = details.node.querySelector<HTMLElement>('.dlw-JobDetails-history')!;
    expect(history.hidden).toBe(false);
    const lines = history.textContent!.split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^preempted .* by urgent-1 \(attempt 1\); resumed .* from \/out \(ckpt-3\.pt\)$/);
    expect(lines[1]).toMatch(/^preempted .* by urgent-2 \(attempt 2\)$/);
    expect([...details.node.querySelectorAll('.dlw-Chart')].map(c => c.getAttribute('data-metric'))).toEqual([
      'accuracy',
      'loss'
    ]);
    button.click();
    expect(opened).toEqual(['dlw-outputs/digits-1/executed.ipynb']);
  });

  it('says why a queued job waits', () => {
    const details = new JobDetails(() => undefined);
    details.update({
      ...BASE,
      state: 'Queued',
      reason: 'Preempted',
      message: 'preempted by urgent-1; 1st in the queue'
    });
    expect(details.node.querySelector('.dlw-JobDetails-info')!.textContent).toBe(
      'Queued · preempted by urgent-1; 1st in the queue'
    );
  });
});
