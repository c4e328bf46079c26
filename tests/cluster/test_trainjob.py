"""The ``trainjob`` engine through Kubeflow Trainer v2 and JobSet (tests/cluster/kubeflow_trainer.py), as alice:
Trainer's webhooks admit what DLW submits, Trainer makes the JobSet from DLW's TrainingRuntime (torch plugin:
``PET_*`` variables), JobSet makes the headless Service and the node Job, the Job controller the pods, and the
digits example trains with two ranks on the process kubelet to Succeeded."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from tests.cluster.controlplane import ControlPlane
from tests.cluster.kubeflow_trainer import Controller
from tests.cluster.support import WORKSPACE, dlw, write_notebook

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "examples" / "digits_ddp.ipynb"
JOBSET_NAME = "jobset.sigs.k8s.io/jobset-name"


def _pods(cp: ControlPlane, ns: str, job: str) -> list[dict[str, Any]]:
    return cp.get("pods", "-n", ns, "-l", f"{JOBSET_NAME}={job}")["items"]


def _state(name: str, alice: dict[str, str]) -> dict[str, Any]:
    out = dlw("status", name, "-o", "json", env=alice)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _why(cp: ControlPlane, ns: str, name: str, trainer: dict[str, Controller]) -> str:
    events = cp.kubectl("get", "events", "-n", ns, "--sort-by=.lastTimestamp", check=False).stdout[-3000:]
    return (f"{events}\n--- trainer:\n{trainer['trainer'].log_tail(2000)}\n--- jobset:\n"
            f"{trainer['jobset'].log_tail(2000)}")


def test_digits_trains_as_a_trainjob_through_trainer_and_jobset(
        control_plane: ControlPlane, alice: dict[str, str], trainer: dict[str, Controller]) -> None:
    ns, name = alice["DLW_NAMESPACE"], "digits-tj"
    out = dlw("train", str(DIGITS), "--name", name, "--engine", "trainjob", "--workers", "2", "-p", "epochs=1",
              env=alice)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]

    control_plane.wait_for(lambda: _state(name, alice)["state"] in ("Succeeded", "Failed"), "the TrainJob finished",
                           600, every=3)
    final = _state(name, alice)
    assert final["state"] == "Succeeded", (final, dlw("logs", name, env=alice).stdout[-2000:],
                                           _why(control_plane, ns, name, trainer))
    logs = dlw("logs", name, env=alice)
    assert logs.returncode == 0, logs.stderr
    assert re.search(r"accuracy: 0\.\d+", logs.stdout), logs.stdout[-2000:]

    # Trainer made the JobSet (owned by the TrainJob) from DLW's runtime; JobSet made the Service and the Job.
    jobset = control_plane.get("jobsets", name, "-n", ns)
    assert [o["kind"] for o in jobset["metadata"]["ownerReferences"]] == ["TrainJob"]
    assert any(c["type"] == "Completed" and c["status"] == "True" for c in jobset["status"]["conditions"])
    control_plane.get("service", name, "-n", ns)
    [job] = control_plane.get("jobs", "-n", ns, "-l", f"{JOBSET_NAME}={name}")["items"]
    assert job["metadata"]["name"] == f"{name}-node-0" and job["status"]["succeeded"] == 2
    pods = sorted(_pods(control_plane, ns, name), key=lambda p: int(p["metadata"]["annotations"][
        "batch.kubernetes.io/job-completion-index"]))
    assert [p["status"]["phase"] for p in pods] == ["Succeeded", "Succeeded"]
    for rank, pod in enumerate(pods):
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        # Trainer's torch plugin: the rendezvous is rank 0's name under the JobSet's Service (subdomain).
        assert env["PET_MASTER_ADDR"] == f"{name}-node-0-0.{name}" and env["PET_NNODES"] == "2", env
        assert pod["spec"]["subdomain"] == name and pod["spec"]["hostname"] == f"{name}-node-0-{rank}"
        assert pod["metadata"]["labels"]["dlw.dev/job"] == name
    assert "rank 1/2 starting" in logs.stdout, logs.stdout[-2000:]


def test_trainers_webhook_refuses_a_trainjob_without_its_runtime(
        control_plane: ControlPlane, alice: dict[str, str], trainer: dict[str, Controller]) -> None:
    bad = {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "metadata": {"name": "no-runtime"},
           "spec": {"runtimeRef": {"apiGroup": "trainer.kubeflow.org", "kind": "TrainingRuntime", "name": "missing"},
                    "trainer": {"numNodes": 1}}}
    out = control_plane.kubectl("create", "-n", alice["DLW_NAMESPACE"], "-f", "-", input=json.dumps(bad),
                                check=False, kubeconfig=Path(alice["KUBECONFIG"]))
    assert out.returncode != 0
    assert 'admission webhook "validator.trainjob.trainer.kubeflow.org" denied the request' in out.stderr, out.stderr
    assert "specified trainingRuntime must be created before the TrainJob is created" in out.stderr, out.stderr


def test_cancel_stops_a_running_trainjob(control_plane: ControlPlane, alice: dict[str, str],
                                         trainer: dict[str, Controller], tmp_path: Path) -> None:
    ns, name = alice["DLW_NAMESPACE"], "sleepy-tj"
    nb = write_notebook(tmp_path / "sleepy.ipynb", ["import time\nprint('started', flush=True)\ntime.sleep(600)"])
    out = dlw("train", str(nb), "--name", name, "--engine", "trainjob", env=alice)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    control_plane.wait_for(lambda: _state(name, alice)["state"] == "Running", "the TrainJob Running", 180)
    control_plane.wait_for(lambda: "started" in dlw("logs", name, env=alice).stdout, "its first line", 60)
    assert dlw("cancel", name, env=alice).returncode == 0
    control_plane.wait_for(lambda: not _pods(control_plane, ns, name), "the pods gone", 120)
    left = lambda: [k for k in ("trainjobs", "trainingruntimes", "jobsets", "jobs")  # noqa: E731
                    if control_plane.kubectl("get", k, "-n", ns, "-l", f"dlw.dev/job={name}", "-o", "name").stdout]
    try:
        control_plane.wait_for(lambda: not left(), "the TrainJob, its runtime, JobSet and Job gone", 90)
    except AssertionError:
        dump = control_plane.kubectl("get", ",".join(left()), "-n", ns, "-o", "yaml", check=False).stdout
        raise AssertionError(f"left after cancel: {left()}\n{dump[-3000:]}\n"
                             f"{_why(control_plane, ns, name, trainer)}") from None


def test_admin_check_finds_the_trainer_dlw_needs(control_plane: ControlPlane, crds: None) -> None:
    """`dlw admin check --cluster` as the admin reads the installed Trainer's TrainingRuntime CRD (v2.3.0):
    it keeps the eviction rule's message patterns, so the trainjob engine is not refused."""
    out = dlw("admin", "check", str(WORKSPACE), "--cluster", env={"DLW_KUBECONFIG": str(control_plane.kubeconfig)})
    lines = out.stdout.splitlines()
    assert "ok   Kubeflow Trainer version: its TrainingRuntime CRD has onJobFailureMessagePatterns" in lines, out.stdout
    assert any(line.startswith("ok   ") and "trainjobs.trainer.kubeflow.org" in line for line in lines), out.stdout


