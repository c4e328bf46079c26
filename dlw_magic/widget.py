"""What ``%dlw train`` shows: a live job widget in Jupyter kernels, printed lines everywhere else.

The widget polls ``core.get_job`` and ``core.logs(name, rank=r, offset=...)`` from a daemon thread about
once a second and stops when the job has finished. It only reads through the core: the job runs on
whatever happens to this kernel (interrupt, restart), and ``%dlw status``/``%dlw logs`` pick it up again.
Below the title it draws the job's metrics (``log_metrics``) as small inline SVG line charts, the GPU use
per rank, its preemptions and a link to the executed notebook.
"""

from __future__ import annotations

import contextlib
import html
import math
import sys
import threading
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import quote

from . import core
from . import format as fmt
from .errors import DLWError, NotFound
from .metrics import TAG as METRICS_TAG

if TYPE_CHECKING:
    from .backends import Backend
    from .types import JobInfo

POLL_SECONDS = 1.0
DETAILS_EVERY = 3  # polls between two reads of the job's metrics (the charts)
TAIL_LINES = 15
MAX_FAILURES = 5  # consecutive failed polls before the widget gives up (the job is not affected)
MAX_TAIL_RANKS = 8  # the widget reads each rank's log every poll: a 512-rank job would flood the backend
CHART_WIDTH, CHART_HEIGHT = 220, 50
GPU_METRICS = ("gpu.util", "gpu.mem_mib")  # the sampler's; other ranks' come as ``gpu.util@rank1``
# A state's colour in the job and sweep widgets (a sweep's trials also wait and stop).
STATE_COLORS = {"Waiting": "#6b7280", "Queued": "#6b7280", "Running": "#2563eb", "Succeeded": "#16a34a",
                "Failed": "#dc2626", "Cancelled": "#b45309", "Stopped": "#b45309"}


def state_line(job: JobInfo) -> str:
    """``digits-ddp-x7k2q: Running for 0:00:12 (2 worker(s), local)``, hints as ``%dlw`` commands."""
    return fmt.state_line(job, notebook=True)


def downsample(points: list[list[Any]], width: int) -> list[tuple[float, float]]:
    """At most ~4 points per pixel column (first, lowest, highest, last), so 10,000+ points draw cheaply."""
    pts = [(float(p[0]), float(p[1])) for p in points
           if len(p) > 1 and isinstance(p[1], (int, float)) and math.isfinite(p[1])]
    if len(pts) <= 2 * width:
        return pts
    x0, span = pts[0][0], (pts[-1][0] - pts[0][0]) or 1.0
    buckets: dict[int, list[tuple[float, float]]] = {}
    for p in pts:
        buckets.setdefault(min(width - 1, int((p[0] - x0) / span * width)), []).append(p)
    out: list[tuple[float, float]] = []
    for group in buckets.values():
        keep = {0, len(group) - 1, min(range(len(group)), key=lambda i: group[i][1]),
                max(range(len(group)), key=lambda i: group[i][1])}
        out += [group[i] for i in sorted(keep)]
    return out


def _num(value: float) -> str:
    return f"{value:.4g}"


def svg_chart(name: str, points: list[list[Any]], width: int = CHART_WIDTH, height: int = CHART_HEIGHT) -> str:
    """One metric as an inline SVG polyline over the steps, titled with its last value."""
    pts = downsample(points, width)
    if not pts:
        return ""
    ys = [y for _, y in pts]
    lo, hi = min(ys), max(ys)
    x0, xs, yspan = pts[0][0], (pts[-1][0] - pts[0][0]) or 1.0, (hi - lo) or 1.0
    line = " ".join(f"{(x - x0) / xs * width:.1f},{2 + (height - 4) * (1 - (y - lo) / yspan):.1f}" for x, y in pts)
    step, last = pts[-1]
    return (
        f'<div class="dlw-chart" data-metric="{html.escape(name)}" style="display:inline-block;margin:0 8px 4px 0">'
        f'<div style="font-size:85%">{html.escape(name)}: <b>{_num(last)}</b> (step {step:g})</div>'
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" style="background:#f3f4f6">'
        f'<polyline fill="none" stroke="#2563eb" stroke-width="1.5" points="{line}"/></svg>'
        f'<div style="font-size:75%;color:#6b7280">min {_num(lo)} · max {_num(hi)}</div></div>'
    )


def gpu_use(metrics: dict[str, list[list[Any]]]) -> list[str]:
    """``rank 0: 87% · 10240 MiB`` per rank from the GPU sampler's last values."""
    ranks: dict[int, dict[str, Any]] = {}
    for name, points in metrics.items():
        base, _, suffix = name.partition("@rank")
        if base in GPU_METRICS and points and (not suffix or suffix.isdigit()):
            ranks.setdefault(int(suffix or 0), {})[base] = points[-1][1]
    lines = []
    for rank in sorted(ranks):
        util, mib = ranks[rank].get("gpu.util"), ranks[rank].get("gpu.mem_mib")
        parts = [f"{util:g}%" if isinstance(util, (int, float)) else None,
                 f"{mib:g} MiB" if isinstance(mib, (int, float)) else None]
        lines.append(f"rank {rank}: " + " · ".join(p for p in parts if p))
    return lines


def notebook_href(path: str | None) -> str | None:
    """``{base_url}lab/tree/<path>`` of the executed notebook under a running Jupyter server's root, else None."""
    if not path:
        return None
    with contextlib.suppress(Exception):
        from jupyter_server.serverapp import list_running_servers

        target = Path(path).resolve()
        for server in list_running_servers():
            root = Path(server.get("root_dir") or server.get("notebook_dir") or "").resolve()
            if root != Path() and target.is_relative_to(root):
                rel = target.relative_to(root).as_posix()
                base = server.get("base_url", "/")
                return f"{base}lab/tree/{quote(rel)}"
    return None


