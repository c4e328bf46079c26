/** Shapes of the REST API's JSON (see docs/labextension.md). */

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
}

export interface ISubmitRequest {
  notebook?: string;
  spec?: string;
  name?: string;
  workers?: number;
  gpus?: number;
  engine?: string;
  queue?: string;
  priority?: string | number;
  parameters?: Record<string, unknown>;
  volumes?: string[];
  files?: string[];
}

export interface ILogChunk {
  rank: number;
  text: string;
  offset: number;
}
