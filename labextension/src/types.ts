/** Shapes of the REST API's JSON (see docs/labextension.md). */

import type { IJobOptions } from './generated/options.js';

export type { IJobOptions, IVolumeRef } from './generated/options.js';

export interface IJob {
  name: string;
  user: string;
  state: string;
  backend: string;
  engine: string;
  workers: number;
  world_size: number;
  gpus: number;
  created: number | null;
  started: number | null;
  finished: number | null;
  duration: number | null;
  exit_code: number | null;
  reason: string | null;
  message: string | null;
  output_dir: string | null;
  output_path: string | null;
  queue: string | null;
  priority: number | string | null;
  yaml?: string;
  /** Only on the single-job GET: ``{name: [[step, value, time], ...]}`` from ``log_metrics``. */
  metrics?: Record<string, [number, number, number?][]>;
  executed_notebook?: string | null;
  /** The executed notebook relative to the server root (via the dlw-outputs link), or null. */
  executed_notebook_path?: string | null;
  attempt?: number;
  history?: IPreemption[];
  /** Set at submit (dialog, ``dlw train --tag``); the panel's filter finds jobs by them. */
  tags?: string[];
  /** The experiment (sweep) whose trial this job is, or null. */
  experiment?: string | null;
  /** Only in the submit reply: what the conversion noted (a parameter the cell does not define, ...). */
  notes?: string[];
}

/** One preemption of a job (oldest first); ``resumed*`` once it runs again. Times in unix seconds. */
export interface IPreemption {
  attempt?: number;
  preemptedAt?: number | null;
  by?: string | null;
  resumedAt?: number | null;
  resumedFrom?: string | null;
  checkpoint?: string | null;
}

/** The server's GPUs left idle by the user's jobs (GET /dlw/api/gpus, ``server.idle``). */
export interface IGpuIdle {
  message: string;
  idleSince: number;
  stopAt: number | null;
}

/** The user's GPU-hours this budget period (``dlw usage``). */
export interface IGpuUsage {
  gpuHours: number;
  budget: number | null;
  period: string;
  resets: string;
  warning: boolean;
  exhausted: boolean;
  line: string;
}

export interface IGpuReport {
  gpus: IGpu[];
  reason: string | null;
  server?: { gpus: IGpu[]; jobs: string[]; idle: IGpuIdle | null };
  usage?: IGpuUsage | null;
}

export interface IGpu {
  index: number;
  name: string;
  uuid: string;
  memory_total_mib: number;
  memory_used_mib: number;
  utilization_pct: number | null;
  temperature_c: number | null;
}

export interface INamed {
  name: string;
  [key: string]: unknown;
}

export interface IOptions {
  engines: string[];
  volumes: INamed[];
  queues: INamed[];
  priorityClasses: INamed[];
  profiles: INamed[];
  backend?: string;
  reason: string | null;
  /** What the active backend cannot run, with why (the dialog leaves it out and says so). */
  unavailable?: Record<string, string>;
  /** The spec's rules the dialog checks as the user types (``dlw_magic.server.options.RULES``). */
  rules?: { name?: INameRule; tag?: INameRule };
}

export interface INameRule {
  pattern: string;
  maxLength: number;
  rule: string;
}

/** What a parameter takes (GET /dlw/api/parameters ``types``): "int", "float", "bool", "str", "list",
 * "tuple", "set", "dict", or null for any type; ``optional``: None is accepted too. */
export interface IParamType {
  type: string | null;
  optional: boolean;
  help?: string;
}

export interface IParameters {
  parameters: Record<string, unknown>;
  reason: string | null;
  types?: Record<string, IParamType>;
}

/** POST /dlw/api/jobs: a notebook (path under the root) or a spec (job YAML), plus the job options.
 * The options are generated from the Python model (dlw_magic.options.JobOptions). */
export interface ISubmitRequest extends IJobOptions {
  notebook?: string;
  spec?: string;
}

export interface ILogChunk {
  rank: number;
  text: string;
  offset: number;
}

/** POST /dlw/api/experiments from the dialog's Sweep choice: values per parameter (a grid), the job
 * options every trial shares, and the sweep's settings (``dlw sweep -p NAME=A,B --parallel K``). */
export interface ISweepRequest {
  notebook: string;
  name?: string;
  parameters: Record<string, unknown[]>;
  parallel?: number;
  metric?: string;
  goal?: 'max' | 'min';
  options?: IJobOptions;
}
