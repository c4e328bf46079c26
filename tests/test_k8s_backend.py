"""The Kubernetes backend against kmock's KubernetesEmulator (a real HTTP API server, no controllers).

Tests play the controllers: they create the pods a Job controller would, and patch pod and job status
to walk a job through its states, then check what a researcher sees (state, reason, message, logs).
"""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from k8s_emulator import KubeEmulator
from k8s_schema import validate_objects

from dlw_magic import core
from dlw_magic.backends import JobState
from dlw_magic.backends.kubernetes import KubernetesBackend
from dlw_magic.errors import Conflict, DLWError, NotFound

JOB = ("batch/v1", "Job")
VOLCANO = ("batch.volcano.sh/v1alpha1", "Job")
PYTORCH = ("kubeflow.org/v1", "PyTorchJob")
TRAINJOB = ("trainer.kubeflow.org/v1alpha1", "TrainJob")
RUNTIME = ("trainer.kubeflow.org/v1alpha1", "TrainingRuntime")
CM = ("v1", "ConfigMap")
SVC = ("v1", "Service")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from dlw_magic import backends

    monkeypatch.setenv("DLW_USER", "alice")
    for var in ("JUPYTERHUB_USER", "DLW_NAMESPACE", "KUBERNETES_SERVICE_HOST", "DLW_KUBECONFIG",
                "DLW_WORKSPACE_CONFIG", "DLW_BACKEND", "DLW_POD_NAME", "DLW_IMAGE", "JUPYTER_IMAGE",
                "JUPYTER_IMAGE_SPEC"):
        monkeypatch.delenv(var, raising=False)
    backends._cache.clear()
    yield
    backends._cache.clear()


@pytest.fixture
def kube(env: None, tmp_path: Path):
    with KubeEmulator(tmp_path) as k:
        yield k
        # Everything dlw created must be a valid manifest (statuses are the tests' own doing).
        created = [
            {key: value for key, value in obj.items() if key != "status"}
            for kind in (JOB, VOLCANO, PYTORCH, TRAINJOB, RUNTIME, CM, SVC) for obj in k.items(kind)
        ]
        validate_objects(created)


@pytest.fixture
def backend(kube: KubeEmulator) -> KubernetesBackend:
    return KubernetesBackend(kubeconfig=str(kube.kubeconfig))


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "proj" / "train.py"
    path.parent.mkdir()
    path.write_text("import os\nprint('rank', os.environ['RANK'], 'of', os.environ['WORLD_SIZE'])\n")
    return path


def submit(backend: KubernetesBackend, script: Path, name: str = "demo", **kw: Any):
    kw.setdefault("image", "registry.example/team/train:1")
    return core.submit(core.build_spec(script, name=name, **kw), backend)


def running(start: str = "2026-11-22T08:00:00Z") -> dict[str, Any]:
    return {"phase": "Running", "startTime": start,
            "containerStatuses": [{"name": "trainer", "image": "img", "state": {"running": {"startedAt": start}}}]}


# -- submit ------------------------------------------------------------------------------------------------


def test_submit_creates_labelled_objects_in_the_users_namespace(backend, kube, script):
    info = submit(backend, script, workers=3, gpus=2)
    assert info.state == JobState.QUEUED and info.backend == "kubernetes" and info.engine == "job"
    assert (info.workers, info.world_size, info.gpus) == (3, 3, 2)
    job = kube.get(JOB, "demo")
    cm = kube.get(CM, "demo-code")
    svc = kube.get(SVC, "demo")
    for obj in (job, cm, svc):
        labels = obj["metadata"]["labels"]
        assert obj["metadata"]["namespace"] == "dlw-alice"
        assert labels["dlw.dev/user"] == "alice" and labels["dlw.dev/job"] == "demo"
        assert labels["dlw.dev/job-id"] == info.id
    assert validate_objects([job, cm, svc]) == 3
    assert job["spec"]["completionMode"] == "Indexed" and job["spec"]["completions"] == 3
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["publishNotReadyAddresses"] is True
    # The snapshot travels in the ConfigMap: the script, byte for byte.
    assert script.read_text() in cm["data"].values()
    # The spec rides along so `dlw rerun` and `dlw list` work from the cluster alone.
    spec = json.loads(job["metadata"]["annotations"]["dlw.dev/spec"])
    assert spec["name"] == "demo" and spec["workers"] == 3