def details_html(job: JobInfo, href: str | None) -> str:
    """The widget's details below the title: executed notebook, GPU use, preemptions, metric charts."""
    parts = []
    if job.executed_notebook:
        nb = html.escape(job.executed_notebook)
        parts.append(f'<div>Notebook: <a href="{html.escape(href)}" target="_blank" class="dlw-notebook">{nb}</a></div>'
                     if href else f"<div>Notebook: <code>{nb}</code></div>")
    gpus = gpu_use(job.metrics)
    if gpus:
        parts.append(f'<div class="dlw-gpu">GPU {html.escape("; ".join(gpus))}</div>')
    parts += [f'<div style="color:#6b7280">Preempted {html.escape(line)}</div>'
              for line in fmt.history_lines(job.history)]
    charts = [svg_chart(name, points) for name, points in sorted(job.metrics.items())
              if name.partition("@")[0] not in GPU_METRICS]
    if any(charts):
        parts.append("<div>" + "".join(charts) + "</div>")
    return "".join(parts)


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
                # metrics lines (Kubernetes' channel) are for the charts, as `dlw logs` leaves them out
                self.lines.extend(self._prefix(rank) + line for line in complete if not line.startswith(METRICS_TAG))

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
        # While a cell blocks on the job (--wait), the kernel handles no widget events. In JupyterLab the
        # DLW extension takes the click first (its classes name the job) and cancels through the server's
        # REST API, so Cancel works then too; elsewhere a click waits for the kernel (see ``_cancel``).
        self.cell_busy = cell_busy
        self.done = threading.Event()
        self._stop = threading.Event()
        # The title may be long (state, progress, an error): it shrinks and wraps, the button never does.
        self.title = w.HTML(layout=w.Layout(flex="1 1 auto", min_width="0"))
        self.cancel_button = w.Button(description="Cancel", button_style="danger", icon="stop",
                                      layout=w.Layout(width="auto", flex="0 0 auto"),
                                      _dom_classes=rest_cancel_classes(job.name))
        self.cancel_button.on_click(self._on_cancel)
        self.log_view = w.HTML(layout=w.Layout(max_height="22em", overflow="auto"))
        self.details = w.HTML()
        self._href: str | None = None
        header = w.HBox([self.title, self.cancel_button], layout=w.Layout(align_items="center"))
        self.box = _job_box(self, [header, self.details, self.log_view] if show_logs else [header, self.details])
        self.render()

    def start(self) -> JobWidget:
        threading.Thread(target=self._run, name=f"dlw-widget-{self.job.name}", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _poll_job(self, polls: int) -> JobInfo:
        """The job's state every poll; its metrics and executed notebook (files to read, or pod logs on
        Kubernetes) every ``DETAILS_EVERY`` polls and whenever the state changes."""
        job = core.get_job(self.job.name, backend=self.backend, details=False)
        if polls % DETAILS_EVERY == 0 or job.state != self.job.state:
            return core.add_details(job, self.backend)
        job.metrics, job.executed_notebook = self.job.metrics, self.job.executed_notebook
        return job

    def _run(self) -> None:
        failures = polls = 0
        try:
            while not self._stop.is_set():
                try:
                    self.job = self._poll_job(polls)
                    polls += 1
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
        color = STATE_COLORS.get(state, "#374151")
        error = f' <span style="color:#dc2626">{html.escape(self.error)}</span>' if self.error else ""
        self.title.value = (
            f'<b>{html.escape(self.job.name)}</b> <span style="color:{color};font-weight:bold">{state}</span>'
            f' <span style="color:#6b7280">{html.escape(fmt.progress(self.job, notebook=True))}</span>{error}'
        )
        self.cancel_button.disabled = self.job.state.finished
        self.cancel_button.tooltip = f"stop every process of {self.job.name}" + (
            " (outside JupyterLab, interrupt the waiting kernel first)" if self.cell_busy else "")
        if self.job.executed_notebook and self._href is None:
            self._href = notebook_href(self.job.executed_notebook) or ""
        details = details_html(self.job, self._href or None)
        if details != self.details.value:  # a long run's charts are not re-sent when nothing changed
            self.details.value = details
        if self.show_logs:
            tail = self.logs.tail(self.tail_lines)
            body = html.escape("\n".join(tail)) if tail else "(no output yet)"
            if self.logs.ranks < self.logs.world_size:
                body += html.escape(f"\n(ranks 0-{self.logs.ranks - 1} shown; %dlw logs {self.job.name} "
                                    "--rank R for the others)")
            self.log_view.value = f'<pre style="margin:0;font-size:85%;line-height:1.3">{body}</pre>'

    def text(self) -> str:
        return state_line(self.job) + (f" ({self.error})" if self.error else "")


def rest_cancel_classes(name: str) -> list[str]:
    """CSS classes by which the DLW lab extension finds a widget's Cancel button and its job
    (``labextension/src/widgetcancel.ts``): job names are DNS labels, so they fit in a class name."""
    return ["dlw-widget-cancel", f"dlw-job-{name}"]


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

    def write(text: str) -> None:
        out.write(text)
        out.flush()

    def changed(now: JobInfo) -> None:
        nonlocal last
        if print_states and not follow and now.state != last and not now.state.finished:
            out.write(state_line(now) + "\n")
            out.flush()
        last = now.state

    return core.watch(job.name, backend, follow=follow, on_text=write, on_change=changed, world_size=job.world_size)
