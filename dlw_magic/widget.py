"""What ``%dlw train`` shows: a live job widget in rich frontends, printed lines everywhere else.

The widget polls ``core.get_job`` and ``core.logs(name, rank=r, offset=...)`` from a daemon thread about
once a second and stops when the job has finished. It reads everything through the core, so the job keeps
running (and the widget can simply be shown again with ``%dlw status``/``%dlw logs``) whatever happens to
this kernel.
"""

from __future__ import annotations

import html
import sys
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, TextIO

from . import core
from .errors import DLWError

if TYPE_CHECKING:
    from .backends import Backend, JobInfo

POLL_SECONDS = 1.0
TAIL_LINES = 15
_COLORS = {"Queued": "#6b7280", "Running": "#2563eb", "Succeeded": "#16a34a", "Failed": "#dc2626",
           "Cancelled": "#b45309"}


def clock(seconds: float | None) -> str:
    """``75.3`` -> ``0:01:15``."""
    if seconds is None:
        return "-"
    s = max(int(seconds), 0)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def progress(job: JobInfo) -> str:
    """``for 0:00:12 (2 worker(s), local)`` plus the reason when there is one."""
    elapsed = job.duration if job.started else (time.time() - job.created if job.created else None)
    verb = "after" if job.state.finished else ("for" if job.started else "since")
    text = f"{verb} {clock(elapsed)} ({job.workers} worker(s), {job.backend})"
    if job.reason or job.message:
        text += " - " + ": ".join(p for p in (job.reason, job.message) if p)
    return text


def state_line(job: JobInfo) -> str:
    """``digits-ddp-x7k2q: Running for 0:00:12 (2 worker(s), local)``."""
    return f"{job.name}: {job.state.value} {progress(job)}"


class LogTail:
    """The last lines of every rank's log, read incrementally by byte offset."""

    def __init__(self, name: str, world_size: int, backend: Backend | None, size: int | None = 200) -> None:
        self.name = name
        self.world_size = max(world_size, 1)
        self.backend = backend
        self.offsets = [0] * self.world_size
        self.partial = [""] * self.world_size
        self.lines: deque[str] = deque(maxlen=size)

    def poll(self) -> bool:
        """Read what every rank wrote since the last call; True when something new arrived."""
        grew = False
        for rank in range(self.world_size):
            for chunk in core.logs(self.name, rank=rank, offset=self.offsets[rank], backend=self.backend):
                self.offsets[rank] = chunk.offset
                if not chunk.text:
                    continue
                grew = True
                *done, self.partial[rank] = (self.partial[rank] + chunk.text).split("\n")
                prefix = f"[rank {rank}] " if self.world_size > 1 else ""
                self.lines.extend(prefix + line for line in done)
        return grew

    def tail(self, n: int = TAIL_LINES) -> list[str]:
        pending = [(f"[rank {r}] " if self.world_size > 1 else "") + p for r, p in enumerate(self.partial) if p]
        return (list(self.lines) + pending)[-n:]


