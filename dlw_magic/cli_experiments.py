"""``dlw sweep``, ``dlw experiments`` and ``dlw compare``: the CLI face over ``dlw_magic.experiments``.

Registered by ``dlw_magic.cli`` (``register(subparsers, command)``); ``%dlw sweep`` parses through it too.

    dlw sweep NOTEBOOK -p lr=0.01,0.03,0.1 -p batch=32,64 [--parallel K] [--metric M --goal max]
              [--random N [--seed S]] [--stop-if 'loss > 2 after 3 steps'] [--fail-fast] [--name NAME]
              [job options: --gpus, --queue, ...] [--wait | --follow] [-o json]
    dlw sweep EXPERIMENT.yaml                     (kind: Experiment)
    dlw sweep status NAME [-o json]               trials, parameters, states, goal metric, best trial
    dlw sweep cancel NAME                         cancels running trials; waiting ones never start
    dlw sweep promote NAME [--as JOB]             reruns the best trial as an ordinary job
    dlw experiments [-o json]
    dlw compare JOB JOB... [-o json]              parameters, image, code hash, packages, metrics side by side
    dlw tensorboard JOB...                        TensorBoard over the jobs' event files, on 127.0.0.1

A sweep's ``-p NAME=V1,V2,...`` lists values (a grid, or choices for ``--random``); ``-p NAME=LO..HI`` is a
uniform range and ``-p NAME=log:LO..HI`` a log-uniform one (ranges need ``--random N``); integer ends
draw integers. A value with commas of its own is written as a YAML list: ``-p sizes=[[64,32],[128]]``.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any, TextIO

from . import format as fmt
from .errors import DLWError

SWEEP_ACTIONS = ("status", "cancel", "promote")
_RANGE = re.compile(r"^(?:(?P<log>log):)?(?P<lo>[^.][^,]*?)\.\.(?P<hi>[^,]+)$")


def register(subparsers: Any, command: str | None) -> None:
    from .cli import _backend_options, _output_option

    p = subparsers.add_parser("sweep", help="run a notebook over a grid or random sample of its parameters",
                              conflict_handler="resolve")
    p.add_argument("target", nargs="?", help="notebook (.ipynb) or Experiment YAML; or status|cancel|promote")
    p.add_argument("experiment", nargs="?", help="the experiment, after status|cancel|promote")
    if command in (None, "sweep"):  # the job options load pydantic: only where they are used
        from .options import add_arguments

        add_arguments(p)
    p.add_argument("--param", "-p", dest="space", action="append", default=[], metavar="NAME=V1,V2|LO..HI",
                   help="values to sweep (repeatable): a list, or a range LO..HI / log:LO..HI for --random")
    p.add_argument("--random", type=int, metavar="N", help="draw N random points instead of the full grid")
    p.add_argument("--seed", type=int, help="random search seed")
    p.add_argument("--parallel", type=int, metavar="K", help="at most K trials at once (default 1)")
    p.add_argument("--metric", help="goal metric, as logged with dlw_magic.log_metrics")
    p.add_argument("--goal", choices=["max", "min"], help="whether a higher or lower metric is better (default max)")
    p.add_argument("--stop-if", metavar="RULE", help="early stopping: 'loss > 2 after 3 steps', 'median after 3 steps'")
    p.add_argument("--fail-fast", action="store_true", default=None, help="a failed trial cancels the others")
    p.add_argument("--as", dest="new_name", help="promote: name of the new job")
    _backend_options(p)
    w = p.add_mutually_exclusive_group()
    w.add_argument("--wait", action="store_true", help="wait until every trial has ended; exit 1 unless one succeeded")
    w.add_argument("--follow", "-f", action="store_true", help="print each trial's state changes until the end")
    _output_option(p)
    p.set_defaults(func=cmd_sweep)

    p = subparsers.add_parser("experiments", help="list your sweeps")
    _output_option(p)
    p.set_defaults(func=cmd_experiments)

    p = subparsers.add_parser("compare", help="compare jobs: parameters, image, code, packages, metrics")
    p.add_argument("names", nargs="+", metavar="JOB")
    _backend_options(p)
    _output_option(p)
    p.set_defaults(func=cmd_compare)

    p = subparsers.add_parser("tensorboard", help="TensorBoard over jobs' event files (127.0.0.1; Ctrl-C stops)")
    p.add_argument("names", nargs="+", metavar="JOB")
    _backend_options(p)
    p.set_defaults(func=cmd_tensorboard)


# ---------------------------------------------------------------- parsing


def parse_space(items: list[str]) -> dict[str, Any]:
    """``["lr=0.01,0.1", "wd=log:1e-5..1e-2"]`` -> {"lr": [0.01, 0.1], "wd": {"min":..., "max":..., "log": True}}."""
    import yaml

    from .spec.validation import check_values, yaml_value

    space: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or not key.isidentifier() or not raw:
            raise DLWError(f"--param {item[:80]!r}: expected NAME=V1,V2,... or NAME=LO..HI "
                           "with NAME a Python identifier")
        if key in space:
            raise DLWError(f"--param {key}: given twice (list every value once: {key}=A,B,C)")
        m = _RANGE.match(raw)
        try:
            if m:
                space[key] = {"min": _number(m["lo"]), "max": _number(m["hi"]), "log": bool(m["log"])}
            elif raw.startswith("["):
                values = yaml_value(raw)
                if not isinstance(values, list):
                    raise DLWError(f"--param {key}: expected a YAML list of values")
                space[key] = values
            else:
                space[key] = [yaml_value(v.strip()) for v in raw.split(",")]
        except yaml.YAMLError:
            raise DLWError(f"--param {key}: cannot read {raw[:60]!r}") from None
        check_values({key: space[key]}, "--param")
    return space


def _number(text: str) -> Any:
    """A range end: ``1e-4`` is a float here (YAML 1.1 would read it as text)."""
    from .spec.validation import yaml_value

    value = yaml_value(text.strip())
    if isinstance(value, str):
        try:
            return float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            pass
    return value


# ---------------------------------------------------------------- commands


def check_sweep_args(args: argparse.Namespace) -> None:
    """What ``dlw sweep`` and ``%dlw sweep`` refuse before doing anything: an action without its experiment's
    name, a sweep without a notebook, a stray word after the notebook."""
    if args.target in SWEEP_ACTIONS:
        if not args.experiment:
            raise DLWError(f"dlw sweep {args.target}: give the experiment's name")
    elif not args.target:
        raise DLWError("dlw sweep: give a notebook (or an Experiment YAML) and the values to sweep with -p")
    elif args.experiment:
        raise DLWError(f"dlw sweep: unexpected {args.experiment!r} after the notebook")


def cmd_sweep(args: argparse.Namespace) -> int:
    from . import experiments

    check_sweep_args(args)
    if args.target in SWEEP_ACTIONS:
        return {"status": _status, "cancel": _cancel, "promote": _promote}[args.target](args)
    record = start_sweep(args)
    exp_name = record["name"]
    out = sys.stdout
    as_json = args.output == "json"
    if args.wait or args.follow:
        seen: dict[str, str] = {}

        def progress(rec: dict[str, Any]) -> None:
            if not args.follow or as_json:
                return
            for t in rec["trials"]:
                if seen.get(t["name"]) != t["state"]:
                    seen[t["name"]] = t["state"]
                    if t["state"] != "Waiting":
                        why = f" ({t['message']})" if t["state"] in ("Failed", "Stopped") and t.get("message") else ""
                        out.write(f"{t['name']} {_params(t['parameters'])}: {t['state']}{why}\n")
                        out.flush()

        record = experiments.wait(exp_name, on_change=progress)
    from .experiments.results import summary

    if as_json:
        fmt.print_json(summary(record), out)
    elif args.wait or args.follow:
        show_experiment(record, out)
    return 0 if not (args.wait or args.follow) or record["state"] == "Succeeded" else 1


def start_sweep(args: argparse.Namespace, hint: str = "dlw sweep status") -> dict[str, Any]:
    """Build and start the experiment ``dlw sweep``'s flags describe (``%dlw sweep`` too); says so unless
    ``-o json``. Returns its record."""
    from . import experiments
    from .cli import backend_from, job_options

    options = job_options(args)
    search = "random" if args.random is not None else None
    exp = experiments.build_experiment(
        args.target, parse_space(args.space), options, name=options.name, search=search, trials=args.random,
        seed=args.seed, parallel=args.parallel, metric=args.metric, goal=args.goal, stop_if=args.stop_if,
        fail_fast=args.fail_fast,
    )
    backend = backend_from(args)
    b_opts = {k: getattr(args, k) for k in ("kubeconfig", "namespace") if getattr(args, k, None)}
    record = experiments.create(exp, backend, {"name": backend.name, **b_opts})
    if args.output != "json":
        sys.stdout.write(f"Started experiment {exp.name}: {len(record['trials'])} trial(s), at most "
                         f"{exp.parallel} at once ({backend.name}); see: {hint} {exp.name}\n")
        sys.stdout.flush()
    return record


def _status(args: argparse.Namespace) -> int:
    from . import experiments
    from .experiments.results import summary

    record = experiments.get(args.experiment)
    if args.output == "json":
        fmt.print_json(summary(record), sys.stdout)
    else:
        show_experiment(record, sys.stdout)
    return 0


def _cancel(args: argparse.Namespace) -> int:
    from . import experiments
    from .experiments.results import counts

    record = experiments.cancel(args.experiment)
    parts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts(record).items()))
    print(f"{record['name']}: {record['state']} ({parts})")
    return 0


def _promote(args: argparse.Namespace) -> int:
    from . import experiments

    job = experiments.promote(args.experiment, args.new_name)
    if args.output == "json":
        fmt.print_json(job.to_dict(), sys.stdout)
    else:
        print(f"Submitted {job.name} (the best trial {job.provenance.get('promoted_from')}'s parameters and code)")
    return 0


def cmd_experiments(args: argparse.Namespace) -> int:
    from . import experiments

    items = experiments.list_experiments()
    if args.output == "json":
        fmt.print_json(items, sys.stdout)
    elif not items:
        print("No experiments yet. Start one with: dlw sweep NOTEBOOK.ipynb -p NAME=A,B,C")
    else:
        rows = [["NAME", "STATE", "TRIALS", "DONE", "RUNNING", "METRIC", "BEST", "AGE"]]
        import time

        for e in items:
            c = e["counts"]
            done = sum(c.get(s, 0) for s in ("Succeeded", "Failed", "Cancelled", "Stopped"))
            metric = f"{e['metric']} ({e['goal']})" if e["metric"] else "-"
            rows.append([e["name"], e["state"], str(len(e["trials"])), str(done), str(c.get("Running", 0)),
                         metric, e["best"] or "-", fmt.age(time.time() - e["created"] if e["created"] else None)])
        fmt.table(rows, sys.stdout)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .cli import backend_from
    from .experiments.compare import compare

    result = compare(args.names, backend_from(args))
    if args.output == "json":
        fmt.print_json(result, sys.stdout)
    else:
        show_comparison(result, sys.stdout)
    return 0


def cmd_tensorboard(args: argparse.Namespace) -> int:
    from . import tensorboard
    from .cli import backend_from

    dirs = tensorboard.logdirs(args.names, backend_from(args))
    proc, port = tensorboard.start(dirs)
    print(f"TensorBoard for {', '.join(dirs)} at http://127.0.0.1:{port}/ (Ctrl-C stops it; in JupyterLab use "
          "the panel's TensorBoard button, served behind the lab's login)", flush=True)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait(10)
        return 0


# ---------------------------------------------------------------- tables


def _params(values: dict[str, Any]) -> str:
    return " ".join(f"{k}={_value(v)}" for k, v in values.items())


def _value(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def show_experiment(record: dict[str, Any], out: TextIO) -> None:
    from .experiments.results import best_trial, duration

    spec = record["spec"]
    metric = spec.get("metric")
    best = best_trial(record)
    head = f"{record['name']}: {record['state']}, {len(record['trials'])} trial(s), parallel {spec.get('parallel', 1)}"
    out.write(head + (f", goal {spec.get('goal', 'max')} {metric}" if metric else "") + "\n")
    if record.get("message"):
        out.write(f"  {record['message']}\n")
    names = list(spec.get("parameters") or {})
    rows = [["TRIAL", *[n.upper() for n in names], "STATE"]
            + ([f"BEST {metric}".upper(), f"LAST {metric}".upper()] if metric else []) + ["DURATION", "REASON"]]
    for t in record["trials"]:
        rows.append([t["name"], *[_value(t["parameters"].get(n)) for n in names], t["state"]]
                    + ([_value(t.get("best")), _value(t.get("last"))] if metric else [])
                    + [fmt.age(duration(t)), t.get("reason") or ""])
    fmt.table(rows, out)
    if best is not None:
        out.write(f"best: {best['name']} ({metric} {_value(best['last'])}; {_params(best['parameters'])}); "
                  f"promote with: dlw sweep promote {record['name']}\n")


def show_comparison(result: dict[str, Any], out: TextIO) -> None:
    names = [j["name"] for j in result["jobs"]]
    rows = [["", *names]]
    fields = (("state", "state"), ("image", "image"), ("codeHash", "code hash"), ("gitCommit", "git commit"))
    for j_key, label in fields:
        rows.append([label, *[_value(j.get(j_key)) for j in result["jobs"]]])
    for key in result["parameters"]:
        rows.append([f"param {key}", *[_value(j["parameters"].get(key)) for j in result["jobs"]]])
    for key in result["metrics"]:
        rows.append([f"last {key}", *[_value((j["lastMetrics"].get(key) or [None, None])[1]) for j in result["jobs"]]])
    fmt.table(rows, out)
    if result["packages"]:
        out.write("packages that differ:\n")
        prow = [["PACKAGE", *names]] + [[p, *[v or "-" for v in vs]] for p, vs in result["packages"].items()]
        fmt.table(prow, out)
    same = result["same"]
    if same:
        out.write("same in all: " + ", ".join(same) + "\n")
