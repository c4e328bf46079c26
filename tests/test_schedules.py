"""Job definitions on a schedule: validation, the local scheduler's policies, restarts, two schedulers at
once, the CLI, and the Kubernetes CronJob they render.

The scheduler is driven with a given clock (``tick(now)``, ``serve(clock=...)``): no test waits for a
real minute. Runs are real local jobs.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dlw_magic import cli, core
from dlw_magic.backends import get_backend
from dlw_magic.errors import DLWError, NotFound
from dlw_magic.schedules import api, cron, cronjob, service
from dlw_magic.schedules.model import Definition
from dlw_magic.schedules.scheduler import tick
from dlw_magic.schedules.store import ScheduleStore

BERLIN = "Europe/Berlin"
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # definitions are made at noon UTC on 1 Dec


@pytest.fixture
def home(dlw_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DLW_SCHEDULER_AUTOSTART", "0")  # tests drive the scheduler themselves
    return dlw_home


def _nb(path: Path, code: str = "print('ran', lr)") -> Path:
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {"name": "python3", "display_name": "P"}},
          "cells": [{"cell_type": "code", "execution_count": None, "outputs": [], "source": "lr = 0.1",
                     "metadata": {"tags": ["parameters"]}},
                    {"cell_type": "code", "execution_count": None, "outputs": [], "source": code, "metadata": {}}]}
    path.write_text(json.dumps(nb))
    return path


def _blocking(path: Path, stop: Path) -> Path:
    """A notebook whose job runs until ``stop`` exists."""
    return _nb(path, f"import time, pathlib\nwhile not pathlib.Path({str(stop)!r}).exists():\n    time.sleep(0.1)")


def _at(day: int, hour: int, minute: int = 0, second: int = 5, tz: str = BERLIN) -> datetime:
    from zoneinfo import ZoneInfo

    return datetime(2026, 12, day, hour, minute, second, tzinfo=ZoneInfo(tz)).astimezone(UTC)


def _create(nb: Path, **kw: object) -> Definition:
    kw.setdefault("name", "nightly")
    kw.setdefault("tz", BERLIN)
    return api.create(nb, str(kw.pop("cron", "0 3 * * *")), now=T0, **kw)  # type: ignore[arg-type]


def _store() -> ScheduleStore:
    return api.store_for()


def _runs(name: str = "nightly") -> list[dict]:
    return api.show(name).to_dict()["runs"]


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("argv, words", [
    (["--cron", "61 * * * *"], "cron: '61 * * * *' is not a cron expression"),
    (["--cron", "0 3 * *"], "has 4 fields; expected 5"),
    (["--cron", "0 0 30 2 *"], "never fires (no such date, e.g. 30 February)"),
    (["--cron", "@reboot"], "unknown alias '@reboot'"),
    (["--cron", "@daily", "--timezone", "Mars/Olympus_Mons"], "timezone: 'Mars/Olympus_Mons' is not a time zone"),
    (["--cron", "@daily", "--timezone", "../../etc/passwd"], "is not a time zone"),
    (["--cron", "@daily", "--concurrency", "sometimes"], "concurrency: 'sometimes' is not a policy"),
    (["--cron", "@daily", "--starting-deadline", "soon"], "starting deadline:"),
    (["--cron", "@daily", "--keep", "-1"], "keep: expected a number of runs"),
    (["--cron", "@daily", "--name", "Bad_Name"], "name: 'Bad_Name' is not a schedule name"),
])
def test_bad_definitions_are_one_line_and_nothing_is_kept(home: Path, tmp_path: Path, argv: list[str], words: str,
                                                         capsys: pytest.CaptureFixture[str]):
    nb = _nb(tmp_path / "nb.ipynb")
    assert cli.main(["schedule", "create", str(nb), *argv]) == 1
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1
    assert _store().definitions() == []


def test_a_missing_notebook_is_refused_at_creation(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert cli.main(["schedule", "create", str(tmp_path / "nope.ipynb"), "--cron", "@daily"]) == 1
    err = capsys.readouterr().err
    assert "nope.ipynb: notebook not found" in err and err.count("\n") == 1


def test_cron_in_a_time_zone_follows_daylight_saving():
    fires = cron.fires_between("0 3 * * *", BERLIN, datetime(2026, 3, 27, tzinfo=UTC),
                               datetime(2026, 3, 30, 3, tzinfo=UTC))
    assert [f.hour for f in fires] == [2, 2, 1, 1]  # 03:00 Berlin: UTC+1, then UTC+2 from 29 March
    assert cron.expand("@hourly") == "0 * * * *"
    leap = cron.next_fire("0 0 29 2 *", "UTC", datetime(2026, 1, 1, tzinfo=UTC))
    assert leap is not None and leap.year == 2028


# ---------------------------------------------------------------- the scheduler


def test_fires_on_time_once_and_names_the_run(home: Path, tmp_path: Path):
    _create(_nb(tmp_path / "nb.ipynb", "from dlw_magic import log_metrics\nlog_metrics(step=3, loss=0.25)"))
    backend, store = get_backend(), _store()
    assert tick(_at(2, 2, 59), backend, store) == []  # 02:59 Berlin: not yet
    events = tick(_at(2, 3, 0), backend, store)
    assert [(e.action, e.job) for e in events] == [("submitted", "nightly-2612020300")]
    assert tick(_at(2, 3, 0, 30), backend, store) == []  # the same fire never twice
    job = core.wait("nightly-2612020300", timeout=120)
    assert job.state.value == "Succeeded"
    runs = _runs()
    assert [(r["job"], r["state"], r["metrics"]) for r in runs] == [
        ("nightly-2612020300", "Succeeded", "loss 0.25 (step 3)")]  # the panel shows a run's last metrics


def test_two_schedulers_at_once_start_one_run(home: Path, tmp_path: Path):
    _create(_nb(tmp_path / "nb.ipynb"))
    barrier = threading.Barrier(4)
    results: list[list] = []

    def scheduler() -> None:
        store = ScheduleStore(home)  # its own connections, as a second server's scheduler has
        barrier.wait()
        results.append(tick(_at(2, 3, 0), get_backend(), store))

    threads = [threading.Thread(target=scheduler) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    submitted = [e.job for r in results for e in r]
    assert submitted == ["nightly-2612020300"]
    assert len(_runs()) == 1


def test_concurrency_forbid_skips_while_a_run_is_active(home: Path, tmp_path: Path):
    stop = tmp_path / "stop"
    _create(_blocking(tmp_path / "nb.ipynb", stop), concurrency="forbid")
    backend, store = get_backend(), _store()
    tick(_at(2, 3, 0), backend, store)
    events = tick(_at(3, 3, 0), backend, store)
    assert [e.action for e in events] == ["skipped"]
    assert "nightly-2612020300 was still running" in (events[0].message or "")
    stop.touch()
    core.wait("nightly-2612020300", timeout=120)
    assert [e.job for e in tick(_at(4, 3, 0), backend, store)] == ["nightly-2612040300"]
    states = {r["job"] or "skipped": r["state"] for r in _runs()}
    assert states["skipped"] == "Skipped"


def test_concurrency_replace_cancels_the_active_run(home: Path, tmp_path: Path):
    stop = tmp_path / "stop"
    _create(_blocking(tmp_path / "nb.ipynb", stop), concurrency="Replace")
    backend, store = get_backend(), _store()
    tick(_at(2, 3, 0), backend, store)
    events = tick(_at(3, 3, 0), backend, store)
    assert [(e.action, e.job) for e in events] == [("replaced", "nightly-2612030300")]
    assert core.wait("nightly-2612020300", timeout=60).state.value == "Cancelled"
    stop.touch()
    assert core.wait("nightly-2612030300", timeout=120).state.value == "Succeeded"


def test_concurrency_allow_runs_side_by_side(home: Path, tmp_path: Path):
    stop = tmp_path / "stop"
    _create(_blocking(tmp_path / "nb.ipynb", stop), concurrency="Allow")
    backend, store = get_backend(), _store()
    tick(_at(2, 3, 0), backend, store)
    tick(_at(3, 3, 0), backend, store)
    active = [j.name for j in core.list_jobs() if not j.state.finished]
    assert sorted(active) == ["nightly-2612020300", "nightly-2612030300"]
    stop.touch()
    for name in active:
        core.wait(name, timeout=120)


def test_missed_fires_run_once_without_a_deadline(home: Path, tmp_path: Path):
    _create(_nb(tmp_path / "nb.ipynb"))
    events = tick(_at(5, 9, 0), get_backend(), _store())  # off since 1 Dec: fires of 2, 3, 4, 5 Dec missed
    assert [e.job for e in events] == ["nightly-2612050300"]  # the newest only, as a CronJob does
    assert "3 earlier fire(s) missed" in _runs()[0]["message"]


def test_missed_fire_past_the_starting_deadline_is_recorded_not_run(home: Path, tmp_path: Path):
    _create(_nb(tmp_path / "nb.ipynb"), starting_deadline="10m")
    backend, store = get_backend(), _store()
    events = tick(_at(2, 3, 9), backend, store)  # 9 minutes late: still starts
    assert [e.action for e in events] == ["submitted"]
    events = tick(_at(3, 4, 0), backend, store)  # an hour late
    assert [e.action for e in events] == ["missed"]
    run = _runs()[0]
    assert (run["job"], run["state"], run["reason"]) == (None, "Missed", "StartingDeadlineExceeded")
    assert tick(_at(3, 4, 5), backend, store) == []


def test_a_deleted_notebook_fails_its_run_and_the_scheduler_goes_on(home: Path, tmp_path: Path):
    gone = _nb(tmp_path / "gone.ipynb")
    _create(gone, name="first")
    broken = _create(_nb(tmp_path / "broken.ipynb"), name="broken")
    _create(_nb(tmp_path / "kept.ipynb"), name="second")
    gone.unlink()
    broken.spec["workers"] = 0  # a definition spoilt in the database behind the scheduler's back
    _store().save(broken)
    events = {e.definition: e for e in tick(_at(2, 3, 0), get_backend(), _store())}
    assert events["first"].action == "failed" and "gone.ipynb: notebook not found" in (events["first"].message or "")
    assert events["broken"].action == "failed" and "workers" in (events["broken"].message or "")
    assert events["second"].action == "submitted"
    run = _runs("first")[0]
    assert (run["state"], run["reason"]) == ("Failed", "SubmitFailed")


def test_keep_last_n_deletes_older_runs(home: Path, tmp_path: Path):
    _create(_nb(tmp_path / "nb.ipynb"), keep=1, cron="@hourly", tz="UTC")
    backend, store = get_backend(), _store()
    for hour in (13, 14, 15):
        (event,) = tick(_at(1, hour, 0, tz="UTC"), backend, store)
        core.wait(event.job or "", timeout=120)
    tick(_at(1, 16, 0, tz="UTC"), backend, store)
    kept = [r["job"] for r in _runs()]
    assert kept == ["nightly-2612011600", "nightly-2612011500"]  # the active one and the newest finished one
    with pytest.raises(NotFound):
        core.get_job("nightly-2612011300", details=False)
    core.wait("nightly-2612011600", timeout=120)


def test_pause_and_resume_do_not_make_up_missed_fires(home: Path, tmp_path: Path):
    _create(_nb(tmp_path / "nb.ipynb"))
    backend, store = get_backend(), _store()
    api.set_paused("nightly", True)
    assert tick(_at(2, 3, 0), backend, store) == []
    api.set_paused("nightly", False, now=_at(4, 12, 0))
    assert tick(_at(4, 12, 1), backend, store) == []  # 2, 3, 4 Dec passed while paused
    assert [e.job for e in tick(_at(5, 3, 0), backend, store)] == ["nightly-2612050300"]


def test_the_service_survives_a_restart_and_hands_over_its_lease(home: Path, tmp_path: Path):
    _create(_nb(tmp_path / "nb.ipynb"))
    clock = [_at(2, 3, 0).timestamp()]
    slept: list[float] = []
    service.serve(home, clock=lambda: clock[0], sleep=slept.append, rounds=1, holder="server-a")
    assert [r["job"] for r in _runs()] == ["nightly-2612020300"]
    assert 0 < slept[-1] <= service.MAX_SLEEP
    core.wait("nightly-2612020300", timeout=120)  # done before the next fire (concurrency Forbid)
    # A scheduler that was killed keeps its lease until it lapses: another one stands by until then.
    store = _store()
    assert store.acquire("server-a", clock[0], service.LEASE_SECONDS)
    clock[0] = _at(3, 3, 0).timestamp()
    assert store.acquire("server-a", clock[0] - 10, service.LEASE_SECONDS)  # renewed 10 s ago
    service.serve(home, clock=lambda: clock[0], sleep=slept.append, rounds=1, holder="server-b")
    assert len(_runs()) == 1  # b stood by
    clock[0] += service.LEASE_SECONDS  # a's lease lapsed: b (the restarted server) takes over and catches up
    service.serve(home, clock=lambda: clock[0], sleep=slept.append, rounds=1, holder="server-b")
    assert [r["job"] for r in _runs()] == ["nightly-2612030300", "nightly-2612020300"]
    assert not service.running(home, clock[0])  # released on exit


# ---------------------------------------------------------------- faces


def test_cli_create_list_show_edit_pause_run_delete(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    nb = _nb(tmp_path / "train.ipynb")
    assert cli.main(["schedule", "create", str(nb), "--cron", "@daily", "--timezone", BERLIN, "--name", "daily",
                     "-p", "lr=0.5", "--keep", "3"]) == 0
    out = capsys.readouterr().out
    assert "Scheduled daily: @daily (Europe/Berlin) = 0 0 * * *" in out and "next run" in out
    assert cli.main(["schedule", "list"]) == 0
    out = capsys.readouterr().out
    assert "daily" in out and "@daily" in out
    assert cli.main(["schedule", "edit", "daily", "--cron", "30 6 * * 1-5", "--concurrency", "replace"]) == 0
    assert "30 6 * * 1-5 (Europe/Berlin), concurrency Replace, keep 3" in capsys.readouterr().out
    assert cli.main(["schedule", "pause", "daily"]) == 0
    assert cli.main(["schedule", "list", "-o", "json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert listed["paused"] is True and listed["nextRun"] is None and listed["cron"] == "30 6 * * 1-5"
    assert cli.main(["schedule", "run", "daily"]) == 0
    out = capsys.readouterr().out
    job = out.split()[1]
    assert job.startswith("daily-")
    assert core.wait(job, timeout=120).state.value == "Succeeded"
    assert get_backend().get(job).provenance["parameters"]["lr"] == 0.5
    assert cli.main(["schedule", "show", "daily"]) == 0
    out = capsys.readouterr().out
    assert job in out and "Succeeded" in out and "concurrency Replace" in out
    assert cli.main(["schedule", "delete", "daily"]) == 0
    capsys.readouterr()
    assert cli.main(["schedule", "show", "daily"]) == 1
    assert "no schedule named 'daily'" in capsys.readouterr().err
    assert core.get_job(job, details=False).name == job  # its runs stay


def test_cronjob_renders_policies_and_validates(tmp_path: Path):
    from dlw_magic.workspace import load_workspace
    from tests.k8s_schema import validate_objects

    d = Definition(name="nightly", cron="@daily", timezone=BERLIN, concurrency="Forbid", starting_deadline=600,
                   keep=3, spec={"source": {"notebook": "/home/jovyan/train.ipynb"}}, paused=True)
    objects = cronjob.render(d, namespace="dlw-alice", image="ghcr.io/x/nb@sha256:" + "a" * 64, user="alice",
                             workspace=load_workspace())
    assert validate_objects(objects) == 2
    cj = objects[1]
    assert (cj["kind"], cj["metadata"]["namespace"]) == ("CronJob", "dlw-alice")
    spec = cj["spec"]
    assert (spec["schedule"], spec["timeZone"], spec["concurrencyPolicy"]) == ("0 0 * * *", BERLIN, "Forbid")
    assert (spec["startingDeadlineSeconds"], spec["successfulJobsHistoryLimit"], spec["suspend"]) == (600, 3, True)
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["securityContext"]["privileged"] is False
    assert "dlw_magic.schedules.fire" in container["command"]
    assert any(v.get("persistentVolumeClaim") for v in pod["volumes"])  # reads the notebook from the home
    definition = json.loads(objects[0]["data"]["definition.json"])
    assert definition["spec"]["source"]["notebook"] == "/home/jovyan/train.ipynb"
    # The admin YAML the notebook has (the hub's ConfigMap), not the built-in default, for the submission.
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["DLW_WORKSPACE_CONFIG"] == "/etc/dlw/workspace.yaml"
    assert {"name": "dlw-workspace", "configMap": {"name": "dlw-workspace"}} in pod["volumes"]
    assert {"name": "dlw-workspace", "mountPath": "/etc/dlw", "readOnly": True} in container["volumeMounts"]


def test_the_fire_pod_passes_the_user_namespaces_pod_policy():
    """The CronJob controller creates the fire pod in the user's namespace, where DLW's pod policy (Pod
    Security "restricted") refuses a pod without runAsNonRoot: the fire would never run."""
    pytest.importorskip("celpy", reason="cel-python (the test extra) evaluates the admission policies")
    from dlw_magic.workspace import load_workspace
    from tests.test_hub_cluster import policy, user_namespace

    d = Definition(name="nightly", cron="@daily", spec={"source": {"notebook": "/home/jovyan/train.ipynb"}})
    cj = cronjob.render(d, namespace="dlw-alice", image="ghcr.io/x/nb:1", user="alice", workspace=load_workspace())[1]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nightly-1"},
           "spec": cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]}
    job_controller = "system:serviceaccount:kube-system:job-controller"
    assert policy("user-pods").denials(pod, user_namespace(), user=job_controller) == []


def test_fire_names_the_run_by_minute_in_the_zone(home: Path, tmp_path: Path):
    from dlw_magic.schedules.fire import fire

    nb = _nb(tmp_path / "nb.ipynb")
    path = tmp_path / "definition.json"
    path.write_text(json.dumps({"name": "hourly", "timezone": "Asia/Kolkata",
                                "spec": {"source": {"notebook": str(nb)}}}))
    name = fire(path, now=datetime(2026, 12, 1, 10, 0, 7, tzinfo=UTC))
    assert name == "hourly-2612011530"
    with pytest.raises(DLWError, match="already exists"):  # a second pod for the same minute
        fire(path, now=datetime(2026, 12, 1, 10, 0, 40, tzinfo=UTC))
    assert core.wait(name, timeout=120).state.value == "Succeeded"


def test_magic_schedules_the_notebook_it_runs_in(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]):
    from IPython.core.interactiveshell import InteractiveShell

    nb = _nb(tmp_path / "daily.ipynb")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JPY_SESSION_NAME", str(nb))
    sh = InteractiveShell.instance()
    sh.run_line_magic("load_ext", "dlw_magic")
    sh.run_line_magic("dlw", "schedule create --cron '15 4 * * *' --timezone UTC")
    assert "Scheduled daily: 15 4 * * * (UTC)" in capsys.readouterr().out
    assert api.show("daily").definition.notebook == str(nb.resolve())
    sh.run_line_magic("dlw", "schedule create --cron 'every day'")
    err = capsys.readouterr().err
    assert "%dlw schedule: cron: 'every day' has 2 fields; expected 5" in err