def test_submit_runs_on_the_notebook_pods_image_digest(backend, kube, script, monkeypatch):
    digest = "registry.example/dlw/notebook@sha256:" + "a" * 64
    kube.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "jupyter-alice"},
                 "spec": {"containers": [{"name": "notebook", "image": "registry.example/dlw/notebook:0.1"}]},
                 "status": {"containerStatuses": [{"name": "notebook", "image": "registry.example/dlw/notebook:0.1",
                                                   "imageID": "docker-pullable://" + digest}]}})
    monkeypatch.setenv("DLW_POD_NAME", "jupyter-alice")
    monkeypatch.setenv("HOSTNAME", "jupyter-alice")
    core.submit(core.build_spec(script, name="nbimage"), backend)
    container = kube.get(JOB, "nbimage")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == digest


def test_submit_each_engine_creates_its_kind(backend, kube, script):
    submit(backend, script, name="vc", engine="volcano", workers=3)
    submit(backend, script, name="pt", engine="pytorchjob", workers=3)
    vc, pt = kube.get(VOLCANO, "vc"), kube.get(PYTORCH, "pt")
    assert vc["spec"]["minAvailable"] == 3 and vc["spec"]["schedulerName"] == "volcano"
    assert pt["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == 2
    assert validate_objects([vc, pt]) == 2
    assert {j.name: j.engine for j in backend.list_jobs()} == {"vc": "volcano", "pt": "pytorchjob"}


def test_name_taken_is_a_conflict_across_engines(backend, kube, script):
    submit(backend, script)
    with pytest.raises(Conflict, match="job demo: a job of this name already exists in dlw-alice"):
        submit(backend, script)
    with pytest.raises(Conflict):  # a Volcano Job is another resource: only the name check catches it
        submit(backend, script, engine="volcano")
    assert kube.items(VOLCANO) == []


def test_another_namespace_is_refused(kube):
    with pytest.raises(DLWError, match="namespace 'dlw-bob' refused"):
        KubernetesBackend(kubeconfig=str(kube.kubeconfig), namespace="dlw-bob")


# -- list / get --------------------------------------------------------------------------------------------


def test_list_shows_only_the_users_jobs_newest_first(backend, kube, script):
    submit(backend, script, name="first")
    time.sleep(0.01)
    submit(backend, script, name="second")
    foreign = kube.get(JOB, "first")
    foreign["metadata"].update(name="bobs", labels={**foreign["metadata"]["labels"], "dlw.dev/user": "bob",
                                                    "dlw.dev/job": "bobs"})
    kube.create(foreign)
    assert [j.name for j in backend.list_jobs()] == ["second", "first"]
    with pytest.raises(NotFound):
        backend.get("bobs")  # another user's job is invisible, even by name


# -- status: what a researcher can act on ------------------------------------------------------------------


def _pending(condition_message: str) -> dict[str, Any]:
    return {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                                                "reason": "Unschedulable", "message": condition_message}]}