class JobWidget:
    """Live state, elapsed time, log tail and a Cancel button for one job."""

    def __init__(self, job: JobInfo, backend: Backend | None = None, tail_lines: int = TAIL_LINES) -> None:
        import ipywidgets as w

        self.job = job
        self.backend = backend
        self.tail_lines = tail_lines
        self.logs = LogTail(job.name, job.world_size, backend)
        self.error: str | None = None
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.title = w.HTML()
        self.cancel_button = w.Button(description="Cancel", button_style="danger", icon="stop",
                                      tooltip=f"dlw cancel {job.name}",
                                      layout=w.Layout(width="auto"))
        self.cancel_button.on_click(self._on_cancel)
        self.log_view = w.HTML(layout=w.Layout(max_height="22em", overflow="auto"))
        self.box = _TextFallbackBox(self, [w.HBox([self.title, self.cancel_button],
                                                  layout=w.Layout(align_items="center")), self.log_view])
        self.render()

    # -- thread
    def start(self) -> JobWidget:
        self._thread = threading.Thread(target=self._run, name=f"dlw-widget-{self.job.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has finished (and its logs were read); True when it did."""
        return self.done.wait(timeout)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.job = core.get_job(self.job.name, backend=self.backend)
                self.logs.poll()
                if self.job.state.finished:
                    self.logs.poll()  # the last lines written before the processes exited
                    break
                self.render()
                self._stop.wait(POLL_SECONDS)
        except DLWError as err:
            self.error = str(err)
        except Exception as err:  # a widget must never take the kernel down; show what broke instead
            self.error = f"{type(err).__name__}: {err}"
        finally:
            self.render()
            self.done.set()

    # -- view
    def _on_cancel(self, _button: Any) -> None:
        try:
            self.job = core.cancel(self.job.name, backend=self.backend)
        except DLWError as err:
            self.error = str(err)
        self.render()

    def render(self) -> None:
        state = self.job.state.value
        color = _COLORS.get(state, "#374151")
        name = html.escape(self.job.name)
        extra = f' <span style="color:#dc2626">{html.escape(self.error)}</span>' if self.error else ""
        self.title.value = (f'<b>{name}</b> <span style="color:{color};font-weight:bold">{state}</span> '
                            f'<span style="color:#6b7280">{html.escape(progress(self.job))}</span>{extra}')
        self.cancel_button.disabled = self.job.state.finished or self.done.is_set()
        tail = self.logs.tail(self.tail_lines)
        body = html.escape("\n".join(tail)) if tail else "(no output yet)"
        self.log_view.value = f'<pre style="margin:0;font-size:85%;line-height:1.3">{body}</pre>'

    def text(self) -> str:
        return state_line(self.job) + (f"\n{self.error}" if self.error else "")


def _TextFallbackBox(owner: JobWidget, children: list[Any]) -> Any:
    """A VBox whose text/plain form is the job's state line (for frontends that cannot draw widgets)."""
    import ipywidgets as w

    class JobBox(w.VBox):
        def _repr_mimebundle_(self, **kwargs: Any) -> Any:
            data = super()._repr_mimebundle_(**kwargs)
            if data:
                data["text/plain"] = owner.text()
            return data

    return JobBox(children)


def widgets_available(shell: Any) -> bool:
    """True in a Jupyter kernel (comms reach a frontend) with ipywidgets installed."""
    if shell is None or getattr(shell, "kernel", None) is None:
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def show_job(job: JobInfo, backend: Backend | None, shell: Any, *, wait: bool = False,
             follow: bool = False, out: TextIO | None = None) -> JobInfo:
    """Show a just-submitted job: the live widget when possible, else a state line.

    With ``wait`` or ``follow`` the call returns only when the job has finished (Ctrl+C / interrupt
    stops waiting, never the job); in text mode ``follow`` streams the logs as they are written.
    """
    out = out or sys.stdout
    if widgets_available(shell):
        from IPython.display import display

        view = JobWidget(job, backend).start()
        display(view.box)
        if wait or follow:
            try:
                while not view.wait(0.5):
                    pass
            except KeyboardInterrupt:
                view.stop()
                out.write(f"stopped watching; {job.name} keeps running (%dlw cancel {job.name} stops it)\n")
                return view.job
            out.write(view.text() + "\n")
        return view.job
    return _show_text(job, backend, out, wait=wait, follow=follow)


def _show_text(job: JobInfo, backend: Backend | None, out: TextIO, *, wait: bool, follow: bool) -> JobInfo:
    out.write(state_line(job) + "\n")
    if not (wait or follow):
        out.write(f"watch it with: %dlw status {job.name} | %dlw logs {job.name} -f | %dlw cancel {job.name}\n")
        out.flush()
        return job
    tail = LogTail(job.name, job.world_size, backend, size=None)
    last = job.state
    try:
        while True:
            job = core.get_job(job.name, backend=backend)
            if follow:
                tail.poll()
                _drain(tail, out, final=job.state.finished)
            if job.state.finished:
                break
            if job.state != last:
                out.write(state_line(job) + "\n")
                last = job.state
            out.flush()
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        out.write(f"stopped watching; {job.name} keeps running (%dlw cancel {job.name} stops it)\n")
        return job
    out.write(state_line(job) + "\n")
    out.flush()
    return job


def _drain(tail: LogTail, out: TextIO, final: bool) -> None:
    """Print the complete lines read so far (and, once the job is over, an unterminated last line)."""
    lines = list(tail.lines)
    tail.lines.clear()
    if final:
        prefix = (lambda r: f"[rank {r}] ") if tail.world_size > 1 else (lambda r: "")
        lines += [prefix(r) + rest for r, rest in enumerate(tail.partial) if rest]
        tail.partial = [""] * tail.world_size
    for line in lines:
        out.write(line + "\n")
