/** The extension's settings (schema/plugin.json) as one plain object, with defaults. */

import type { ISettingRegistry } from '@jupyterlab/settingregistry';

import type { ITrainDefaults } from './dialog.js';

export const PLUGIN_ID = 'dlw-labextension:plugin';

export interface ISettings extends ITrainDefaults {
  refreshInterval: number;
  gpuRefreshInterval: number;
}

export const DEFAULTS: ISettings = {
  refreshInterval: 2,
  gpuRefreshInterval: 5,
  workers: 1,
  gpus: 0,
  engine: 'job',
  queue: '',
  priority: ''
};

export function readSettings(s: ISettingRegistry.ISettings | null): ISettings {
  if (!s) {
    return { ...DEFAULTS };
  }
  const c = s.composite as Record<string, any>;
  return {
    refreshInterval: c.refreshInterval ?? DEFAULTS.refreshInterval,
    gpuRefreshInterval: c.gpuRefreshInterval ?? DEFAULTS.gpuRefreshInterval,
    workers: c.defaultWorkers ?? DEFAULTS.workers,
    gpus: c.defaultGpus ?? DEFAULTS.gpus,
    engine: c.defaultEngine ?? DEFAULTS.engine,
    queue: c.defaultQueue ?? DEFAULTS.queue,
    priority: c.defaultPriority ?? DEFAULTS.priority
  };
}

/** Load the settings, call ``apply`` now and on every change; defaults when there is no registry. */
export async function watchSettings(
  registry: ISettingRegistry | null,
  apply: (settings: ISettings) => void
): Promise<void> {
  if (!registry) {
    return;
  }
  try {
    const loaded = await registry.load(PLUGIN_ID);
    apply(readSettings(loaded));
    loaded.changed.connect(() => apply(readSettings(loaded)));
  } catch (err) {
    console.warn('dlw: cannot load settings', err);
  }
}
