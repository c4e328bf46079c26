"""Schedules on Kubernetes, against the kmock API emulator: the CronJob is created in the user's
namespace with the definition's policies, pause suspends it, delete removes it, and what its pod runs
(``dlw_magic.schedules.fire``) submits the job as NAME-yymmddHHMM, once per minute."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dlw_magic.backends.kubernetes.backend import KubernetesBackend
from dlw_magic.errors import DLWError
from dlw_magic.options import parse_options
from dlw_magic.schedules import api
from dlw_magic.schedules.fire import fire
from tests.k8s_emulator import RESOURCES, KubeEmulator
from tests.k8s_schema import validate_objects

CRONJOBS = "apis/batch/v1/namespaces/dlw-alice/cronjobs"


@pytest.fixture
def kube(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from dlw_magic import backends

    monkeypatch.setenv("DLW_USER", "alice")
    monkeypatch.setenv("DLW_HOME", str(tmp_path / "dlw-home"))
    monkeypatch.setenv("DLW_SCHEDULER_AUTOSTART", "0")
    for var in ("JUPYTERHUB_USER", "DLW_NAMESPACE", "KUBERNETES_SERVICE_HOST", "DLW_KUBECONFIG",
                "DLW_WORKSPACE_CONFIG", "DLW_BACKEND", "DLW_POD_NAME", "DLW_IMAGE", "JUPYTER_IMAGE",
                "JUPYTER_IMAGE_SPEC"):
        monkeypatch.delenv(var, raising=False)
    backends._cache.clear()
    with KubeEmulator(tmp_path, resources=[*RESOURCES, "batch/v1/cronjobs"]) as k:
        yield k
    backends._cache.clear()


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "proj" / "train.py"
    path.parent.mkdir()
    path.write_text("print('nightly')\n")
    return path


def test_cronjob_in_the_users_namespace_paused_and_deleted(kube: KubeEmulator, script: Path):
    backend = KubernetesBackend(kubeconfig=str(kube.kubeconfig))
    d = api.create(script, "*/30 * * * *", name="nightly", tz="Asia/Tokyo", concurrency="replace",
                   starting_deadline="5m", keep=2, backend=backend,
                   options=parse_options({"image": "registry.example/team/train:1", "workers": 2}))
    assert d.backend == "kubernetes" and d.extra["cronJob"] == "dlw-schedule-nightly"
    cj = kube._call("GET", f"{CRONJOBS}/dlw-schedule-nightly")
    spec = cj["spec"]
    assert (spec["schedule"], spec["timeZone"], spec["concurrencyPolicy"]) == ("*/30 * * * *", "Asia/Tokyo", "Replace")
    assert (spec["startingDeadlineSeconds"], spec["failedJobsHistoryLimit"], spec["suspend"]) == (300, 2, False)
    definition = json.loads(kube.get(("v1", "ConfigMap"), "dlw-schedule-nightly")["data"]["definition.json"])
    assert definition["spec"]["workers"] == 2
    validate_objects([{k: v for k, v in cj.items() if k != "status"}])

    api.set_paused("nightly", True, backend=backend)
    assert kube._call("GET", f"{CRONJOBS}/dlw-schedule-nightly")["spec"]["suspend"] is True
    assert api.show("nightly", backend=backend).definition.paused is True

    api.delete("nightly", backend=backend)
    assert kube._call("GET", CRONJOBS)["items"] == []
    with pytest.raises(DLWError, match="no schedule named"):
        api.show("nightly", backend=backend)


def test_the_cronjob_pod_submits_the_job_once_per_minute(kube: KubeEmulator, script: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch):
    from dlw_magic import backends

    monkeypatch.setenv("DLW_BACKEND", "kubernetes")
    monkeypatch.setenv("DLW_KUBECONFIG", str(kube.kubeconfig))
    backends._cache.clear()
    path = tmp_path / "definition.json"
    path.write_text(json.dumps({"name": "nightly", "timezone": "UTC", "user": "alice", "spec": {
        "source": {"script": str(script)}, "image": "registry.example/team/train:1"}}))
    name = fire(path, now=datetime(2026, 12, 6, 3, 0, 2, tzinfo=UTC))
    assert name == "nightly-2612060300"
    assert [j["metadata"]["name"] for j in kube.items(("batch/v1", "Job"))] == ["nightly-2612060300"]
    with pytest.raises(DLWError, match="already exists"):  # a second pod in the same minute
        fire(path, now=datetime(2026, 12, 6, 3, 0, 40, tzinfo=UTC))
    script.unlink()
    with pytest.raises(DLWError, match="train.py: script not found"):  # the pod fails with the reason
        fire(path, now=datetime(2026, 12, 6, 3, 30, 0, tzinfo=UTC))


def test_show_lists_the_runs_the_cluster_fired(kube: KubeEmulator, script: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch):
    """The CronJob controller's fires never pass through the local store: `dlw schedule show` finds them as
    the jobs their pods submitted (NAME-yymmddHHMM, the minute in the definition's zone)."""
    from dlw_magic import backends

    monkeypatch.setenv("DLW_BACKEND", "kubernetes")
    monkeypatch.setenv("DLW_KUBECONFIG", str(kube.kubeconfig))
    backends._cache.clear()
    backend = KubernetesBackend(kubeconfig=str(kube.kubeconfig))
    api.create(script, "0 3 * * *", name="nightly", tz="Asia/Tokyo", backend=backend,
               options=parse_options({"image": "registry.example/team/train:1"}))
    assert api.show("nightly", backend=backend).runs == []
    definition = tmp_path / "definition.json"
    definition.write_text(kube.get(("v1", "ConfigMap"), "dlw-schedule-nightly")["data"]["definition.json"])
    assert fire(definition, now=datetime(2026, 12, 5, 18, 0, 1, tzinfo=UTC)) == "nightly-2612060300"
    shown = api.show("nightly", backend=backend).to_dict()
    [run] = shown["runs"]
    assert run["job"] == shown["lastJob"] == "nightly-2612060300"
    assert run["scheduled"] == datetime(2026, 12, 5, 18, 0, tzinfo=UTC).timestamp()  # 03:00 in Tokyo
    assert run["state"] in ("Queued", "Running")  # the job's own state
    assert [s.to_dict()["lastJob"] for s in api.list_definitions(backend=backend)] == ["nightly-2612060300"]
