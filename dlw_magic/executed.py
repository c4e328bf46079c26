"""The executed notebook of a job: rank 0 writes ``executed.ipynb`` into ``DLW_OUTPUT_DIR`` as cells finish.

There is no kernel: the launcher runs the cells itself, so it records their outputs itself, in the form
Jupyter saves them (nbformat 4): stream text (``sys.stdout``/``sys.stderr`` are teed, the log still gets
everything), ``display()`` data, the value of a cell's last expression, matplotlib figures as PNG (at
``plt.show()`` and at the end of the cell that drew them; dlw_magic.outputs makes these), errors with
their tracebacks, execution counts, and the injected parameters cell papermill would add. The file is
rewritten atomically after every cell (and at most every ``FLUSH_EVERY`` seconds while a cell prints),
so a failed or cancelled job still leaves what ran.

Only the standard library is imported; IPython only where the notebook itself uses it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from .outputs import ShowFigures, jsonable, mimebundle, overwrite_carriage_returns, png_of_figure

# typing costs a rank's start ~13 ms to import; the names are for the type checker only (mypy reads
# any ``if TYPE_CHECKING:`` block).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FILENAME = "executed.ipynb"
FLUSH_EVERY = 2.0  # seconds between rewrites while a cell is still running

def executed_notebook_path(output_dir: str | Path) -> Path | None:
    """The executed notebook in a job's output folder, or None when the job has not written one (yet)."""
    path = Path(output_dir) / FILENAME
    return path if path.is_file() else None


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


