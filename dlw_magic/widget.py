"""What ``%dlw train`` shows: a live job widget in Jupyter kernels, printed lines everywhere else.

The widget polls ``core.get_job`` and ``core.logs(name, rank=r, offset=...)`` from a daemon thread about
once a second and stops when the job has finished. It only reads through the core: the job runs on
whatever happens to this kernel (interrupt, restart), and ``%dlw status``/``%dlw logs`` pick it up again.
"""

from __future__ import annotations

import contextlib
import html
import sys
import threading
from collections import deque
from typing import TYPE_CHECKING, Any, TextIO

from . import core
from . import format as fmt
from .errors import DLWError, NotFound

if TYPE_CHECKING:
    from .backends import Backend
    from .types import JobInfo

POLL_SECONDS = 1.0
TAIL_LINES = 15
MAX_FAILURES = 5  # consecutive failed polls before the widget gives up (the job is not affected)
MAX_TAIL_RANKS = 8  # the widget reads each rank's log every poll: a 512-rank job would flood the backend
_COLORS = {"Queued": "#6b7280", "Running": "#2563eb", "Succeeded": "#16a34a", "Failed": "#dc2626",
           "Cancelled": "#b45309"}


def state_line(job: JobInfo) -> str:
    """``digits-ddp-x7k2q: Running for 0:00:12 (2 worker(s), local)``, hints as ``%dlw`` commands."""
    return fmt.state_line(job, notebook=True)


class LogTail:
    """The logs of the first ranks read incrementally by byte offset, split into lines (``[rank N]``
    prefixed when the job has several ranks); the last ``size`` lines are kept."""

    def __init__(self, name: str, world_size: int, backend: Backend | None, size: int = 200) -> None:
        self.name = name
        self.world_size = max(world_size, 1)
        self.ranks = min(self.world_size, MAX_TAIL_RANKS)
        self.backend = backend
        self.offsets = [0] * self.ranks
        self.partial = [""] * self.ranks
        self.lines: deque[str] = deque(maxlen=size)

    def _prefix(self, rank: int) -> str:
        return fmt.rank_prefix(rank, self.world_size)

    def poll(self) -> None:
        """Read what every rank wrote since the last call."""
        for rank in range(self.ranks):
            for chunk in core.logs(self.name, rank=rank, offset=self.offsets[rank], backend=self.backend):
                self.offsets[rank] = chunk.offset
                *complete, self.partial[rank] = (self.partial[rank] + chunk.text).split("\n")
                self.lines.extend(self._prefix(rank) + line for line in complete)

    def tail(self, n: int = TAIL_LINES) -> list[str]:
        pending = [self._prefix(r) + p for r, p in enumerate(self.partial) if p]
        return (list(self.lines) + pending)[-n:]


