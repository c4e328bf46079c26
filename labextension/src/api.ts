/**
 * Client of the server extension's REST API (``{base_url}/dlw/api/``).
 *
 * Requests go through ServerConnection so they carry JupyterLab's token and XSRF header. Errors
 * become ``DLWApiError`` with the server's one-line message.
 */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { SSEParser } from './sse.js';

import type { ICompare } from './compareview.js';
import type { IExperimentInfo } from './jobslist.js';
import type { IGpuReport, IJob, ILogChunk, IOptions, IParameters, ISubmitRequest, ISweepRequest } from './types.js';

export type { IGpu, IGpuReport, IJob, ILogChunk, INamed, IOptions, ISubmitRequest } from './types.js';

export class DLWApiError extends Error {
  constructor(
    message: string,
    readonly status: number
  ) {
    super(message);
  }
}

const settings = (): ServerConnection.ISettings => ServerConnection.makeSettings();

function url(path: string, query?: Record<string, string | number | undefined>): string {
  const s = settings();
  let u = URLExt.join(s.baseUrl, 'dlw', 'api', path);
  const params = Object.entries(query ?? {}).filter(([, v]) => v !== undefined && v !== '');
  if (params.length) {
    u += '?' + params.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`).join('&');
  }
  return u;
}

export async function request<T>(
  path: string,
  init: RequestInit = {},
  query?: Record<string, string | number | undefined>
): Promise<T> {
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url(path, query), init, settings());
  } catch (err) {
    throw new DLWApiError(`cannot reach the Jupyter server: ${(err as Error).message}`, 0);
  }
  const text = await response.text();
  let data: any = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const message = data?.message || `${response.status} ${response.statusText}`;
    throw new DLWApiError(message, response.status);
  }
  return data as T;
}

export const listJobs = async (): Promise<IJob[]> => (await request<{ jobs: IJob[] }>('jobs')).jobs;
export const getJob = (name: string): Promise<IJob> => request<IJob>(`jobs/${name}`);
export const cancelJob = (name: string): Promise<IJob> =>
  request<IJob>(`jobs/${name}/cancel`, { method: 'POST', body: '{}' });
export const rerunJob = (name: string): Promise<IJob> =>
  request<IJob>(`jobs/${name}/rerun`, { method: 'POST', body: '{}' });
export const deleteJob = (name: string): Promise<void> => request<void>(`jobs/${name}`, { method: 'DELETE' });
/** The job's output folder as the file browser names it (linked into the root when it lies outside). */
export const outputPath = async (name: string): Promise<string> =>
  (await request<{ path: string }>(`jobs/${name}/output`, { method: 'POST', body: '{}' })).path;
/** Pages the browser opens itself (a tab, a download): its login cookie authenticates them. */
export const htmlUrl = (name: string): string => url(`jobs/${name}/html`);
export const downloadUrl = (name: string): string => url(`jobs/${name}/download`);
export const submitJob = (body: ISubmitRequest): Promise<IJob> =>
  request<IJob>('jobs', { method: 'POST', body: JSON.stringify(body) });
export const getGpus = (): Promise<IGpuReport> => request('gpus');
export const getOptions = (): Promise<IOptions> => request('options');
/** Every experiment (sweep) of the user, without curves: what the Jobs panel's group rows say. */
export const listExperiments = async (): Promise<IExperimentInfo[]> =>
  (await request<{ experiments: IExperimentInfo[] }>('experiments')).experiments;
/** Start a sweep: one experiment, each point of the grid an ordinary job (``dlw sweep``). */
export const submitSweep = (body: ISweepRequest): Promise<{ name: string; trials: unknown[] }> =>
  request('experiments', { method: 'POST', body: JSON.stringify(body) });
/** Jobs side by side, as ``dlw compare`` shows them. */
export const compareJobs = (names: string[]): Promise<ICompare> => request('compare', {}, { jobs: names.join(',') });
export const getParameters = (path: string): Promise<IParameters> => request('parameters', {}, { path });

export interface IFollowHandlers {
  onChunk: (chunks: ILogChunk[]) => void;
  onEnd: (state: string) => void;
  onError: (message: string) => void;
}

/**
 * Follow one rank's log (or all ranks' with rank undefined) from ``offset``; resolves when the stream
 * closes. Returns whether the server said the log is complete (``end``), so the caller knows whether
 * to reconnect from its last offset.
 */
export async function followLogs(
  name: string,
  rank: number | undefined,
  offset: number,
  handlers: IFollowHandlers,
  signal: AbortSignal
): Promise<boolean> {
  const response = await ServerConnection.makeRequest(
    url(`jobs/${name}/logs`, { follow: 1, rank, offset: offset || undefined }),
    { signal, headers: { Accept: 'text/event-stream' } },
    settings()
  );
  if (!response.ok || !response.body) {
    let message = `${response.status} ${response.statusText}`;
    try {
      message = (await response.json()).message || message;
    } catch {
      // not JSON: keep the status line
    }
    throw new DLWApiError(message, response.status);
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const parser = new SSEParser();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) {
      return false;
    }
    const events = parser.feed(decoder.decode(value, { stream: true }));
    const chunks: ILogChunk[] = [];
    for (const ev of events) {
      if (ev.event === 'log') {
        chunks.push(JSON.parse(ev.data));
      } else if (ev.event === 'end') {
        if (chunks.length) {
          handlers.onChunk(chunks);
        }
        handlers.onEnd(JSON.parse(ev.data).state);
        return true;
      } else if (ev.event === 'error') {
        if (chunks.length) {
          handlers.onChunk(chunks);
        }
        handlers.onError(JSON.parse(ev.data).message);
        return true;
      }
    }
    if (chunks.length) {
      handlers.onChunk(chunks);
    }
  }
}
