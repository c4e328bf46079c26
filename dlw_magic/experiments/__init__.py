"""Sweeps: one notebook, many parameter values, each an ordinary job (a *trial*) of one experiment.

The core of ``dlw sweep``, ``dlw experiments``, ``%dlw sweep`` and the panel's experiment view (faces call
these functions as they call ``dlw_magic.core``). The spec is ``dlw_magic.spec.experiment.Experiment``;
the points come from ``space``; ``runner`` submits at most ``parallel`` trials at once and applies the
early-stopping rules (``stopping``); records live in ``store``; ``results`` reads them.
"""

from __future__ import annotations

import copy
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import core
from ..errors import Conflict, DLWError
from . import runner, store
from .results import best_trial, summary

if TYPE_CHECKING:
    from ..backends import Backend
    from ..options import JobOptions
    from ..spec.experiment import Experiment
    from ..types import JobInfo

__all__ = ["build_experiment", "cancel", "create", "get", "list_experiments", "promote", "wait"]


def build_experiment(
    target: str | Path, space: dict[str, Any] | None = None, options: JobOptions | None = None,
    base_dir: str | Path | None = None, **settings: Any,
) -> Experiment:
    """An Experiment from an Experiment YAML, or from a notebook plus a search space and sweep settings
    (``search``, ``trials``, ``parallel``, ``metric``, ``goal``, ``stop_if``, ``fail_fast``, ``seed``,
    ``name``); the face's job options apply to the trials' job. One-line DLWError naming the field."""
    from ..spec.experiment import Experiment
    from ..spec.validation import load_yaml, read_text, validate

    base = Path(base_dir) if base_dir is not None else Path.cwd()
    path = base / target
    given = {k: v for k, v in settings.items() if v is not None}
    if path.suffix.lower() in (".yaml", ".yml"):
        data = load_yaml(read_text(path, "experiment spec"), str(target))
        if not isinstance(data, dict) or data.get("kind") != "Experiment":
            raise DLWError(f"{target}: expected kind: Experiment (submit a TrainingJob with dlw train)")
        job = data.get("job")
        if isinstance(job, dict) and isinstance(job.get("source"), dict):
            job = copy.deepcopy(job)
            src = job["source"]
            folder = path.resolve().parent
            src["workdir"] = str(folder / src["workdir"]) if src.get("workdir") else str(folder)
            data["job"] = job
        data.update({_camel(k): v for k, v in given.items()})
        if space:
            data["parameters"] = {**(data.get("parameters") or {}), **space}
        origin = str(target)
    else:
        if path.suffix.lower() != ".ipynb":
            raise DLWError(f"{target}: a sweep takes a notebook (.ipynb) or an Experiment YAML")
        name = given.pop("name", None) or (options.name if options is not None else None)
        data = {"name": name or _default_name(path), "job": {"source": {"notebook": str(target)}},
                "parameters": space or {}, **{_camel(k): v for k, v in given.items()}}
        origin = str(target)
    if options is not None:
        job_options = options.model_copy(update={"name": "x"})  # the trials are named by the experiment
        if isinstance(data.get("job"), dict):
            merged = core.merge_options(data["job"], job_options, origin)
            merged.pop("name", None)
            data["job"] = merged
    exp = validate(Experiment, data, origin)
    _resolve_source(exp, base)
    return exp


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(w.title() for w in rest)


def _default_name(notebook: Path) -> str:
    stem = core.default_name(notebook).rsplit("-", 1)[0][:40]
    return f"{stem}-sweep-{secrets.token_hex(2)}"[:48].strip("-")


def _resolve_source(exp: Experiment, base: Path) -> None:
    src = exp.job.get("source")
    if not isinstance(src, dict):
        raise DLWError("job.source: expected a mapping with the notebook")
    if not src.get("notebook"):
        raise DLWError("job.source.notebook: a sweep sets notebook parameters, so it needs a notebook")
    workdir = Path(src.get("workdir") or base)
    notebook = Path(src["notebook"])
    notebook = notebook if notebook.is_absolute() else workdir / notebook
    src["notebook"] = str(notebook.resolve())
    src["workdir"] = str(workdir.resolve()) if src.get("workdir") else str(notebook.resolve().parent)


