"""GPU-hours and budgets: real local jobs (``DLW_FAKE_GPUS`` gives the scheduler GPUs here) counted from
their records, ``dlw admin usage`` and ``dlw usage``, a budget that warns, then refuses a new GPU job while
the running one goes on, and resets with the period; pod lifetimes x GPU requests on Kubernetes."""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from dlw_magic import core
from dlw_magic.backends import JobState
from dlw_magic.cli import main
from dlw_magic.usage import GpuUse, budget_state, hours_by_user, local_uses, pod_uses
from dlw_magic.workspace import load_workspace
from dlw_magic.workspace.budgets import period_bounds

ROOT = Path(__file__).resolve().parents[1]
SLEEP = "import time, sys\ntime.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else {seconds})\n"


@pytest.fixture
def gpu_home(dlw_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DLW_FAKE_GPUS", "2")
    monkeypatch.setenv("DLW_USER", "alice")
    monkeypatch.setenv("DLW_GROUPS", "research")
    return dlw_home


def budget_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **budgets: object) -> Path:
    data = yaml.safe_load((ROOT / "hub_config" / "workspace.yaml").read_text())
    data["budgets"] = budgets
    path = tmp_path / f"ws-{time.monotonic_ns()}.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("DLW_WORKSPACE_CONFIG", str(path))
    return path


def script(tmp_path: Path, seconds: float) -> Path:
    path = tmp_path / f"sleep{seconds:g}.py"
    path.write_text(SLEEP.format(seconds=seconds))
    return path


