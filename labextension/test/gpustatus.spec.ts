import { Notification } from '@jupyterlab/apputils';

import { getGpus } from '../src/api';
import { GpuStatus } from '../src/gpustatus';
import type { IGpuReport } from '../src/types';

jest.mock('../src/api', () => ({ getGpus: jest.fn() }));
// @jupyterlab/apputils is ESM-only (jest cannot load it): a stand-in keeps the shown notifications.
jest.mock('@jupyterlab/apputils', () => {
  const shown = new Map<string, { type: string; message: string; autoClose: unknown }>();
  let next = 0;
  return {
    Notification: {
      shown,
      warning: (message: string, opts: { autoClose?: unknown } = {}) => {
        const id = `n${++next}`;
        shown.set(id, { type: 'warning', message, autoClose: opts.autoClose });
        return id;
      },
      dismiss: (id?: string) => (id === undefined ? shown.clear() : shown.delete(id))
    }
  };
});
const shown = (Notification as unknown as { shown: Map<string, any> }).shown;

const reply = getGpus as jest.MockedFunction<typeof getGpus>;

const GPU = {
  index: 0,
  name: 'H100',
  uuid: 'GPU-0',
  memory_total_mib: 81920,
  memory_used_mib: 0,
  utilization_pct: 0,
  temperature_c: 30
};

function report(idle: { message: string; idleSince: number; stopAt: number | null } | null): IGpuReport {
  return { gpus: [], reason: 'no GPU in this pod', server: { gpus: [GPU], jobs: ['train-1'], idle } };
}

const warnings = (): string[] =>
  [...shown.values()].filter((n: any) => n.type === 'warning' && n.autoClose === false).map((n: any) => n.message);

describe('GpuStatus', () => {
  afterEach(() => Notification.dismiss());

  it('warns once per idle episode, as text, and dismisses the warning when the GPUs are used again', async () => {
    const status = new GpuStatus(5);
    const message = '<b>train-1</b> left 1 GPU idle for 10 min; it stops at 12:00';
    reply.mockResolvedValue(report({ message, idleSince: 100, stopAt: 700 }));
    await status.refresh();
    expect(status.node.textContent!.startsWith('⚠ ')).toBe(true);
    expect(status.node.classList.contains('dlw-GpuStatus-idle')).toBe(true);
    expect(status.node.title.split('\n')[0]).toBe(message);
    expect(status.node.dataset.gpus).toBe('1'); // the server's GPUs when this pod has none
    expect(warnings()).toEqual([message]);
    expect(status.node.querySelector('b')).toBeNull();

    await status.refresh(); // same episode: no second warning
    expect(warnings()).toEqual([message]);

    reply.mockResolvedValue(report({ message: 'now stops at 12:05', idleSince: 100, stopAt: 1000 }));
    await status.refresh();
    expect(warnings()).toEqual(['now stops at 12:05']);

    reply.mockResolvedValue(report(null));
    await status.refresh();
    expect(warnings()).toEqual([]);
    expect(status.node.textContent!.startsWith('⚠')).toBe(false);
    expect(status.node.classList.contains('dlw-GpuStatus-idle')).toBe(false);
  });

  it("shows the user's GPU-hours against their budget, and marks the item past warnAt", async () => {
    const status = new GpuStatus(5);
    const line =
      'warning: alice used 17.0 of 20 GPU-hours this week (budget: group research); it resets 2026-12-07 00:00 UTC';
    const usage = {
      gpuHours: 17,
      budget: 20,
      period: 'week',
      resets: '2026-12-07T00:00:00+00:00',
      warning: true,
      exhausted: false,
      line
    };
    reply.mockResolvedValue({ ...report(null), usage });
    await status.refresh();
    expect(status.node.title.split('\n').pop()).toBe(line);
    expect(status.node.classList.contains('dlw-GpuStatus-budget')).toBe(true);
    expect(status.node.dataset.gpuHours).toBe('17.00');

    reply.mockResolvedValue({ ...report(null), usage: { ...usage, gpuHours: 2, warning: false, line: 'ok' } });
    await status.refresh();
    expect(status.node.classList.contains('dlw-GpuStatus-budget')).toBe(false);
  });
});
