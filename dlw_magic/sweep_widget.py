"""What ``%dlw sweep`` shows in a Jupyter kernel: the sweep's results table, live.

One row per trial (its parameters, state, best and last value of the goal metric, duration), the best
trial marked, redrawn from ``experiments.get`` about once a second until the experiment has ended, as
``dlw sweep status`` prints it once. Reading only: the sweep's runner goes on whatever happens to the
kernel, and ``%dlw sweep status NAME`` shows the table again.
"""

from __future__ import annotations

import contextlib
import html
import threading
from typing import Any

from . import experiments
from .errors import DLWError
from .experiments.results import summary
from .experiments.runner import EXPERIMENT_FINAL
from .experiments.store import TRIAL_FINAL
from .widget import STATE_COLORS

POLL_SECONDS = 1.0
MAX_FAILURES = 5


def _value(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def title_line(s: dict[str, Any]) -> str:
    """``lr-sweep: Running, 3/8 trials done, parallel 2, best lr-sweep-002 (accuracy 0.97)``"""
    done = sum(n for state, n in s["counts"].items() if state in TRIAL_FINAL)
    line = f"{s['name']}: {s['state']}, {done}/{len(s['trials'])} trials done, parallel {s['parallel']}"
    best = next((t for t in s["trials"] if t["name"] == s["best"]), None)
    if best is not None:
        line += f", best {best['name']} ({s['metric']} {_value(best['last'])})"
    return line


def table_html(s: dict[str, Any]) -> str:
    """The results table of an experiment summary (``experiments.results.summary``)."""
    metric = s.get("metric")
    names = list(dict.fromkeys(k for t in s["trials"] for k in t["parameters"]))
    head = ["trial", *names, "state"] + ([f"best {metric}", f"last {metric}"] if metric else []) + ["duration"]
    cell = 'style="padding:1px 8px;text-align:left"'
    rows = ["<tr>" + "".join(f"<th {cell}>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for t in s["trials"]:
        state = t["state"]
        tip = f' title="{html.escape(t["message"])}"' if t.get("message") else ""
        values = [_value(t["parameters"].get(n)) for n in names]
        tail = [_value(t.get("best")), _value(t.get("last"))] if metric else []
        duration = f"{round(t['duration'])}s" if isinstance(t.get("duration"), (int, float)) else "-"
        best = t["name"] == s.get("best")
        rows.append(
            f'<tr data-trial="{html.escape(t["name"])}" data-state="{state}"{tip}'
            + (' class="dlw-best" style="font-weight:bold"' if best else "") + ">"
            + f"<td {cell}>{html.escape(t['name'])}{' ★' if best else ''}</td>"
            + "".join(f"<td {cell}>{html.escape(v)}</td>" for v in values)
            + f'<td {cell}><span style="color:{STATE_COLORS.get(state, "#374151")}">{state}</span></td>'
            + "".join(f"<td {cell}>{html.escape(v)}</td>" for v in [*tail, duration]) + "</tr>"
        )
    return ('<table class="dlw-sweep-table" style="border-collapse:collapse;font-size:90%">'
            + "".join(rows) + "</table>")


class SweepWidget:
    """The live results table of one experiment."""

    def __init__(self, record: dict[str, Any]) -> None:
        import ipywidgets as w

        self.name: str = record["name"]
        self.summary = summary(record, curves=False)
        self.error: str | None = None
        self.done = threading.Event()
        self._stop = threading.Event()
        self.title = w.HTML()
        self.table = w.HTML(layout=w.Layout(max_height="28em", overflow="auto"))
        self.box = _sweep_box(self, [self.title, self.table])
        self.render()

    @property
    def finished(self) -> bool:
        return self.summary["state"] in EXPERIMENT_FINAL

    def start(self) -> SweepWidget:
        threading.Thread(target=self._run, name=f"dlw-sweep-{self.name}", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        failures = 0
        try:
            while not self._stop.is_set() and not self.finished:
                self._stop.wait(POLL_SECONDS * (1 + failures))
                try:
                    self.summary = summary(experiments.get(self.name), curves=False)
                    failures, self.error = 0, None
                except Exception as err:  # a busy store or a removed experiment: say so, try a while
                    failures += 1
                    self.error = str(err) if isinstance(err, DLWError) else f"{type(err).__name__}: {err}"
                    if failures >= MAX_FAILURES:
                        break
                self.render()
        finally:
            with contextlib.suppress(Exception):
                self.render()
            self.done.set()

    def text(self) -> str:
        return title_line(self.summary) + (f" ({self.error})" if self.error else "")

    def render(self) -> None:
        s = self.summary
        color = STATE_COLORS.get(s["state"], "#374151")
        hint = "" if self.finished else f" · %dlw sweep cancel {s['name']} stops it"
        error = f' <span style="color:#dc2626">{html.escape(self.error)}</span>' if self.error else ""
        title = (f'<b>{html.escape(s["name"])}</b> <span style="color:{color};font-weight:bold">{s["state"]}</span>'
                 f' <span style="color:#6b7280">{html.escape(title_line(s).split(", ", 1)[1])}{hint}</span>{error}')
        if title != self.title.value:
            self.title.value = title
        table = table_html(s)
        if table != self.table.value:  # nothing re-sent while no trial changed
            self.table.value = table


def _sweep_box(owner: SweepWidget, children: list[Any]) -> Any:
    """A VBox whose text/plain form is the sweep's title line, for frontends that cannot draw widgets."""
    import ipywidgets as w

    class SweepBox(w.VBox):
        def _repr_mimebundle_(self, **kwargs: Any) -> Any:
            data = super()._repr_mimebundle_(**kwargs)
            if data:
                data["text/plain"] = owner.text()
            return data

    return SweepBox(children)


def show_sweep(record: dict[str, Any], *, wait: bool = False) -> dict[str, Any]:
    """Display the live table; with ``wait`` return once the experiment has ended (an interrupt stops the
    watching, never the sweep). Returns the latest record."""
    from IPython.display import display

    view = SweepWidget(record).start()
    display(view.box)
    if not wait:
        return record
    try:
        record = experiments.wait(record["name"])
        view.done.wait(3 * POLL_SECONDS)  # the table shows the final states before the cell ends
    except KeyboardInterrupt:
        print(f"stopped watching; {record['name']} goes on (%dlw sweep cancel {record['name']} stops it)")
    return record