def wait_state(name: str, states: set[str], timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while True:
        state = core.get_job(name, details=False).state.value
        if state in states or time.monotonic() > deadline:
            return state
        time.sleep(0.2)


def test_usage_counts_gpu_hours_of_real_jobs(gpu_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["train", str(script(tmp_path, 1.5)), "--name", "two-gpus", "--gpus", "1", "--workers", "2",
                 "--wait"]) == 0
    assert main(["train", str(script(tmp_path, 0.1)), "--name", "cpu-only", "--wait"]) == 0
    job = core.get_job("two-gpus", details=False)
    held = (job.finished or 0) - (job.started or 0)
    capsys.readouterr()
    assert main(["admin", "usage", "--since", "1d", "-o", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["user"] for r in rows] == ["alice"] and rows[0]["items"] == 1  # the CPU job holds no GPU
    assert rows[0]["gpu_hours"] == pytest.approx(2 * held / 3600, rel=1e-3)  # 2 workers x 1 GPU
    assert main(["admin", "usage", "--since", "1d", "-o", "csv"]) == 0
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert table[0]["user"] == "alice" and float(table[0]["gpu_hours"]) > 0
    assert main(["admin", "usage", "--since", "1d"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[0] == "alice"
    # A date as the window start; a typo is a one-line error.
    assert main(["admin", "usage", "--since", "2020-01-01", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["gpu_hours"] > 0
    assert main(["admin", "usage", "--since", "soon"]) == 1
    assert "--since 'soon': expected 7d, 12h, 30m or a date" in capsys.readouterr().err


def test_budget_warns_then_refuses_new_gpu_jobs_and_leaves_running_work(
    gpu_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
):
    # research members get 0.002 GPU-hours (7.2 GPU-seconds) a week; warned at half of it.
    budget_workspace(tmp_path, monkeypatch, period="week", warnAt=0.5, groups={"research": 0.002})
    assert main(["train", str(script(tmp_path, 30)), "--name", "long", "--gpus", "1"]) == 0
    assert wait_state("long", {"Running"}) == "Running"
    time.sleep(4.5)  # > 3.6 GPU-seconds: past warnAt
    capsys.readouterr()
    assert main(["usage"]) == 0
    assert "warning: alice used" in capsys.readouterr().out
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until 7.2 GPU-seconds are used
        state = budget_state(load_workspace(), "alice", ["research"], local_uses(gpu_home), time.time())
        if state is not None and state.exhausted:
            break
        time.sleep(0.5)
    capsys.readouterr()
    assert main(["train", str(script(tmp_path, 0.1)), "--name", "refused", "--gpus", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    reset = period_bounds("week", datetime.now(UTC))[1]
    assert len(err) == 1 and "GPU budget used up: alice used" in err[0]
    assert "of 0.002 GPU-hours this week (budget: group research)" in err[0]
    assert f"resets {reset:%Y-%m-%d} 00:00 UTC" in err[0] and reset.weekday() == 0  # next Monday
    assert [j.name for j in core.list_jobs()].count("refused") == 0
    # The running job is not touched; a job without GPUs is not refused.
    assert core.get_job("long", details=False).state is JobState.RUNNING
    assert main(["train", str(script(tmp_path, 0.1)), "--name", "cpu-still-runs", "--wait"]) == 0
    assert wait_state("long", {"Succeeded", "Failed", "Cancelled"}, timeout=120) == "Succeeded"
    # At the next period's start the hours of this one no longer count.
    next_period = reset.timestamp() + 1
    fresh = budget_state(load_workspace(), "alice", ["research"], local_uses(gpu_home), next_period)
    assert fresh is not None and fresh.used == 0 and not fresh.exhausted
    capsys.readouterr()
    assert main(["usage", "-o", "json"]) == 0
    mine = json.loads(capsys.readouterr().out)
    assert mine["exhausted"] is True and mine["entry"] == "group research" and mine["budget"] == 0.002


def test_a_user_entry_wins_over_groups_and_no_entry_means_no_budget(tmp_path: Path, monkeypatch):
    budget_workspace(tmp_path, monkeypatch, defaultUserGpuHours=10, users={"bob": 1}, groups={"research": 50})
    budgets = load_workspace().budgets
    assert budgets.for_user("bob", ["research"]) == (1, "user bob")
    assert budgets.for_user("carol", ["research", "other"]) == (50, "group research")
    assert budgets.for_user("dave", []) == (10, "defaultUserGpuHours")
    budget_workspace(tmp_path, monkeypatch)
    assert load_workspace().budgets.for_user("dave", []) is None


def test_periods_reset_at_day_monday_and_first_of_month():
    now = datetime(2026, 12, 31, 15, 30, tzinfo=UTC)  # a Thursday
    assert period_bounds("day", now) == (datetime(2026, 12, 31, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    assert period_bounds("week", now) == (datetime(2026, 12, 28, tzinfo=UTC), datetime(2027, 1, 4, tzinfo=UTC))
    assert period_bounds("month", now) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


def _pod(name: str, user_annotation: str, user: str, gpus: str | None, phase: str, start: str,
         end: str | None = None) -> dict:
    resources = {"limits": {"nvidia.com/gpu": gpus}} if gpus else {}
    status: dict = {"phase": phase, "startTime": start}
    if end:
        status["containerStatuses"] = [{"state": {"terminated": {"finishedAt": end}}}]
    return {"metadata": {"name": name, "namespace": f"dlw-{user}", "annotations": {user_annotation: user}},
            "spec": {"containers": [{"name": "main", "resources": resources}]}, "status": status}


def test_pod_lifetimes_times_gpu_requests():
    pods = [
        # A notebook (KubeSpawner's annotation) with 2 GPUs, still running.
        _pod("jupyter-alice", "hub.jupyter.org/username", "alice", "2", "Running", "2026-12-06T00:00:00Z"),
        # A job pod with 4 GPUs that ran 30 minutes; a CPU pod; a pending pod that never started.
        _pod("j-0", "dlw.dev/user", "bob", "4", "Succeeded", "2026-12-05T23:00:00Z", "2026-12-05T23:30:00Z"),
        _pod("cpu", "dlw.dev/user", "bob", None, "Running", "2026-12-05T23:00:00Z"),
        {**_pod("pending", "dlw.dev/user", "bob", "8", "Pending", "x"), "status": {"phase": "Pending"}},
    ]
    uses = pod_uses(pods)
    assert sorted((u.what, u.gpus) for u in uses) == [("j-0", 4), ("jupyter-alice", 2)]
    until = datetime(2026, 12, 6, 1, 0, tzinfo=UTC).timestamp()
    since = datetime(2026, 12, 5, 23, 15, tzinfo=UTC).timestamp()  # cuts bob's job in half
    rows = {r.user: r.gpu_hours for r in hours_by_user(uses, since, until)}
    assert rows == {"alice": pytest.approx(2.0), "bob": pytest.approx(1.0)}


def test_hours_are_clipped_to_the_window():
    uses = [GpuUse("a", 1, 0.0, 7200.0, "x"), GpuUse("a", 2, 3600.0, None, "y")]
    assert hours_by_user(uses, 3600.0, 5400.0)[0].gpu_hours == pytest.approx(0.5 + 1.0)


def test_kubernetes_pods_count_and_the_budget_refuses_a_gpu_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from dlw_magic import backends
    from dlw_magic.backends.kubernetes.backend import KubernetesBackend
    from dlw_magic.errors import DLWError
    from tests.k8s_emulator import KubeEmulator

    for var in ("JUPYTERHUB_USER", "DLW_NAMESPACE", "KUBERNETES_SERVICE_HOST", "DLW_POD_NAME", "DLW_BACKEND"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DLW_USER", "alice")
    monkeypatch.setenv("DLW_GROUPS", "research")
    ws = budget_workspace(tmp_path, monkeypatch, period="week", groups={"research": 1})
    backends._cache.clear()
    now = time.time()

    def iso(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    with KubeEmulator(tmp_path) as kube:
        monkeypatch.setenv("DLW_KUBECONFIG", str(kube.kubeconfig))
        # alice's GPU notebook (KubeSpawner's annotation), 2 GPUs for the last 40 minutes: 1.33 GPU-hours.
        notebook = _pod("jupyter-alice", "hub.jupyter.org/username", "alice", "2", "Running", iso(now - 2400))
        # bob's finished job pod: 1 GPU for 30 minutes.
        job = _pod("train-0", "dlw.dev/user", "bob", "1", "Succeeded", iso(now - 3600), iso(now - 1800))
        for pod in (notebook, job):
            status = pod.pop("status")
            pod.update(apiVersion="v1", kind="Pod")
            ns = pod["metadata"]["namespace"]
            kube._call("POST", f"api/v1/namespaces/{ns}/pods", pod)
            kube._call("PATCH", f"api/v1/namespaces/{ns}/pods/{pod['metadata']['name']}/status", {"status": status},
                       content_type="application/merge-patch+json")
        capsys.readouterr()
        assert main(["admin", "usage", "--cluster", "--since", "1d", "-o", "json"]) == 0
        rows = {r["user"]: r["gpu_hours"] for r in json.loads(capsys.readouterr().out)}
        assert rows["alice"] == pytest.approx(2 * 2400 / 3600, abs=0.02)
        assert rows["bob"] == pytest.approx(0.5, abs=0.001)

        backend = KubernetesBackend(kubeconfig=str(kube.kubeconfig), workspace=str(ws))
        (tmp_path / "t.py").write_text("print('hi')\n")
        spec = core.build_spec(spec_text=json.dumps({"name": "big", "source": {"script": "t.py"},
                                                     "resources": {"gpus": 1}}), base_dir=tmp_path)
        with pytest.raises(DLWError, match=r"GPU budget used up: alice used 1\.\d of 1 GPU-hours this week "
                                           r"\(budget: group research\); it resets"):
            core.submit(spec, backend)
        assert backend.list_jobs() == []
        assert kube._call("GET", "api/v1/namespaces/dlw-alice/pods/jupyter-alice")["status"]["phase"] == "Running"
    backends._cache.clear()
