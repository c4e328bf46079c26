"""The ``pytorchjob`` engine through Kubeflow's real training-operator (tests/cluster/training_operator.py):
its webhook validates what DLW submits, its controller makes the master and worker pods and Services, the
workers' init container (DLW's template) waits for the master's Service, and the digits example trains
with two ranks on the process kubelet, as alice."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from dlw_magic.engines.pytorchjob import INIT_CONTAINER_TEMPLATE
from tests.cluster.controlplane import ControlPlane
from tests.cluster.crds import SOURCES, module_dir, pinned
from tests.cluster.support import dlw, write_notebook
from tests.cluster.training_operator import TrainingOperator

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "examples" / "digits_ddp.ipynb"


def _pods(cp: ControlPlane, ns: str, job: str) -> list[dict]:
    return cp.get("pods", "-n", ns, "-l", f"training.kubeflow.org/job-name={job}")["items"]


def test_digits_trains_as_a_pytorchjob_through_the_training_operator(
        control_plane: ControlPlane, alice: dict[str, str], training_operator: TrainingOperator) -> None:
    ns = alice["DLW_NAMESPACE"]
    out = dlw("train", str(DIGITS), "--name", "digits-ptj", "--engine", "pytorchjob", "--workers", "2",
              "-p", "epochs=1", env=alice)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]

    def worker_started() -> dict | None:
        for p in _pods(control_plane, ns, "digits-ptj"):
            inits = p["status"].get("initContainerStatuses") or [{}]
            if p["metadata"]["labels"]["training.kubeflow.org/replica-type"] == "worker" and \
                    "terminated" in inits[0].get("state", {}):
                return p
        return None

    # The worker is caught while it runs: cleanPodPolicy Running deletes a rank still running at the end.
    worker = control_plane.wait_for(worker_started, "the worker past its init container", 300)
    [init] = worker["spec"]["initContainers"]
    # The operator's init container is DLW's restricted one (the pod policy admitted it), and it waited for
    # the master's Service, which the operator made.
    assert init["name"] == "init-pytorch" and init["securityContext"]["allowPrivilegeEscalation"] is False
    assert "nslookup digits-ptj-master-0" in init["command"][-1]
    assert worker["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    control_plane.get("service", "digits-ptj-master-0", "-n", ns)
    env = {e["name"]: e.get("value") for e in worker["spec"]["containers"][0]["env"]}
    assert env["MASTER_ADDR"] == "digits-ptj-master-0" and env["WORLD_SIZE"] == "2" and env["RANK"] == "1"

    state = lambda: json.loads(dlw("status", "digits-ptj", "-o", "json", env=alice).stdout)["state"]  # noqa: E731
    control_plane.wait_for(lambda: state() in ("Succeeded", "Failed"), "the PyTorchJob finished", 600, every=3)
    assert state() == "Succeeded", dlw("logs", "digits-ptj", env=alice).stdout[-2000:] + training_operator.log_tail()
    logs = dlw("logs", "digits-ptj", env=alice)
    assert logs.returncode == 0, logs.stderr
    assert re.search(r"accuracy: 0\.\d+", logs.stdout), logs.stdout[-2000:]


def test_the_operator_webhook_refuses_what_it_cannot_run(
        control_plane: ControlPlane, alice: dict[str, str], training_operator: TrainingOperator) -> None:
    bad = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "no-pytorch-container"},
           "spec": {"pytorchReplicaSpecs": {"Master": {"replicas": 1, "template": {"spec": {
               "containers": [{"name": "main", "image": "dlw/notebook:0.1.0"}]}}}}}}
    out = control_plane.kubectl("create", "-n", alice["DLW_NAMESPACE"], "-f", "-", input=json.dumps(bad), check=False)
    assert out.returncode != 0
    assert "denied the request" in out.stderr and "pytorch" in out.stderr, out.stderr


def test_cancel_stops_a_running_pytorchjob(control_plane: ControlPlane, alice: dict[str, str],
                                           training_operator: TrainingOperator, tmp_path: Path) -> None:
    ns = alice["DLW_NAMESPACE"]
    nb = write_notebook(tmp_path / "sleepy.ipynb", ["import time\nprint('started', flush=True)\ntime.sleep(600)"])
    assert dlw("train", str(nb), "--name", "sleepy-ptj", "--engine", "pytorchjob", env=alice).returncode == 0
    control_plane.wait_for(lambda: json.loads(dlw("status", "sleepy-ptj", "-o", "json", env=alice).stdout)
                           .get("state") == "Running", "the PyTorchJob Running", 120)
    control_plane.wait_for(lambda: "started" in dlw("logs", "sleepy-ptj", env=alice).stdout, "its first line", 60)
    assert dlw("cancel", "sleepy-ptj", env=alice).returncode == 0
    control_plane.wait_for(lambda: not _pods(control_plane, ns, "sleepy-ptj"), "the pods gone", 90)
    gone = control_plane.kubectl("get", "pytorchjobs", "sleepy-ptj", "-n", ns, check=False)
    assert gone.returncode != 0


def _init_container(template: str) -> dict:
    text = (template.replace("{{.InitContainerImage}}", "alpine:3.10").replace("{{.MaxTries}}", "100")
            .replace("{{.MasterAddr}}", "x-master-0"))
    [container] = yaml.safe_load(text)
    return container


def test_only_dlws_init_container_passes_the_pod_policy(control_plane: ControlPlane, alice: dict[str, str]) -> None:
    """Upstream's default init container (read from the operator's module) is refused in a user namespace;
    the template DLW ships (deploy/training-operator-initContainer.yaml) is admitted."""
    source = (module_dir(pinned("training-operator", SOURCES["training-operator"][0]))
              / "pkg/controller.v1/pytorch/initcontainer.go").read_text()
    upstream = re.search(r"initContainerTemplate = `(.*?)`", source, re.S)
    assert upstream, "upstream's default init container template not found"
    objs = yaml.safe_load_all(dlw("render", str(DIGITS), "--name", "policy-ptj", "--engine", "pytorchjob",
                                  "--workers", "2", env=alice).stdout)
    [job] = [o for o in objs if o and o["kind"] == "PyTorchJob"]
    worker = job["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]
    results = {}
    for name, template in (("upstream", upstream.group(1)), ("dlw", INIT_CONTAINER_TEMPLATE)):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {**worker["metadata"], "name": f"init-{name}"},
               "spec": {**worker["spec"], "initContainers": [_init_container(template)]}}
        # As the operator creates them (alice may not create pods herself); the policy binds to the namespace.
        results[name] = control_plane.kubectl("create", "--dry-run=server", "-n", alice["DLW_NAMESPACE"], "-f", "-",
                                              input=json.dumps(pod), check=False)
    assert results["upstream"].returncode != 0 and "dlw-user-pods" in results["upstream"].stderr
    assert results["dlw"].returncode == 0, results["dlw"].stderr