STATUS_CASES = {
    "unschedulable": (
        {}, _pending("0/3 nodes are available: 3 Insufficient memory."), JobState.QUEUED, "Unschedulable",
        "Insufficient memory"),
    "no-gpu-of-type": (
        {"gpus": 1, "gpu_type": "NVIDIA-H200"},
        _pending("0/4 nodes are available: 4 node(s) didn't match Pod's node affinity/selector."),
        JobState.QUEUED, "NoGPUOfType", "NVIDIA-H200"),
    "insufficient-gpu": (
        {"gpus": 8}, _pending("0/2 nodes are available: 2 Insufficient nvidia.com/gpu."),
        JobState.QUEUED, "InsufficientGPU", "8 free nvidia.com/gpu"),
    "image-pull": (
        {}, {"phase": "Pending", "containerStatuses": [{"name": "trainer", "image": "registry.example/nope:1",
             "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}]},
        JobState.QUEUED, "ImagePullBackOff", "registry.example/nope:1"),
    "missing-secret": (
        {}, {"phase": "Pending", "containerStatuses": [{"name": "trainer", "image": "x", "state": {"waiting": {
            "reason": "CreateContainerConfigError", "message": 'secret "wandb" not found'}}}]},
        JobState.QUEUED, "CreateContainerConfigError", 'secret "wandb" not found'),
}


@pytest.mark.parametrize("case", sorted(STATUS_CASES))
def test_pending_reasons(backend, kube, script, case):
    options, pod_status, state, reason, text = STATUS_CASES[case]
    submit(backend, script, **options)
    job = kube.get(JOB, "demo")
    kube.add_pod(job, "demo-0-abcde", pod_status)
    info = backend.get("demo")
    assert (info.state, info.reason) == (state, reason)
    assert text in info.message


def test_oomkilled_names_the_rank_and_the_memory_limit(backend, kube, script):
    spec = core.build_spec(script, name="demo", image="img:1")
    spec.resources.memory = "4Gi"
    core.submit(spec, backend)
    job = kube.get(JOB, "demo")
    kube.add_pod(job, "demo-0-x", {"phase": "Failed", "containerStatuses": [{"name": "trainer", "image": "img:1",
                 "state": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]})
    kube.set_status(JOB, "demo", {"failed": 1, "conditions": [
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the "
         "specified backoff limit", "lastTransitionTime": "2026-11-22T08:05:00Z"}]})
    info = backend.get("demo")
    assert (info.state, info.reason, info.exit_code) == (JobState.FAILED, "OOMKilled", 137)
    assert "rank 0 ran out of memory (limit 4Gi)" in info.message
    assert info.finished is not None


def test_evicted_pod_explains_a_restart(backend, kube, script):
    submit(backend, script, workers=3)
    job = kube.get(JOB, "demo")
    kube.add_pod(job, "demo-1-x", {"phase": "Failed", "reason": "Evicted",
                                   "message": "The node was low on resource: ephemeral-storage."},
                 annotations={"batch.kubernetes.io/job-completion-index": "1"})
    kube.add_pod(job, "demo-0-x", running(), annotations={"batch.kubernetes.io/job-completion-index": "0"})
    kube.set_status(JOB, "demo", {"active": 2})
    info = backend.get("demo")
    assert (info.state, info.reason) == (JobState.RUNNING, "Evicted")
    assert "rank 1 was evicted: The node was low on resource" in info.message


def test_failed_rank_exit_code_and_deadline(backend, kube, script):
    submit(backend, script, name="crash")
    kube.add_pod(kube.get(JOB, "crash"), "crash-0-x", {"phase": "Failed", "containerStatuses": [
        {"name": "trainer", "image": "i", "state": {"terminated": {"reason": "Error", "exitCode": 3}}}]})
    kube.set_status(JOB, "crash", {"conditions": [
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]})
    info = backend.get("crash")
    assert (info.state, info.reason, info.exit_code) == (JobState.FAILED, "Error", 3)
    assert "rank 0 exited with code 3" in info.message

    submit(backend, script, name="slow", timeout="30m")
    kube.set_status(JOB, "slow", {"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]})
    info = backend.get("slow")
    assert (info.state, info.reason) == (JobState.FAILED, "DeadlineExceeded")
    assert "timeout (1800 s)" in info.message


def test_queued_job_without_pods_reports_a_quota_refusal(backend, kube, script):
    submit(backend, script, gpus=4)
    kube.create({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "demo.1"}, "type": "Warning",
                 "reason": "FailedCreate", "involvedObject": {"kind": "Job", "name": "demo"},
                 "message": 'pods "demo-0" is forbidden: exceeded quota: gpu-quota, requested: '
                            "requests.nvidia.com/gpu=4, used: 4, limited: 4"})
    info = backend.get("demo")
    assert (info.state, info.reason) == (JobState.QUEUED, "QuotaExceeded")
    assert "exceeded quota" in info.message
    assert any(e["reason"] == "FailedCreate" for e in backend.events("demo"))


def test_status_shows_the_jobs_events(kube, script, monkeypatch, capsys):
    from dlw_magic import cli

    monkeypatch.setenv("DLW_KUBECONFIG", str(kube.kubeconfig))
    assert cli.main(["train", str(script), "--name", "evjob", "--image", "img:1", "--gpus", "2"]) == 0
    kube.create({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "evjob.1"}, "type": "Warning",
                 "reason": "FailedScheduling", "involvedObject": {"kind": "Job", "name": "evjob"},
                 "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."})
    capsys.readouterr()
    assert cli.main(["status", "evjob"]) == 0
    out = capsys.readouterr().out
    assert "Events:" in out and "FailedScheduling" in out and "Insufficient nvidia.com/gpu" in out


def test_running_then_succeeded(backend, kube, script):
    submit(backend, script)
    job = kube.get(JOB, "demo")
    kube.add_pod(job, "demo-x", running())
    kube.set_status(JOB, "demo", {"active": 1, "startTime": "2026-11-22T08:00:00Z"})
    assert backend.get("demo").state == JobState.RUNNING
    kube.set_status(JOB, "demo", {"active": 0, "succeeded": 1, "completionTime": "2026-11-22T08:10:00Z",
                                  "conditions": [{"type": "Complete", "status": "True"}]})
    info = backend.get("demo")
    assert (info.state, info.exit_code) == (JobState.SUCCEEDED, 0)
    assert info.finished - info.started == 600


@pytest.mark.parametrize(("phase", "state"), [
    ("Pending", JobState.QUEUED), ("Inqueue", JobState.QUEUED), ("Running", JobState.RUNNING),
    ("Completed", JobState.SUCCEEDED), ("Failed", JobState.FAILED), ("Terminated", JobState.FAILED),
])
def test_volcano_phases(backend, kube, script, phase, state):
    submit(backend, script, engine="volcano", workers=3)
    kube.set_status(VOLCANO, "demo", {"state": {"phase": phase}})
    assert backend.get("demo").state == state


@pytest.mark.parametrize(("cond", "state"), [
    ("Created", JobState.QUEUED), ("Running", JobState.RUNNING), ("Succeeded", JobState.SUCCEEDED),
    ("Failed", JobState.FAILED),
])
def test_pytorchjob_conditions(backend, kube, script, cond, state):
    submit(backend, script, engine="pytorchjob", workers=2)
    kube.set_status(PYTORCH, "demo", {"conditions": [{"type": cond, "status": "True", "reason": f"PyTorchJob{cond}"}]})
    assert backend.get("demo").state == state


def test_trainjob_runtime_exists_before_the_trainjob_and_goes_with_it(backend, kube, script):
    info = submit(backend, script, engine="trainjob", workers=2, retries=1)
    assert (info.engine, info.workers, info.state) == ("trainjob", 2, JobState.QUEUED)
    created = [path.rsplit("/", 1)[-1] for method, path, _ in kube.requests() if method == "POST"]
    assert created.index("trainingruntimes") < created.index("trainjobs")  # the webhook resolves runtimeRef
    train, runtime = kube.get(TRAINJOB, "demo"), kube.get(RUNTIME, "demo")
    assert train["spec"]["runtimeRef"]["name"] == runtime["metadata"]["name"] == "demo"
    assert runtime["spec"]["template"]["spec"]["failurePolicy"]["maxRestarts"] == 1
    assert [j.name for j in backend.list_jobs()] == ["demo"]  # the runtime is no job of its own
    info = core.cancel("demo", backend=backend)
    assert info.state == JobState.CANCELLED
    assert kube.items(TRAINJOB) == [] and kube.items(RUNTIME) == [] and kube.items(CM) == []


@pytest.mark.parametrize(("status", "state", "reason"), [
    ({"conditions": [{"type": "Created", "status": "True", "reason": "JobsCreated"}]}, JobState.QUEUED, None),
    ({"conditions": [{"type": "Suspended", "status": "True", "reason": "Suspended", "message": "by Kueue"}]},
     JobState.QUEUED, "Suspended"),
    ({"jobsStatus": [{"name": "node", "active": 2, "ready": 0, "succeeded": 0, "failed": 0, "suspended": 0}]},
     JobState.RUNNING, None),
    ({"conditions": [{"type": "Complete", "status": "True", "reason": "JobsCompleted"}]}, JobState.SUCCEEDED, None),
    ({"conditions": [{"type": "Failed", "status": "True", "reason": "JobsFailed", "message": "node failed"}]},
     JobState.FAILED, "JobsFailed"),
])
def test_trainjob_conditions(backend, kube, script, status, state, reason):
    submit(backend, script, engine="trainjob", workers=2)
    kube.set_status(TRAINJOB, "demo", status)
    info = backend.get("demo")
    assert (info.state, info.reason) == (state, reason)


def test_the_build_job_is_not_a_training_job(backend, kube, script):
    submit(backend, script, name="demo")
    build = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "demo-build", "labels": {
        **kube.get(JOB, "demo")["metadata"]["labels"], "dlw.dev/role": "build"}},
        "spec": {"template": {"spec": {"containers": [{"name": "kaniko", "image": "kaniko"}],
                                       "restartPolicy": "Never"}}}}
    kube.create(build)
    assert [j.name for j in backend.list_jobs()] == ["demo"]


# -- logs --------------------------------------------------------------------------------------------------


def _three_ranks(backend, kube, script, engine: str = "job"):
    submit(backend, script, engine=engine, workers=3)
    kind = {"job": JOB, "volcano": VOLCANO, "pytorchjob": PYTORCH, "trainjob": TRAINJOB}[engine]
    job = kube.get(kind, "demo")
    for rank in range(3):
        if engine == "job":
            name, ann, labels = f"demo-{rank}-p", {"batch.kubernetes.io/job-completion-index": str(rank)}, {}
        elif engine == "volcano":
            task, idx = ("master", 0) if rank == 0 else ("worker", rank - 1)
            name, labels = f"demo-{task}-{idx}", {}
            ann = {"volcano.sh/task-spec": task, "volcano.sh/task-index": str(idx)}
        elif engine == "trainjob":  # JobSet's Job "<job>-node-0": its pods' completion index is the rank
            name, ann = f"demo-node-0-{rank}-x", {}
            labels = {"jobset.sigs.k8s.io/job-index": "0", "batch.kubernetes.io/job-completion-index": str(rank)}
        else:
            role, idx = ("master", 0) if rank == 0 else ("worker", rank - 1)
            name, ann = f"demo-{role}-{idx}", {}
            labels = {"training.kubeflow.org/replica-type": role, "training.kubeflow.org/replica-index": str(idx)}
        kube.add_pod(job, name, running(), labels=labels, annotations=ann)
        kube.set_log(name, f"rank {rank} step 1\nrank {rank} step 2\n")
    return kind


@pytest.mark.parametrize("engine", ["job", "volcano", "pytorchjob", "trainjob"])
def test_logs_of_every_rank(backend, kube, script, engine):
    _three_ranks(backend, kube, script, engine)
    lines = list(core.log_lines("demo", backend=backend))
    assert sorted(lines) == sorted((r, f"rank {r} step {s}\n") for r in range(3) for s in (1, 2))
    only = list(backend.logs("demo", rank=2))
    assert [c.rank for c in only] == [2] and only[0].text.startswith("rank 2 step 1")
    resumed = list(backend.logs("demo", rank=2, offset=only[0].offset - len("rank 2 step 2\n")))
    assert resumed[0].text == "rank 2 step 2\n"


def test_all_ranks_come_in_the_order_their_lines_were_written(backend, kube, script):
    """The API's timestamps order the lines (fractions of different lengths, as the kubelet trims them)."""
    _three_ranks(backend, kube, script)
    kube.set_log("demo-0-p", "a\nd\n", times=["2026-01-01T00:00:01Z", "2026-01-01T00:00:02.5Z"])
    kube.set_log("demo-1-p", "b\ne\n", times=["2026-01-01T00:00:01.25Z", "2026-01-01T00:00:02.75Z"])
    kube.set_log("demo-2-p", "c\n", times=["2026-01-01T00:00:02.000000001Z"])
    assert list(core.log_lines("demo", backend=backend)) == [(0, "a\n"), (1, "b\n"), (2, "c\n"), (0, "d\n"), (1, "e\n")]
    assert [c.offset for c in backend.logs("demo")] == [2, 2, 2, 4, 4]  # bytes of each pod's own log
    assert [c.text for c in backend.logs("demo", rank=1, offset=2)] == ["e\n"]


def test_metrics_come_from_the_ranks_tagged_log_lines(backend, kube, script):
    """No shared home here: `dlw status` reads rank 0's metrics and every pod's GPU use from the pod logs."""
    _three_ranks(backend, kube, script)
    kube.set_log("demo-0-p", 'step 1\n#dlw-metrics [1,100.0,{"loss":0.5}]\n#dlw-metrics [0,100.5,{"gpu.util":87.0}]\n')
    kube.set_log("demo-1-p", '#dlw-metrics [1,100.0,{"loss":9.9}]\n#dlw-metrics [0,100.5,{"gpu.util":12.5}]\n')
    job = core.get_job("demo", backend)
    assert job.metrics == {"loss": [[1, 0.5, 100.0]], "gpu.util": [[0, 87.0, 100.5]],
                           "gpu.util@rank1": [[0, 12.5, 100.5]]}
    assert list(core.printable_lines("demo", rank=0, backend=backend)) == ["step 1\n"]  # tags hidden in logs


def test_cli_prefixes_ranks_and_follow_ends_with_the_job(backend, kube, script, monkeypatch):
    from dlw_magic import cli

    kind = _three_ranks(backend, kube, script)
    kube.set_status(kind, "demo", {"active": 3})

    def finish() -> None:
        time.sleep(1.5)
        kube.set_status(kind, "demo", {"active": 0, "conditions": [{"type": "Complete", "status": "True"}]})

    threading.Thread(target=finish, daemon=True).start()
    out = io.StringIO()
    start = time.monotonic()
    cli.stream_logs("demo", None, True, backend, out)
    assert time.monotonic() - start < 10
    assert sorted(out.getvalue().splitlines()) == sorted(
        f"[rank {r}] rank {r} step {s}" for r in range(3) for s in (1, 2))


def test_cancel_keeps_the_runtime_while_the_trainjob_goes(backend, kube, script):
    """Trainer's webhook validates every update of a TrainJob against its runtime, a finalizer's removal too:
    a runtime deleted first keeps the TrainJob for ever (found on the cluster suite: the garbage collector of
    a foreground deletion removes dependents first, tests/cluster/test_trainjob.py). A TrainJob is deleted in
    the background, and while something still holds it its runtime stays (its owner reference removes it;
    this emulator has no uids, so no owner references)."""
    submit(backend, script, engine="trainjob", workers=2)
    kube._call("PATCH", kube.path(TRAINJOB, "demo"), {"metadata": {"finalizers": ["example.com/hold"]}},
               content_type="application/merge-patch+json")
    assert core.cancel("demo", backend=backend).state == JobState.CANCELLED
    deletes = [body for method, path, body in kube.requests() if method == "DELETE" and "/trainjobs/" in path]
    assert [d["propagationPolicy"] for d in deletes] == ["Background"]
    assert kube.get(TRAINJOB, "demo")["metadata"].get("deletionTimestamp")
    assert [r["metadata"]["name"] for r in kube.items(RUNTIME)] == ["demo"]
    assert kube.items(CM) == []


# -- cancel ------------------------------------------------------------------------------------------------


def test_cancel_deletes_the_job_and_its_objects(backend, kube, script):
    submit(backend, script, workers=3)
    kube.add_pod(kube.get(JOB, "demo"), "demo-0-x", running())
    info = core.cancel("demo", backend=backend)
    assert (info.state, info.reason) == (JobState.CANCELLED, "Cancelled")
    assert kube.items(JOB) == [] and kube.items(CM) == [] and kube.items(SVC) == []
    deletes = [body for method, path, body in kube.requests() if method == "DELETE" and path.endswith("/jobs/demo")]
    assert deletes and deletes[0]["propagationPolicy"] == "Foreground"
    with pytest.raises(NotFound):
        backend.get("demo")


def test_cancel_a_finished_job_is_a_conflict(backend, kube, script):
    submit(backend, script)
    kube.set_status(JOB, "demo", {"conditions": [{"type": "Complete", "status": "True"}]})
    with pytest.raises(Conflict, match="already finished"):
        backend.cancel("demo")


def test_job_being_deleted_shows_cancelled(backend, kube, script):
    submit(backend, script)
    # What a foreground delete looks like while the pods are still going away.
    kube._call("PATCH", kube.path(JOB, "demo"), {"metadata": {
        "finalizers": ["foregroundDeletion"], "deletionTimestamp": "2026-11-22T08:00:00Z"}},
        content_type="application/merge-patch+json")
    assert backend.get("demo").state == JobState.CANCELLED


# -- the CLI works unchanged on this backend ---------------------------------------------------------------


def test_cli_train_list_cancel(kube, script, monkeypatch, capsys):
    from dlw_magic import cli

    monkeypatch.setenv("DLW_KUBECONFIG", str(kube.kubeconfig))
    assert cli.main(["train", str(script), "--name", "clijob", "--image", "img:1", "--workers", "2"]) == 0
    assert cli.main(["jobs", "-o", "json"]) == 0
    out = capsys.readouterr().out
    listed = json.loads(out[out.index("["):])
    assert [(j["name"], j["backend"], j["state"]) for j in listed] == [("clijob", "kubernetes", "Queued")]
    assert cli.main(["cancel", "clijob"]) == 0
    assert cli.main(["status", "clijob"]) == 1
    assert "no such job" in capsys.readouterr().err


def test_rendered_yaml_applied_by_hand_is_managed_like_a_submitted_job(backend, kube, script, tmp_path):
    """`dlw render | kubectl apply -f -` then `dlw jobs`, `dlw rerun`: the labels and spec annotation suffice."""
    import yaml

    spec = core.build_spec(script, name="applied", workers=3, image="img:1")
    text = core.render(spec, engine="volcano")
    for obj in yaml.safe_load_all(text):
        kube.create(obj)  # what kubectl apply does
    info = backend.get("applied")
    assert (info.engine, info.workers, info.state) == ("volcano", 3, JobState.QUEUED)
    again = core.rerun("applied", "applied-2", backend=backend)
    assert again.name == "applied-2" and again.engine == "volcano" and again.workers == 3
    assert kube.get(VOLCANO, "applied-2")["spec"]["minAvailable"] == 3


def test_outputs_land_in_a_shared_home(kube, script, shared_home):
    from dlw_magic.workspace import load_workspace

    ws, _ = shared_home
    backend = KubernetesBackend(kubeconfig=str(kube.kubeconfig), workspace=str(ws))
    info = submit(backend, script, name="keep")
    assert info.output_dir == f"{load_workspace(ws).home.mount_path}/.dlw/jobs/keep/output"
    mounts = kube.get(JOB, "keep")["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "dlw-home", "mountPath": "/dlw/output", "subPath": ".dlw/jobs/keep/output"} in mounts


def test_api_refusal_is_one_line(backend, kube, script):
    import kmock

    kube.emulator["post", kmock.resource("batch/v1/jobs")] << kmock.KubernetesError(
        status=403, reason="Forbidden",
        message='jobs.batch is forbidden: User "system:serviceaccount:dlw-alice:default" cannot create '
                'resource "jobs" in API group "batch" in the namespace "dlw-alice"')
    with pytest.raises(DLWError) as err:
        submit(backend, script, name="denied")
    assert str(err.value).startswith("job denied: 403 jobs.batch is forbidden")
    assert "\n" not in str(err.value)


def test_large_snapshot_ships_through_the_shared_home(kube, script, shared_home):
    import os

    ws, home = shared_home
    (script.parent / "weights.bin").write_bytes(os.urandom(1 << 20))
    backend = KubernetesBackend(kubeconfig=str(kube.kubeconfig), workspace=str(ws))
    spec = core.build_spec(script, name="big", image="img:1")
    spec.source.files = ["weights.bin"]
    core.submit(spec, backend)
    shipped = home / ".dlw" / "jobs" / "big" / "code"
    assert (shipped / "weights.bin").stat().st_size == 1 << 20 and (shipped / "train.py").is_file()
    assert kube.items(CM) == []  # nothing went into a ConfigMap


def test_magics_work_unchanged_on_this_backend(kube, notebook, tmp_path, monkeypatch, capsys):
    """`%dlw train` from a notebook kernel submits to the cluster; `%dlw jobs` and `%dlw cancel` follow."""
    from IPython.core.interactiveshell import InteractiveShell

    nb = notebook("digits.ipynb", [("epochs = 3", ["parameters"]), "print('epochs', epochs)"])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DLW_KUBECONFIG", str(kube.kubeconfig))
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "dlw_magic")
    shell.run_line_magic("dlw", f"train {nb.name} --name magic-job --workers 2 --image img:1 --param epochs=5")
    assert "magic-job" in capsys.readouterr().out
    job = kube.get(JOB, "magic-job")
    assert job["spec"]["completions"] == 2
    cm = kube.get(CM, "magic-job-code")
    assert any("epochs = 5" in text for text in cm["data"].values())  # the converted main.py, parameter applied
    shell.run_line_magic("dlw", "jobs")
    assert "magic-job" in capsys.readouterr().out
    shell.run_line_magic("dlw", "cancel magic-job")
    assert kube.items(JOB) == []
