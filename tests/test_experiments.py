"""Sweeps on the local runner, as a researcher sees them: every point runs as its own job, at most
``parallel`` at once, early stopping and cancel end trials, a failed trial leaves the others alone,
the best trial is promoted, and the sweep goes on after the submitting process has exited."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_until, write_notebook

from dlw_magic import core, experiments
from dlw_magic.cli import main as dlw
from dlw_magic.errors import Conflict, DLWError, NotFound
from dlw_magic.experiments import runner, store
from dlw_magic.experiments.space import points
from dlw_magic.experiments.stopping import stop_reason
from dlw_magic.spec.experiment import Experiment, parse_stop_rules

# accuracy grows with lr and batch; loss grows with lr; `fail` and `sleep` shape a trial's life.
TRAIN = """
import time
from dlw_magic import log_metrics
for step in range(1, steps + 1):
    if fail and step == 2:
        raise SystemExit("diverged")
    log_metrics(step=step, accuracy=lr * batch * step, loss=lr * step)
    time.sleep(sleep)
print("trained", lr, batch)
"""


@pytest.fixture
def nb(tmp_path: Path, dlw_home: Path) -> Path:
    return write_notebook(tmp_path / "train.ipynb", [
        ("lr = 0.1\nbatch = 32\nsteps = 3\nsleep = 0.0\nfail = False\n", ["parameters"]), TRAIN,
    ])


def sweep(nb: Path, space: dict[str, Any], **settings: Any) -> dict[str, Any]:
    settings.setdefault("name", "exp")
    exp = experiments.build_experiment(nb, space, **settings)
    return experiments.create(exp)


def finished(name: str, timeout: float = 120) -> dict[str, Any]:
    record = experiments.wait(name, timeout=timeout)
    assert record["state"] in runner.EXPERIMENT_FINAL, record
    return record


# ---------------------------------------------------------------- the model


def test_grid_points_cover_every_combination() -> None:
    exp = Experiment(name="g", job={"source": {"notebook": "x.ipynb"}},
                     parameters={"lr": [0.1, 0.2], "batch": [1, 2, 3]})
    got = points(exp)
    assert len(got) == 6
    assert {(p["lr"], p["batch"]) for p in got} == {(a, b) for a in (0.1, 0.2) for b in (1, 2, 3)}


def test_random_points_stay_in_their_ranges_and_repeat_with_the_seed() -> None:
    exp = Experiment(name="r", job={"source": {"notebook": "x.ipynb"}}, search="random", trials=200, parameters={
        "lr": {"min": 1e-5, "max": 1e-1, "log": True}, "layers": {"min": 1, "max": 4}, "opt": ["sgd", "adam"],
        "drop": {"min": 0.0, "max": 0.5}})
    got = points(exp, seed=7)
    assert got == points(exp, seed=7) and got != points(exp, seed=8)
    assert all(1e-5 <= p["lr"] <= 1e-1 and 0.0 <= p["drop"] <= 0.5 for p in got)
    assert {p["layers"] for p in got} == {1, 2, 3, 4} and {p["opt"] for p in got} == {"sgd", "adam"}
    # log-uniform: about as many draws in each decade (a uniform draw would put ~90% in the top one)
    low = sum(p["lr"] < 1e-3 for p in got)
    assert 60 < low < 140


@pytest.mark.parametrize(("data", "message"), [
    ({"parameters": {"lr": {"min": 0.1, "max": 1}}}, "parameters.lr: a range needs search: random"),
    ({"parameters": {"lr": [0.1]}, "search": "random"}, "trials: random search needs"),
    ({"parameters": {"lr": {"min": 0, "max": 1, "log": True}}, "search": "random", "trials": 3},
     "log range needs min > 0"),
    ({"parameters": {"lr": [0.1]}, "stopIf": "loss is big"}, "stopIf"),
    ({"parameters": {"lr": [0.1]}, "stopIf": "median after 2 steps"}, "set metric too"),
    ({"parameters": {"lr": [0.1]}, "name": "x" * 60}, "name"),
    ({"parameters": {"lr": list(range(40)), "b": list(range(40))}}, "over 1000"),
    ({"parameters": {}}, "at least one parameter"),
    ({"parameters": {"lr": [0.1]}, "parallel": 0}, "parallel"),
])
def test_bad_experiment_specs_name_the_field(data: dict[str, Any], message: str) -> None:
    from dlw_magic.spec.validation import validate

    full = {"name": "e", "job": {"source": {"notebook": "x.ipynb"}}, **data}
    with pytest.raises(DLWError) as err:
        validate(Experiment, full, "exp.yaml")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_median_rule_stops_a_trial_worse_than_the_median_of_the_others() -> None:
    rules = parse_stop_rules("median after 2 steps")
    others = [{"acc": [[1, 0.5], [2, 0.8]]}, {"acc": [[1, 0.4], [2, 0.7]]}, {"acc": [[1, 0.6]]}]
    assert stop_reason(rules, {"acc": [[1, 0.1], [2, 0.2]]}, others, "acc", "max") is not None
    assert stop_reason(rules, {"acc": [[1, 0.1], [2, 0.9]]}, others, "acc", "max") is None
    assert stop_reason(rules, {"acc": [[1, 0.1]]}, others, "acc", "max") is None  # not yet 2 steps
    assert stop_reason(rules, {"acc": [[1, 0.1], [2, 0.2]]}, others[:1], "acc", "max") is None  # too few others


def test_a_value_that_does_not_fit_the_parameter_type_fails_before_anything_runs(nb: Path) -> None:
    with pytest.raises(DLWError, match="parameter 'batch' expects int"):
        sweep(nb, {"batch": [32, "big"]})
    # A name the parameters cell does not define is an extra parameter (docs/conversion.md), not an error.
    assert store.names() == [] and core.list_jobs() == []


# ---------------------------------------------------------------- on the local runner


def test_grid_runs_each_point_as_a_labelled_job_and_names_the_best(nb: Path) -> None:
    record = finished(sweep(nb, {"lr": [0.01, 0.1], "batch": [16, 32]}, parallel=2, metric="accuracy")["name"])
    assert record["state"] == "Succeeded"
    trials = {t["name"]: t for t in record["trials"]}
    assert sorted((t["parameters"]["lr"], t["parameters"]["batch"]) for t in trials.values()) == [
        (0.01, 16), (0.01, 32), (0.1, 16), (0.1, 32)]
    for t in trials.values():
        job = core.get_job(t["name"])
        assert job.state.value == "Succeeded"
        assert job.provenance["experiment"] == "exp" and job.provenance["parameters"]["lr"] == t["parameters"]["lr"]
        assert t["last"] == pytest.approx(t["parameters"]["lr"] * t["parameters"]["batch"] * 3)
    assert record["best"] == "exp-003"  # lr 0.1, batch 32


def test_random_search_draws_n_trials_within_the_ranges(nb: Path) -> None:
    record = finished(sweep(nb, {"lr": {"min": 1e-3, "max": 1e-1, "log": True}, "batch": {"min": 8, "max": 64}},
                            search="random", trials=3, parallel=3, seed=1)["name"])
    assert [t["state"] for t in record["trials"]] == ["Succeeded"] * 3
    for t in record["trials"]:
        assert 1e-3 <= t["parameters"]["lr"] <= 1e-1 and isinstance(t["parameters"]["batch"], int)
        assert core.get_job(t["name"]).provenance["parameters"]["batch"] == t["parameters"]["batch"]


def test_parallel_limit_holds_trials_in_dlw_not_as_queued_jobs(nb: Path) -> None:
    name = sweep(nb, {"batch": [1, 2, 3, 4, 5], "sleep": [0.2]}, parallel=2)["name"]
    seen_jobs: list[int] = []

    def jobs_at_most_two_unfinished() -> bool:
        jobs = [j for j in core.list_jobs() if j.provenance.get("experiment") == name]
        seen_jobs.append(sum(not j.state.finished for j in jobs))
        return store.load(name)["state"] in runner.EXPERIMENT_FINAL

    assert wait_until(jobs_at_most_two_unfinished, timeout=120, interval=0.02)
    assert max(seen_jobs) == 2  # two at once were used, never three
    record = store.load(name)
    spans = sorted((t["started"], t["finished"]) for t in record["trials"])
    overlap = max(sum(s <= start < f for s, f in spans) for start, _ in spans)
    assert overlap <= 2 and len(spans) == 5


def test_early_stopping_ends_trials_whose_logged_loss_crosses_the_rule(nb: Path, tmp_path: Path) -> None:
    # loss = lr * step: lr 1.0 passes 2 at step 3; lr 0.01 never does. The stopped trial would run 6 s more.
    exp = experiments.build_experiment(nb, {"lr": [1.0, 0.01], "steps": [20], "sleep": [0.3]}, name="stop", parallel=2,
                                       stop_if="loss > 2 after 3 steps")
    record = finished(experiments.create(exp)["name"], timeout=60)
    stopped, kept = record["trials"]
    assert stopped["state"] == "Stopped" and stopped["reason"] == "EarlyStopped" and "loss" in stopped["message"]
    assert core.get_job(stopped["name"]).state.value == "Cancelled"
    assert kept["state"] == "Succeeded"
    assert record["state"] == "Succeeded"


def test_a_failed_trial_does_not_stop_the_others_unless_fail_fast(nb: Path) -> None:
    record = finished(sweep(nb, {"fail": [False, True, False]}, parallel=1)["name"])
    assert [t["state"] for t in record["trials"]] == ["Succeeded", "Failed", "Succeeded"]
    assert record["state"] == "Succeeded"
    record = finished(sweep(nb, {"fail": [True, False, False]}, name="ff", parallel=1, fail_fast=True)["name"])
    assert [t["state"] for t in record["trials"]] == ["Failed", "Cancelled", "Cancelled"]
    assert record["state"] == "Failed" and "failFast" in record["message"]
    with pytest.raises(NotFound):
        core.get_job("ff-001")  # never submitted


def test_cancel_cascades_to_running_trials_and_waiting_ones_never_start(nb: Path) -> None:
    # the first trial sleeps long enough to be cancelled while it runs
    name = sweep(nb, {"batch": [1, 2, 3], "sleep": [10.0]}, parallel=1, name="c")["name"]
    assert wait_until(lambda: store.load(name)["trials"][0]["state"] in ("Queued", "Running"), timeout=30)
    record = experiments.cancel(name)
    assert record["state"] == "Cancelled"
    assert [t["state"] for t in record["trials"]][1:] == ["Cancelled", "Cancelled"]
    first = core.get_job("c-000")
    assert first.state.finished
    for trial in ("c-001", "c-002"):
        with pytest.raises(NotFound):
            core.get_job(trial)
    with pytest.raises(Conflict):
        experiments.cancel(name)


def test_promote_reruns_the_best_trials_parameters_as_an_ordinary_job(nb: Path) -> None:
    name = sweep(nb, {"lr": [0.01, 0.5]}, parallel=2, metric="loss", goal="min")["name"]
    record = finished(name)
    assert record["best"] == "exp-000"  # lowest loss: lr 0.01
    job = experiments.promote(name, "winner")
    assert job.name == "winner" and job.provenance["promoted_from"] == "exp-000"
    assert "experiment" not in job.provenance  # not a trial: the experiment's tables leave it out
    job = core.wait("winner", timeout=60)
    assert job.state.value == "Succeeded" and job.spec["parameters"]["lr"] == 0.01


def test_promote_without_a_goal_metric_says_why(nb: Path) -> None:
    finished(sweep(nb, {"lr": [0.01]})["name"])
    with pytest.raises(DLWError, match="no goal metric"):
        experiments.promote("exp")


def test_trials_run_the_notebook_as_it_was_when_the_sweep_started(nb: Path) -> None:
    name = sweep(nb, {"batch": [1, 2, 3]}, parallel=1)["name"]
    write_notebook(nb, [("lr = 0.1\nbatch = 32\nsteps = 3\nsleep = 0.0\nfail = False\n", ["parameters"]),
                        "raise SystemExit('edited')"])
    record = finished(name)
    assert [t["state"] for t in record["trials"]] == ["Succeeded"] * 3


def test_the_sweep_goes_on_after_the_cli_exits_and_its_runner_is_killed(nb: Path, tmp_path: Path) -> None:
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-m", "dlw_magic.cli", "sweep", str(nb), "-p", "batch=1,2,3,4",
                          "--parallel", "1", "--name", "bg", "-o", "json"], capture_output=True, text=True,
                         env=env, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["name"] == "bg"
    record = store.load("bg")
    pid = record["runner"]["pid"]
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: not runner._alive(record["runner"]), timeout=10)
    record = finished("bg")  # a reader notices the runner is gone and starts another
    assert record["state"] == "Succeeded" and record["runner"]["pid"] != pid
    assert [t["state"] for t in record["trials"]] == ["Succeeded"] * 4


def test_cli_status_json_lists_every_trial_and_the_best(nb: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert dlw(["sweep", str(nb), "-p", "lr=0.01,0.1", "--metric", "accuracy", "--name", "cli", "--wait"]) == 0
    table = capsys.readouterr().out
    assert "cli-001" in table and "best: cli-001" in table
    assert dlw(["sweep", "status", "cli", "-o", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["best"] == "cli-001" and data["state"] == "Succeeded"
    assert [(t["name"], t["parameters"], t["state"]) for t in data["trials"]] == [
        ("cli-000", {"lr": 0.01}, "Succeeded"), ("cli-001", {"lr": 0.1}, "Succeeded")]
    assert data["trials"][1]["curve"] == [[1, 3.2], [2, 6.4], [3, pytest.approx(9.6)]]
    assert dlw(["experiments", "-o", "json"]) == 0
    assert [e["name"] for e in json.loads(capsys.readouterr().out)] == ["cli"]


def test_cli_errors_are_one_line(nb: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert dlw(["sweep", str(nb), "-p", "lr"]) == 1
    assert capsys.readouterr().err.strip().count("\n") == 0
    assert dlw(["sweep", str(nb), "-p", "lr=1e-4..1e-1"]) == 1
    assert "a range needs search: random" in capsys.readouterr().err
    assert dlw(["sweep", "status", "nope"]) == 1
    assert "no experiment named 'nope'" in capsys.readouterr().err


def test_experiment_yaml_runs_like_the_flags(nb: Path, tmp_path: Path) -> None:
    spec = tmp_path / "sweep.yaml"
    spec.write_text("apiVersion: dlw/v1\nkind: Experiment\nname: fromyaml\njob:\n  source: {notebook: train.ipynb}\n"
                    "  parameters: {steps: 2}\nparameters:\n  lr: [0.01, 0.02]\nmetric: accuracy\nparallel: 2\n")
    exp = experiments.build_experiment(spec)
    record = finished(experiments.create(exp)["name"])
    assert record["state"] == "Succeeded"
    assert [t["step"] for t in record["trials"]] == [2, 2]  # the job's fixed parameter applied