def create(exp: Experiment, backend: Backend | None = None, backend_options: dict[str, Any] | None = None,
           start: bool = True) -> dict[str, Any]:
    """Check every trial (a valid job, values that fit the notebook's parameter types), keep the notebook
    as it is now, record the experiment and start its runner. Returns the record."""
    from ..convert import describe_parameters
    from ..convert.parameters import check_overrides
    from .space import points

    seed = exp.seed if exp.seed is not None else secrets.randbelow(2**31)
    notebook = Path(exp.job["source"]["notebook"])
    if not notebook.is_file():
        raise DLWError(f"{notebook}: notebook not found")
    params = describe_parameters(notebook)
    fixed = exp.job.get("parameters") or {}
    trials = []
    for index, point in enumerate(points(exp, seed)):
        values = check_overrides(notebook.name, params, {**fixed, **point}, bool(params))
        trials.append({"index": index, "name": f"{exp.name}-{index:03d}", "parameters":
                       {k: values[k] for k in point}, "state": "Waiting"})
    backend = backend or core.backend_for(**(backend_options or {}))
    spec = exp.to_yaml_dict()
    record = {"name": exp.name, "user": core.current_user(), "created": time.time(), "state": "Running",
              "seed": seed, "spec": spec, "backend": {"name": backend.name, **(backend_options or {})},
              "trials": trials, "best": None}
    for t in trials[:1]:  # the first trial as a job, before anything is kept: the spec's own errors now
        runner.trial_spec(record, t)
    folder = store.create(record)
    try:
        kept = folder / "source" / notebook.name
        kept.parent.mkdir(mode=0o700)
        shutil.copy2(notebook, kept)  # later edits of the notebook do not change the sweep's trials
        with store.locked(exp.name) as rec:
            assert rec is not None
            rec["spec"]["job"]["source"]["notebook"] = str(kept)
            rec["spec"]["job"]["source"].setdefault("workdir", str(notebook.parent))
            record = rec
    except BaseException:
        store.remove(exp.name)
        raise
    if start:
        record = runner.advance(exp.name, backend)  # the first trials go in now, not when the runner starts
        runner.spawn(exp.name)
    return record


def get(name: str) -> dict[str, Any]:
    """The experiment's record (its runner restarted if it was lost)."""
    return runner.ensure_running(name)


def list_experiments() -> list[dict[str, Any]]:
    """Every experiment, newest first, as ``summary`` without the curves."""
    out = []
    for name in store.names():
        try:
            out.append(summary(runner.ensure_running(name), curves=False))
        except DLWError:
            continue  # removed meanwhile, or unreadable: the others still list
    return sorted(out, key=lambda e: -(e.get("created") or 0))


def cancel(name: str, backend: Backend | None = None) -> dict[str, Any]:
    """Cancel the experiment: its running trials are cancelled, the waiting ones never start."""
    record = store.load(name)
    if record["state"] in runner.EXPERIMENT_FINAL:
        raise Conflict(f"experiment {name!r} already finished ({record['state']}); nothing to cancel")
    with store.locked(name, wait=120) as rec:
        if rec is None:
            raise DLWError(f"experiment {name!r} is busy; try again")
        rec["cancel_requested"] = True
        if rec["state"] not in runner.EXPERIMENT_FINAL:
            runner.step(rec, backend or runner.backend_of(rec))
        return rec


def promote(name: str, new_name: str | None = None, backend: Backend | None = None) -> JobInfo:
    """Rerun the best trial (same code snapshot and parameters) as an ordinary job, outside the experiment."""
    from ..spec import parse_spec

    record = store.load(name)
    best = best_trial(record)
    if best is None:
        why = "it has no goal metric (--metric)" if not record["spec"].get("metric") else \
            "no trial has succeeded with a value of its goal metric yet"
        raise DLWError(f"experiment {name!r} has no best trial to promote: {why}")
    backend = backend or runner.backend_of(record)
    old = backend.get(best["name"])
    data = dict(old.spec)
    data["name"] = new_name or core.default_name(name)
    return core.submit(parse_spec(data, f"trial {best['name']}"), backend, rerun_of=old,
                       provenance={"experiment": None, "trial": None, "promoted_from": best["name"]})


def wait(name: str, on_change: Callable[[dict[str, Any]], None] | None = None,
         timeout: float | None = None) -> dict[str, Any]:
    """Block until the experiment has ended; ``on_change`` gets the record whenever a trial's state changes."""
    start = time.monotonic()
    last = None
    while True:
        record = runner.ensure_running(name)
        now = [t["state"] for t in record["trials"]]
        if now != last and on_change is not None:
            on_change(record)
        last = now
        if record["state"] in runner.EXPERIMENT_FINAL:
            return record
        if timeout is not None and time.monotonic() - start > timeout:
            return record
        time.sleep(min(max(0.05, (time.monotonic() - start) / 20), 1.0))
