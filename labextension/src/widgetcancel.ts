/**
 * The %dlw widget's Cancel button, answered by the front end: while ``%dlw train --wait`` blocks the
 * kernel, a click sent to the kernel would wait for the job to end. The widget marks its button with
 * ``dlw-widget-cancel`` and ``dlw-job-<name>`` (``dlw_magic.widget.rest_cancel_classes``); a capture
 * listener takes the click before ipywidgets does and cancels through the server's REST API. The
 * kernel's own poll then shows the job Cancelled and the waiting cell ends.
 */

import { Notification } from '@jupyterlab/apputils';

import { cancelJob, DLWApiError } from './api.js';

const BUTTON = 'dlw-widget-cancel';
const JOB_PREFIX = 'dlw-job-';
// Set when the server does not know the job (the magic used another backend): the click then goes
// to the kernel as ipywidgets sends it.
const TO_KERNEL = 'dlwToKernel';

/** The job a widget Cancel button stands for, or null for any other element. */
export function widgetCancelJob(el: Element | null): string | null {
  const button = el?.closest(`.${BUTTON}`);
  if (!button) {
    return null;
  }
  const cls = [...button.classList].find(c => c.startsWith(JOB_PREFIX));
  return cls ? cls.slice(JOB_PREFIX.length) : null;
}

async function cancel(button: HTMLButtonElement, name: string): Promise<void> {
  const label = button.lastChild;
  const before = label?.textContent ?? null;
  button.disabled = true;
  if (label && label.nodeType === Node.TEXT_NODE) {
    label.textContent = 'Cancelling';
  }
  try {
    await cancelJob(name);
  } catch (err) {
    if (label && before !== null) {
      label.textContent = before;
    }
    button.disabled = false;
    if (err instanceof DLWApiError && err.status === 404) {
      button.dataset[TO_KERNEL] = '1';
      button.click();
      return;
    }
    Notification.error(`Cannot cancel ${name}: ${(err as Error).message}`, { autoClose: 8000 });
  }
}

function onClick(ev: MouseEvent): void {
  const target = ev.target as Element | null;
  const name = widgetCancelJob(target);
  const button = target?.closest<HTMLButtonElement>(`.${BUTTON}`);
  if (!name || !button || button.disabled || button.dataset[TO_KERNEL]) {
    return;
  }
  ev.stopImmediatePropagation();
  ev.preventDefault();
  void cancel(button, name);
}

/** Listen for widget Cancel clicks in the whole page (widgets live in notebooks and output views). */
export function watchWidgetCancel(doc: Document = document): () => void {
  doc.addEventListener('click', onClick, true);
  return () => doc.removeEventListener('click', onClick, true);
}