class Recorder:
    """The notebook being executed: its cells, the outputs recorded so far, and the file they go to."""

    def __init__(self, notebook: dict[str, Any], chunks: list[tuple[str | None, str]], path: Path,
                 job: dict[str, Any]):
        """``chunks``: (label, code) per chunk of the script, label "cell N", "injected parameters" or None."""
        self.nb = notebook
        self.path = path
        self.lock = threading.RLock()
        self.pid = os.getpid()
        self.count = 0
        self.current: dict[str, Any] | None = None
        self.format: Callable[[Any], tuple[dict[str, Any], dict[str, Any]]] = mimebundle
        self.shown_figures: dict[int, Any] = {}
        self.real_stdout = sys.stdout
        self.pending: list[str] = []  # stream text not yet in the cell's outputs
        self.pending_name: str | None = None
        self.rewinding = False  # the last text ended with \r
        self.last_write = 0.0
        self.interval = FLUSH_EVERY  # grows with the cost of a write: a huge notebook is written less often
        cells = notebook["cells"]
        numbered = list(cells)  # "cell N" counts the notebook's own cells, before the injected one
        for number, cell in enumerate(cells, start=1):
            if notebook.get("nbformat_minor", 0) >= 5:
                cell.setdefault("id", f"cell-{number}")
            if cell.get("cell_type") == "code":
                cell["outputs"], cell["execution_count"] = [], None
        # One target cell per chunk of the script (None: the script's own header).
        self.targets: list[dict[str, Any] | None] = []
        placed: dict[str, Any] | None = None
        for label, code in chunks:
            target = None
            if label and label.startswith("cell "):
                target = placed = numbered[int(label[5:]) - 1]
            elif label == "injected parameters" and placed is not None:
                target = {"cell_type": "code", "execution_count": None, "id": "injected-parameters",
                          "metadata": {"tags": ["injected-parameters"]}, "outputs": [], "source": _lines(code)}
                cells.insert(next(i for i, c in enumerate(cells) if c is placed) + 1, target)
            self.targets.append(target)
        if hasattr(os, "register_at_fork"):  # a forked child (DataLoader worker) writes to the log only
            os.register_at_fork(after_in_child=self._forked)
        notebook.setdefault("metadata", {})["dlw"] = {**job, "status": "running", "started": _now()}
        self.write()

    @classmethod
    def for_job(cls, script: Path, notebook_name: str, chunks: list[tuple[str, str]]) -> Recorder | None:
        """The recorder for rank 0 of a job (DLW_OUTPUT_DIR set), or None; a notebook it cannot read is
        reported on stderr and the job runs without one."""
        env = os.environ
        output = env.get("DLW_OUTPUT_DIR")
        if not output or env.get("RANK", "0") != "0" or env.get("DLW_EXECUTED_NOTEBOOK") == "0":
            return None
        source = script.parent / notebook_name
        try:
            notebook = json.loads(source.read_bytes())
            labelled: list[tuple[str | None, str]] = [(None, chunks[0][1])]
            labelled += [(name.removeprefix(f"{notebook_name}, "), code) for name, code in chunks[1:]]
            Path(output).mkdir(parents=True, exist_ok=True)
            job = {"job": env.get("DLW_JOB_NAME"), "attempt": int(env.get("DLW_ATTEMPT", "0"))}
            return cls(notebook, labelled, Path(output) / FILENAME, job)
        except (OSError, ValueError, KeyError, IndexError, TypeError) as err:
            print(f"dlw: no executed notebook: {source}: {err}", file=sys.stderr)
            return None

    def _forked(self) -> None:
        """In a forked child: record nothing, and die of SIGTERM as it would have (Pool.terminate)."""
        self.current, self.pending = None, []
        if signal.getsignal(signal.SIGTERM) == self._on_sigterm:
            with contextlib.suppress(ValueError):  # not the main thread: the pid check in _on_sigterm covers it
                signal.signal(signal.SIGTERM, signal.SIG_DFL)

    # -- cells --

    def start(self, index: int) -> None:
        with self.lock:
            self.settle()
            self.pending_name, self.rewinding = None, False
            cell = self.targets[index]
            self.current = cell
            if cell is None:
                return
            self.count += 1
            cell["execution_count"] = self.count
            cell["outputs"] = []
            cell.setdefault("metadata", {})["execution"] = {"iopub.execute_input": _now()}

    def finish(self) -> None:
        self.flush_figures()
        with self.lock:
            self.settle()
            if self.current is not None:
                self.current["metadata"]["execution"]["shell.execute_reply"] = _now()
            self.current = None
            if self.interval == FLUSH_EVERY or time.monotonic() - self.last_write >= self.interval:
                self.write()

    def fail(self, err: BaseException, index: int | None = None, status: str = "failed") -> None:
        """Record ``err`` on the running cell (or on cell ``index``: a syntax error) and end the run."""
        if index is not None:
            self.current = self.targets[index]
        with self.lock:
            if self.current is not None and not isinstance(err, SystemExit):
                self.output({"output_type": "error", "ename": type(err).__name__, "evalue": str(err),
                             "traceback": [line.rstrip("\n") for line in _format(err)]})
            self.end(status)

    def end(self, status: str) -> None:
        with self.lock:
            self.settle()
            if self.current is not None and "execution" in self.current.get("metadata", {}):
                self.current["metadata"]["execution"]["shell.execute_reply"] = _now()
            self.current = None
            self.nb["metadata"]["dlw"].update(status=status, finished=_now())
            self.write()

    # -- outputs --

    def output(self, out: dict[str, Any]) -> None:
        with self.lock:
            if self.current is not None:
                self.settle()
                self.pending_name, self.rewinding = None, False
                self.current["outputs"].append(out)
                self.changed()

    def stream(self, name: str, text: str) -> None:
        """Text written to ``sys.stdout``/``sys.stderr``: gathered cheaply, joined into the cell's stream
        output when something else comes or the file is written."""
        if not text or self.current is None:
            return
        with self.lock:
            if name != self.pending_name:
                self.settle()
                self.pending_name = name
            if "\r" in text or self.rewinding:  # a progress bar: each \r rewinds its line
                self.settle()
                outputs = self.current["outputs"]
                last = outputs[-1] if outputs else {}
                chunks = last["text"] if last.get("output_type") == "stream" and last["name"] == name else []
                before = chunks.pop() if chunks else ""  # the line being rewound ends there
                joined = before + text
                cut = joined.rfind("\n", 0, len(before)) + 1
                self.pending = [joined[:cut], overwrite_carriage_returns(joined[cut:])]
                self.rewinding = self.pending[-1].endswith("\r")
            else:
                self.pending.append(text)
            if time.monotonic() - self.last_write >= self.interval:
                self.write()

    def settle(self) -> None:
        """Move the gathered text into the running cell's last stream output of that name."""
        if not self.pending or self.current is None:
            self.pending = []
            return
        text = "".join(self.pending)
        self.pending = []
        outputs = self.current["outputs"]
        last = outputs[-1] if outputs else None
        if last is not None and last["output_type"] == "stream" and last["name"] == self.pending_name:
            last["text"].append(text)
        elif text:
            outputs.append({"output_type": "stream", "name": self.pending_name, "text": [text]})

    def display(self, data: dict[str, Any], metadata: dict[str, Any] | None = None) -> None:
        if self.current is not None:
            self.output({"output_type": "display_data", "data": jsonable(data), "metadata": metadata or {}})

    def formatted(self, obj: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """The mime bundle of ``obj``; a repr that fails is shown, never fails the job (plain Python
        would not have shown the value at all)."""
        try:
            return self.format(obj)
        except Exception as err:
            return {"text/plain": f"<{type(obj).__name__} object: cannot be shown: {err!r}>"}, {}

    def display_objects(self, *objs: Any, **kwargs: Any) -> None:
        """``display()`` for a notebook that does not use IPython: record, and print text/plain to the log."""
        for obj in objs:
            data, metadata = self.formatted(obj)
            self.display(data, metadata)
            self.real_stdout.write(str(data.get("text/plain", "")) + "\n")

    def result(self, value: Any) -> None:
        """``sys.displayhook`` while a cell's last expression runs: its value is the cell's result."""
        if value is None or self.current is None:
            return
        data, metadata = self.formatted(value)
        if "image/png" in data and hasattr(value, "savefig"):
            self.shown_figures[id(value)] = value
        self.output({"output_type": "execute_result", "execution_count": self.count,
                     "data": jsonable(data), "metadata": metadata})

    def flush_figures(self) -> None:
        """Figures drawn or changed since they were last shown, as PNG, as the inline backend shows them."""
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is None or self.current is None:
            return
        for num in pyplot.get_fignums():
            fig = pyplot.figure(num)
            if id(fig) in self.shown_figures and not fig.stale:
                continue
            self.shown_figures[id(fig)] = fig
            self.display(*self.formatted(fig))
        self.shown_figures = {k: f for k, f in self.shown_figures.items() if pyplot.fignum_exists(f.number)}

    # -- the file --

    def changed(self) -> None:
        if time.monotonic() - self.last_write >= self.interval:
            self.write()

    def write(self) -> None:
        """Rewrite the file (atomically). It costs the job at most about 5 % of its time: a write that
        takes long (a notebook with megabytes of output) spaces the next ones out."""
        if os.getpid() != self.pid:
            return
        started = time.monotonic()
        with self.lock:
            self.settle()
            text = json.dumps(self.nb, indent=1, ensure_ascii=False, default=repr) + "\n"
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as err:  # a full disk must not fail the job
            self.real_stdout.flush()
            print(f"dlw: cannot write {self.path}: {err.strerror}", file=sys.__stderr__)
        self.last_write = time.monotonic()
        self.interval = max(FLUSH_EVERY, 20 * (self.last_write - started))

    # -- wiring --

    def install(self, namespace: dict[str, Any], use_ipython: bool) -> None:
        sys.stdout = Tee(sys.stdout, "stdout", self)
        sys.stderr = Tee(sys.stderr, "stderr", self)
        if not use_ipython:
            namespace["display"] = self.display_objects  # a kernel has display() built in
        sys.meta_path.insert(0, ShowFigures(self.flush_figures))
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, self._on_sigterm)

    def uninstall(self) -> None:
        sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, ShowFigures)]
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if isinstance(stream, Tee):
                setattr(sys, name, stream.stream)

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        """Cancelled, timed out or preempted: say so in the notebook, then die of the signal as before."""
        try:
            if os.getpid() == self.pid:
                self.end("terminated")
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    def attach_shell(self, shell: Any) -> None:
        """Route IPython's display() and formatters (a notebook that uses IPython) into this recorder."""
        from IPython.core.displaypub import DisplayPublisher

        recorder = self

        class Publisher(DisplayPublisher):
            def publish(self, data: dict[str, Any], metadata: dict[str, Any] | None = None,
                        source: Any = None, *, transient: Any = None, update: bool = False, **kwargs: Any) -> None:
                if not update:
                    recorder.display(data, metadata)
                    recorder.real_stdout.write(str(data.get("text/plain", "")) + "\n")

            def clear_output(self, wait: bool = False) -> None:
                with recorder.lock:
                    if recorder.current is not None:
                        recorder.current["outputs"], recorder.pending = [], []

        shell.display_pub = Publisher(shell=shell, parent=shell)
        shell.display_formatter.formatters["image/png"].for_type_by_name("matplotlib.figure", "Figure", png_of_figure)
        self.format = shell.display_formatter.format

        def system(cmd: str) -> Any:  # `!cmd` output through sys.stdout, into the notebook, as ipykernel does
            return (shell.system_raw if cmd.rstrip().endswith("&") else shell.system_piped)(cmd)

        shell.system = system


class Tee:
    """A text stream that writes through to the job's log and records into the running cell."""

    def __init__(self, stream: Any, name: str, recorder: Recorder):
        self.stream, self.name, self.recorder = stream, name, recorder

    def write(self, text: str) -> int:
        written = self.stream.write(text)
        rec = self.recorder
        if rec.current is not None and text:
            if self.name == rec.pending_name and not rec.rewinding and "\r" not in text:
                rec.pending.append(text)  # the common case, kept short: jobs print a lot
                if time.monotonic() - rec.last_write >= rec.interval:
                    rec.write()
            else:
                rec.stream(self.name, text)
        return written

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def _format(err: BaseException) -> list[str]:
    """The traceback lines of ``err`` without the launcher's own frames."""
    tb = err.__traceback__
    here = (__file__, str(Path(__file__).with_name("launch.py")))
    while tb is not None and tb.tb_frame.f_code.co_filename in here:
        tb = tb.tb_next
    return traceback.format_exception(type(err), err, tb)