class JobWidget:
    """Live state, elapsed time, log tail and a Cancel button for one job."""

    def __init__(self, job: JobInfo, backend: Backend | None = None, *, show_logs: bool = True,
                 cell_busy: bool = False, tail_lines: int = TAIL_LINES) -> None:
        import ipywidgets as w

        self.job = job
        self.backend = backend
        self.show_logs = show_logs
        self.tail_lines = tail_lines
        self.logs = LogTail(job.name, job.world_size, backend)
        self.error: str | None = None
        # While a cell blocks on the job (--wait), the kernel handles no widget events: the button is
        # disabled then rather than queueing a click that would fire after the job ended.
        self.cell_busy = cell_busy
        self.done = threading.Event()
        self._stop = threading.Event()
        # The title may be long (state, progress, an error): it shrinks and wraps, the button never does.
        self.title = w.HTML(layout=w.Layout(flex="1 1 auto", min_width="0"))
        self.cancel_button = w.Button(description="Cancel", button_style="danger", icon="stop",
                                      disabled=cell_busy, layout=w.Layout(width="auto", flex="0 0 auto"))
        self.cancel_button.on_click(self._on_cancel)
        self.log_view = w.HTML(layout=w.Layout(max_height="22em", overflow="auto"))
        header = w.HBox([self.title, self.cancel_button], layout=w.Layout(align_items="center"))
        self.box = _job_box(self, [header, self.log_view] if show_logs else [header])
        self.render()

    def start(self) -> JobWidget:
        threading.Thread(target=self._run, name=f"dlw-widget-{self.job.name}", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        failures = 0
        try:
            while not self._stop.is_set():
                try:
                    self.job = core.get_job(self.job.name, backend=self.backend)
                    if self.show_logs:
                        self.logs.poll()  # after get_job: a finished job's logs are complete here
                    failures, self.error = 0, None
                except NotFound as err:  # deleted behind our back: nothing left to watch
                    self.error = str(err)
                    break
                except Exception as err:  # a flaky API server: say so, keep trying a little while
                    failures += 1
                    self.error = str(err) if isinstance(err, DLWError) else f"{type(err).__name__}: {err}"
                    if failures >= MAX_FAILURES:
                        break
                if self.job.state.finished:
                    break
                self.render()
                self._stop.wait(POLL_SECONDS * (1 + failures))
        finally:
            self.render()
            self.done.set()

    def _on_cancel(self, _button: Any) -> None:
        # core.cancel waits for the processes to end: do it off the kernel's thread, which draws the UI
        self.cancel_button.disabled = True
        self.cancel_button.description = "Cancelling"
        threading.Thread(target=self._cancel, name=f"dlw-cancel-{self.job.name}", daemon=True).start()

    def _cancel(self) -> None:
        try:
            self.job = core.cancel(self.job.name, backend=self.backend)
        except DLWError as err:
            self.error = str(err)
            self._refresh_state()  # it may have ended meanwhile: the button must show that, not re-enable
        except Exception as err:  # never a traceback from a button
            self.error = f"{type(err).__name__}: {err}"
            self._refresh_state()
        self.cancel_button.description = "Cancel"
        self.render()

    def _refresh_state(self) -> None:
        with contextlib.suppress(Exception):  # the error already shown is the one that matters
            self.job = core.get_job(self.job.name, backend=self.backend)

    def render(self) -> None:
        state = self.job.state.value
        color = _COLORS.get(state, "#374151")
        error = f' <span style="color:#dc2626">{html.escape(self.error)}</span>' if self.error else ""
        self.title.value = (
            f'<b>{html.escape(self.job.name)}</b> <span style="color:{color};font-weight:bold">{state}</span>'
            f' <span style="color:#6b7280">{html.escape(fmt.progress(self.job, notebook=True))}</span>{error}'
        )
        self.cancel_button.disabled = self.job.state.finished or self.cell_busy
        self.cancel_button.tooltip = (
            "interrupt the kernel to stop waiting (the job keeps running), then Cancel"
            if self.cell_busy else f"stop every process of {self.job.name}")
        if self.show_logs:
            tail = self.logs.tail(self.tail_lines)
            body = html.escape("\n".join(tail)) if tail else "(no output yet)"
            if self.logs.ranks < self.logs.world_size:
                body += html.escape(f"\n(ranks 0-{self.logs.ranks - 1} shown; %dlw logs {self.job.name} "
                                    "--rank R for the others)")
            self.log_view.value = f'<pre style="margin:0;font-size:85%;line-height:1.3">{body}</pre>'

    def text(self) -> str:
        return state_line(self.job) + (f" ({self.error})" if self.error else "")


def _job_box(owner: JobWidget, children: list[Any]) -> Any:
    """A VBox whose text/plain form is the job's state line, for frontends that cannot draw widgets."""
    import ipywidgets as w

    class JobBox(w.VBox):
        def _repr_mimebundle_(self, **kwargs: Any) -> Any:
            data = super()._repr_mimebundle_(**kwargs)
            if data:
                data["text/plain"] = owner.text()
            return data

    return JobBox(children)


def widgets_available(shell: Any) -> bool:
    """True in a Jupyter kernel (its comms reach a frontend) with ipywidgets installed."""
    if shell is None or getattr(shell, "kernel", None) is None:
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def show_job(job: JobInfo, backend: Backend | None, shell: Any, *, wait: bool = False,
             follow: bool = False, out: TextIO | None = None) -> JobInfo:
    """Show a just-submitted job: the live widget in a kernel, else its state line.

    With ``wait`` or ``follow`` it returns only once the job has finished, then prints the final state;
    ``follow`` also prints every log line as it is written. An interrupt stops the watching, never the job.
    """
    out = out or sys.stdout
    view: JobWidget | None = None
    if widgets_available(shell):
        from IPython.display import display

        view = JobWidget(job, backend, show_logs=not follow, cell_busy=wait or follow).start()
        display(view.box)
    else:
        out.write(state_line(job) + "\n")
    if not (wait or follow):
        if view is None:
            out.write(f"watch it with: %dlw status {job.name} | %dlw logs {job.name} -f | "
                      f"%dlw cancel {job.name}\n")
        out.flush()
        return job
    try:
        job = _watch(job, backend, out, follow=follow, print_states=view is None)
        if view is not None:
            view.done.wait(3 * POLL_SECONDS)  # let the widget show the final state before the cell ends
    except KeyboardInterrupt:
        out.write(f"stopped watching; {job.name} keeps running (%dlw cancel {job.name} stops it)\n")
        return job
    finally:
        if view is not None:
            view.cell_busy = False
            view.render()
    out.write(state_line(job) + "\n")
    out.flush()
    return job


def _watch(
    job: JobInfo, backend: Backend | None, out: TextIO, *, follow: bool, print_states: bool
) -> JobInfo:
    last = job.state

    def line(text: str) -> None:
        out.write(text)
        out.flush()

    def changed(now: JobInfo) -> None:
        nonlocal last
        if print_states and not follow and now.state != last and not now.state.finished:
            out.write(state_line(now) + "\n")
            out.flush()
        last = now.state

    return core.watch(job.name, backend, follow=follow, on_line=line, on_change=changed, world_size=job.world_size)
