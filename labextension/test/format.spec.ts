import {
  formatDuration,
  gpuLabel,
  gpuSummary,
  isFinished,
  jobDuration,
  paramToText,
  RankMerger,
  textToParam,
  waitingText
} from '../src/format';

describe('formatDuration', () => {
  it('reads like a person would say it', () => {
    expect(formatDuration(null)).toBe('-');
    expect(formatDuration(9.7)).toBe('9s');
    expect(formatDuration(75)).toBe('1m 15s');
    expect(formatDuration(3725)).toBe('1h 2m');
    expect(formatDuration(90000)).toBe('1d 1h');
  });

  it('counts a running job from its start and freezes a finished one', () => {
    expect(jobDuration({ started: 100, finished: null }, 160)).toBe(60);
    expect(jobDuration({ started: 100, finished: 130 }, 999)).toBe(30);
    expect(jobDuration({ started: null, finished: null }, 999)).toBeNull();
  });
});

describe('job labels', () => {
  it('totals GPUs over workers', () => {
    expect(gpuLabel({ gpus: 2, workers: 4 })).toBe('8 GPUs');
    expect(gpuLabel({ gpus: 1, workers: 1 })).toBe('1 GPU');
    expect(gpuLabel({ gpus: 0, workers: 3 })).toBe('CPU');
  });

  it('knows the finished states', () => {
    expect(isFinished('Succeeded')).toBe(true);
    expect(isFinished('Cancelled')).toBe(true);
    expect(isFinished('Running')).toBe(false);
  });
});

describe('parameters', () => {
  it('shows strings bare and other values as JSON', () => {
    expect(paramToText('adam')).toBe('adam');
    expect(paramToText(0.05)).toBe('0.05');
    expect(paramToText([1, 2])).toBe('[1,2]');
    expect(paramToText(true)).toBe('true');
  });

  it('keeps the type of the notebook default', () => {
    expect(textToParam('lr', '0.1', 0.05)).toBe(0.1);
    expect(textToParam('epochs', '3', 12)).toBe(3);
    expect(textToParam('opt', '1e-3', 'adam')).toBe('1e-3');
    expect(textToParam('flag', 'False', true)).toBe(false);
    expect(textToParam('sizes', '[64, 32]', [1])).toEqual([64, 32]);
    expect(textToParam('x', 'None', null)).toBeNull();
    expect(textToParam('x', 'anything', null)).toBe('anything');
  });

  it('names the parameter when the text does not fit its type', () => {
    expect(() => textToParam('epochs', 'ten', 12)).toThrow('parameter epochs: "ten" is not a valid number');
    expect(() => textToParam('flag', '3', true)).toThrow('parameter flag: expected a boolean');
  });
});

describe('gpuSummary', () => {
  it('says there is no GPU', () => {
    expect(gpuSummary([])).toBe('No GPU');
  });

  it('averages utilization and sums memory', () => {
    const g = (u: number | null, used: number) => ({
      utilization_pct: u,
      memory_used_mib: used,
      memory_total_mib: 81920
    });
    expect(gpuSummary([g(50, 10240)])).toBe('GPU 50% · 10.0/80 GiB');
    expect(gpuSummary([g(20, 1024), g(null, 1024), g(60, 0)])).toBe('3 GPUs 40% · 2.0/240 GiB');
  });
});

describe('RankMerger', () => {
  it('interleaves whole lines of the ranks as they arrive, never splicing a line into another', () => {
    const m = new RankMerger();
    const out = [m.feed(0, 'epoch 1\nepo'), m.feed(1, 'rank 1 up\n'), m.feed(0, 'ch 2\n')].join('');
    expect(out).toBe('[0] epoch 1\n[1] rank 1 up\n[0] epoch 2\n');
    expect(m.feed(1, 'loss 0.3')).toBe('');
    expect(m.flush()).toBe('[1] loss 0.3\n');
    m.clear();
    expect(m.feed(0, 'a\nb\n')).toBe('[0] a\n[0] b\n');
  });
});

describe('waitingText', () => {
  it('says what an empty log pane waits for', () => {
    expect(waitingText({ state: 'Running', world_size: 2 }, undefined)).toBe('starting 2 ranks… no output yet');
    expect(waitingText({ state: 'Running', world_size: 2 }, 1)).toBe('rank 1: starting 2 ranks… no output yet');
    expect(waitingText({ state: 'Queued', world_size: 1, message: 'waiting for 2 GPUs' }, 0)).toBe(
      'Queued: waiting for 2 GPUs. The log starts when the job runs.'
    );
    expect(waitingText({ state: 'Succeeded', world_size: 1 }, 0)).toBe(
      'no output: the job ended (Succeeded) without writing to this log'
    );
  });
});