def test_status_says_why_trainer_cannot_make_the_jobset(
        control_plane: ControlPlane, alice: dict[str, str], trainer: dict[str, Controller], tmp_path: Path) -> None:
    """A TrainJob whose JobSet JobSet's webhook refuses (as DLW's own rule name did) waits for ever: `dlw status`
    says why, from Trainer's Warning event on the TrainJob."""
    ns, name = alice["DLW_NAMESPACE"], "stuck-tj"
    nb = write_notebook(tmp_path / "stuck.ipynb", ["print('never runs')"])
    objs = [o for o in yaml.safe_load_all(dlw("render", str(nb), "--name", name, "--engine", "trainjob",
                                              env=alice).stdout) if o]
    runtime = next(o for o in objs if o["kind"] == "TrainingRuntime")
    runtime["spec"]["template"]["spec"]["failurePolicy"]["rules"][0]["name"] = "not-a-rule-name"
    for kind in ("TrainingRuntime", "TrainJob"):  # as alice, in the order DLW creates them
        out = control_plane.kubectl("create", "-f", "-", input=json.dumps(next(o for o in objs if o["kind"] == kind)),
                                    check=False, kubeconfig=Path(alice["KUBECONFIG"]))
        assert out.returncode == 0, out.stderr
    found = control_plane.wait_for(lambda: (s := _state(name, alice))["reason"] == "TrainJobResourcesCreationFailed"
                                   and s, "dlw status naming Trainer's failure", 120)
    assert found["state"] == "Queued"
    assert "invalid failure policy rule name 'not-a-rule-name'" in found["message"], found
    assert dlw("cancel", name, env=alice).returncode == 0
    control_plane.wait_for(lambda: control_plane.kubectl("get", "trainjobs", name, "-n", ns, check=False)
                           .returncode != 0, "the TrainJob gone", 60)
