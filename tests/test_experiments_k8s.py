"""Sweeps on Kubernetes, against kmock's emulator (a real API server, no controllers): the trials are
ordinary Jobs labelled with their experiment, at most ``parallel`` exist unfinished at once (the rest wait
in DLW, not as Pending pods), and cancelling the experiment deletes the running trials' objects."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import write_notebook
from k8s_emulator import KubeEmulator
from k8s_schema import validate_objects

from dlw_magic import experiments
from dlw_magic.backends.kubernetes import KubernetesBackend
from dlw_magic.experiments import runner, store
from dlw_magic.options import parse_options

JOB = ("batch/v1", "Job")
CM = ("v1", "ConfigMap")
DONE = {"active": 0, "succeeded": 1, "completionTime": "2026-11-22T08:10:00Z",
        "conditions": [{"type": "Complete", "status": "True"}]}


@pytest.fixture
def kube(dlw_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from dlw_magic import backends

    monkeypatch.setenv("DLW_USER", "alice")
    for var in ("JUPYTERHUB_USER", "DLW_NAMESPACE", "KUBERNETES_SERVICE_HOST", "DLW_KUBECONFIG",
                "DLW_WORKSPACE_CONFIG", "DLW_BACKEND", "DLW_POD_NAME", "DLW_IMAGE", "JUPYTER_IMAGE"):
        monkeypatch.delenv(var, raising=False)
    backends._cache.clear()
    with KubeEmulator(tmp_path) as k:
        yield k
        validate_objects([{key: v for key, v in obj.items() if key != "status"}
                          for kind in (JOB, CM) for obj in k.items(kind)])


def start(kube: KubeEmulator, tmp_path: Path, parallel: int) -> tuple[str, KubernetesBackend]:
    nb = write_notebook(tmp_path / "train.ipynb", [("lr = 0.1\n", ["parameters"]), "print(lr)"])
    backend = KubernetesBackend(kubeconfig=str(kube.kubeconfig))
    options = parse_options({"image": "registry.example/team/train:1"})
    exp = experiments.build_experiment(nb, {"lr": [0.01, 0.02, 0.03, 0.04, 0.05]}, options, name="k8s",
                                       parallel=parallel)
    record = experiments.create(exp, backend, {"name": "kubernetes", "kubeconfig": str(kube.kubeconfig)},
                                start=False)
    return record["name"], backend


def test_trials_are_labelled_jobs_and_only_parallel_exist_at_once(kube: KubeEmulator, tmp_path: Path) -> None:
    name, backend = start(kube, tmp_path, parallel=2)
    runner.advance(name, backend)
    jobs = {j["metadata"]["name"]: j for j in kube.items(JOB)}
    assert sorted(jobs) == ["k8s-000", "k8s-001"]  # the other three wait in DLW, not as Pending pods
    for trial, job in enumerate(sorted(jobs)):
        for labels in (jobs[job]["metadata"]["labels"], jobs[job]["spec"]["template"]["metadata"]["labels"]):
            assert labels["dlw.dev/experiment"] == "k8s" and labels["dlw.dev/trial"] == str(trial)
    runner.advance(name, backend)
    assert len(kube.items(JOB)) == 2  # nothing finished: nothing more
    kube.set_status(JOB, "k8s-000", DONE)
    runner.advance(name, backend)
    assert sorted(j["metadata"]["name"] for j in kube.items(JOB)) == ["k8s-000", "k8s-001", "k8s-002"]
    assert [t["state"] for t in store.load(name)["trials"]] == ["Succeeded", "Queued", "Queued", "Waiting", "Waiting"]
    # each trial got its own value, as the notebook's float
    code = {cm["metadata"]["name"]: cm for cm in kube.items(CM)}
    assert any("lr = 0.03" in "".join(cm.get("data", {}).values()) for cm in code.values())


def test_cancel_deletes_the_running_trials_and_the_rest_never_start(kube: KubeEmulator, tmp_path: Path) -> None:
    name, backend = start(kube, tmp_path, parallel=2)
    runner.advance(name, backend)
    record = experiments.cancel(name, backend)
    assert record["state"] == "Cancelled"
    assert [t["state"] for t in record["trials"]] == ["Cancelled"] * 5
    assert kube.items(JOB) == []
