/**
 * "Train as job": save the notebook, open the dialog prefilled from its parameters cell and the
 * server's options, submit (a job, or with "Sweep" an experiment), and show it in the panel. A value
 * the server refuses reopens the dialog with what the user typed and the server's one-line message.
 */

import { Dialog, Notification, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import type { NotebookPanel } from '@jupyterlab/notebook';

import { getOptions, getParameters, submitJob, submitSweep } from './api.js';
import { ITrainRequest, sweepRequest, TrainForm } from './dialog.js';
import type { ISettings } from './settings.js';
import type { IOptions, IParameters } from './types.js';

const FALLBACK_ENGINES = ['job', 'volcano', 'pytorchjob'];

export async function trainNotebook(
  current: NotebookPanel,
  settings: ISettings,
  onSubmitted: (name: string) => Promise<void>
): Promise<void> {
  await current.context.ready;
  if (current.context.model.dirty) {
    await current.context.save(); // the job runs the notebook as saved on disk
  }
  const path = current.context.path;
  const [options, params] = await Promise.all([
    getOptions().catch((err): IOptions => ({
      engines: FALLBACK_ENGINES,
      volumes: [],
      queues: [],
      priorityClasses: [],
      profiles: [],
      reason: (err as Error).message
    })),
    getParameters(path).catch((err): IParameters => ({ parameters: {}, reason: (err as Error).message }))
  ]);
  let previous: ITrainRequest | undefined;
  for (;;) {
    const form = new TrainForm(path, params.parameters, options, settings, previous, params.reason, params.types);
    const result = await showDialog({
      title: 'Train as job',
      body: form,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Submit' })],
      focusNodeSelector: 'input[name="name"]'
    });
    if (!result.button.accept || !result.value) {
      return;
    }
    previous = result.value;
    const problem = form.problem; // Submit is disabled while there is one; this is a second guard
    if (problem) {
      await showErrorMessage('Check the form', problem);
      continue;
    }
    try {
      if (previous.sweep) {
        const exp = await submitSweep(sweepRequest(previous));
        Notification.success(`Started experiment ${exp.name}: ${exp.trials.length} trials`, { autoClose: 4000 });
        await onSubmitted(exp.name);
        return;
      }
      const job = await submitJob(previous);
      Notification.success(`Submitted ${job.name}`, { autoClose: 4000 });
      for (const note of job.notes ?? []) {
        Notification.warning(`${job.name}: ${note}`, { autoClose: 8000 });
      }
      await onSubmitted(job.name);
      return;
    } catch (err) {
      // Keep what the user typed: the dialog opens again with the server's message fixed in mind.
      await showErrorMessage(
        previous.sweep ? 'Cannot start the sweep' : 'Cannot submit the job',
        (err as Error).message
      );
    }
  }
}
