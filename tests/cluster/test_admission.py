"""DLW's admission policies and RBAC as the real API server enforces them (the dlw-cluster chart installed
by helm), not as cel-python or our emulator read them: every forbidden pod is refused, also when the real
controllers create it for a Job, a Deployment (its ReplicaSet) or a CronJob (its Job) in a user namespace."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.controlplane import ControlPlane
from tests.cluster.support import dlw, user_namespace


def _pod(name: str, ns: str, **spec: Any) -> dict[str, Any]:
    containers = spec.pop("containers", [{"name": "c", "image": "python:3.12", "command": ["true"]}])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"containers": containers, **spec}}


def _c(**fields: Any) -> list[dict[str, Any]]:
    return [{"name": "c", "image": "python:3.12", "command": ["true"], **fields}]


def _hp(path: str) -> dict[str, Any]:
    return {"volumes": [{"name": "h", "hostPath": {"path": path}}],
            "containers": _c(volumeMounts=[{"name": "h", "mountPath": "/h"}])}


FORBIDDEN: dict[str, dict[str, Any]] = {
    "privileged": {"containers": _c(securityContext={"privileged": True})},
    "privileged-init": {"initContainers": [{**_c(securityContext={"privileged": True})[0], "name": "i"}]},
    "cap-sys-admin": {"containers": _c(securityContext={"capabilities": {"add": ["SYS_ADMIN"]}})},
    "host-port": {"containers": _c(ports=[{"containerPort": 80, "hostPort": 80}])},
    "host-network": {"hostNetwork": True},
    "host-pid": {"hostPID": True},
    "host-ipc": {"hostIPC": True},
    "hostpath-root": _hp("/"),
    "hostpath-docker-sock": _hp("/var/run/docker.sock"),
    "hostpath-prefix-of-name": _hp("/mnt/scratchy"),
    "hostpath-other-user": _hp("/mnt/scratch/dlw/bob"),
    "hostpath-every-user": _hp("/mnt/scratch/dlw"),
}


@pytest.fixture(scope="module")
def ns(control_plane: ControlPlane, alice: dict[str, str]) -> str:
    return alice["DLW_NAMESPACE"]


@pytest.mark.parametrize("case", sorted(FORBIDDEN))
def test_forbidden_pods_are_refused_by_the_api_server(control_plane: ControlPlane, ns: str, case: str) -> None:
    # Even the cluster admin: the policies bind to the namespace, not to a user.
    pod = _pod(f"bad-{case}", ns, **json.loads(json.dumps(FORBIDDEN[case])))
    out = control_plane.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
    assert out.returncode != 0, f"{case} admitted"
    assert "ValidatingAdmissionPolicy" in out.stderr and "denied" in out.stderr, out.stderr


def test_a_job_cannot_launder_a_forbidden_pod(control_plane: ControlPlane, alice: dict[str, str], ns: str) -> None:
    """alice may create Jobs; the Job controller's pods are checked as hers would be: none is created."""
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "launder", "namespace": ns},
           "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "hostNetwork": True,
                                                           "containers": _c()}}}}
    for kind in ("deployments", "daemonsets", "pods"):  # no other way in for alice
        can = control_plane.kubectl("auth", "can-i", "create", kind, "-n", ns, check=False,
                                    kubeconfig=Path(alice["KUBECONFIG"]))
        assert can.stdout.strip() == "no", kind
    made = control_plane.kubectl("create", "-f", "-", input=json.dumps(job), kubeconfig=Path(alice["KUBECONFIG"]),
                                 check=False)
    if made.returncode:  # refused already as a Job (a DLW policy checks users' jobs and their templates)
        assert "ValidatingAdmissionPolicy" in made.stderr, made.stderr
        assert control_plane.get("pods", "-n", ns, "-l", "job-name=launder")["items"] == []
        return

    def refused() -> bool:
        events = control_plane.get("events", "-n", ns, "--field-selector", "involvedObject.name=launder")["items"]
        return any(e["reason"] == "FailedCreate" and "ValidatingAdmissionPolicy" in e["message"] for e in events)

    control_plane.wait_for(refused, "the Job controller's FailedCreate naming the policy", 60)
    assert control_plane.get("pods", "-n", ns, "-l", "job-name=launder")["items"] == []


# A pod the policies admit (Pod Security "restricted"), and the two ways out of it that a controller must not
# launder: the host's network, and a hostPath outside the admin's allowlist (tests/cluster/workspace.yaml).
SECURE_POD: dict[str, Any] = {
    "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": _c(securityContext={"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}),
}
LAUNDERED = {
    "host-network": ({"hostNetwork": True}, "host network, PID and IPC namespaces are not allowed"),
    "host-path": ({"volumes": [{"name": "h", "hostPath": {"path": "/var/run/docker.sock"}}]},
                  "hostPath volumes must be exactly a folder of the admin's catalogue or hostPathAllowlist"),
}


def _launder_pod(case: str) -> dict[str, Any]:
    extra, _ = LAUNDERED[case]
    spec = json.loads(json.dumps(SECURE_POD))
    spec.update(json.loads(json.dumps(extra)))
    if "volumes" in extra:
        spec["containers"][0]["volumeMounts"] = [{"name": "h", "mountPath": "/h"}]
    return spec


def test_a_deployment_or_cronjob_cannot_launder_a_forbidden_pod(control_plane: ControlPlane, alice: dict[str, str],
                                                                ns: str) -> None:
    """The ReplicaSet controller (a Deployment the cluster admin makes in alice's namespace: the policies
    bind to the namespace, not to a user) and the CronJob and Job controllers (a CronJob alice makes, as
    `dlw schedule` does) create their pods as the controllers' own ServiceAccounts; each such pod is
    refused as alice's own would be, with the policy's reason in the controller's FailedCreate event."""
    kc = Path(alice["KUBECONFIG"])
    for case in LAUNDERED:  # the same pod without the forbidden field is admitted: the field is what is refused
        ok = _pod(f"ok-{case}", ns, **json.loads(json.dumps(SECURE_POD)))
        res = control_plane.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(ok), check=False)
        assert res.returncode == 0, res.stderr
    made: dict[str, str] = {}  # owner of the FailedCreate event -> the reason it must give
    for case, (_, reason) in LAUNDERED.items():
        name = f"launder-deploy-{case}"
        deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
                  "spec": {"replicas": 1, "selector": {"matchLabels": {"launder": name}},
                           "template": {"metadata": {"labels": {"launder": name}}, "spec": _launder_pod(case)}}}
        control_plane.kubectl("create", "-f", "-", input=json.dumps(deploy))  # as the cluster admin
        made[name] = reason
        name = f"launder-cron-{case}"
        cron_job = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name, "namespace": ns},
                    "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"backoffLimit": 0, "template": {
                        "metadata": {"labels": {"launder": name}},
                        "spec": {"restartPolicy": "Never", **_launder_pod(case)}}}}}}
        out = control_plane.kubectl("create", "-f", "-", input=json.dumps(cron_job), kubeconfig=kc, check=False)
        assert out.returncode == 0, out.stderr  # alice may make CronJobs (dlw schedule); their pods are checked
        made[name] = reason

    def owner(event: dict[str, Any]) -> str | None:
        """The Deployment or CronJob behind a ReplicaSet's or Job's event (names: <deploy>-<hash>, <cron>-<min>)."""
        obj = event["involvedObject"]
        if obj.get("kind") not in ("ReplicaSet", "Job"):
            return None
        return next((n for n in made if obj["name"].rsplit("-", 1)[0] == n), None)

    def refusals() -> dict[str, str] | None:
        events = control_plane.get("events", "-n", ns, "--field-selector", "reason=FailedCreate")["items"]
        got = {o: e["message"] for e in events if (o := owner(e)) and "ValidatingAdmissionPolicy" in e["message"]}
        return got if set(got) == set(made) else None

    try:  # one wait for all four: the CronJob controller fires at the next full minute
        got = control_plane.wait_for(refusals, "the ReplicaSet and Job controllers' FailedCreate naming the policy",
                                     150, every=3)
        for name, reason in made.items():
            assert "dlw-user-pods" in got[name] and reason in got[name], (name, got[name])
            assert control_plane.get("pods", "-n", ns, "-l", f"launder={name}")["items"] == [], name
        kinds = {e["involvedObject"]["kind"] for e in control_plane.get(
            "events", "-n", ns, "--field-selector", "reason=FailedCreate")["items"] if owner(e)}
        assert kinds == {"ReplicaSet", "Job"}, kinds
    finally:
        for name in made:
            kind = "deployment" if "deploy" in name else "cronjob"
            control_plane.kubectl("delete", kind, name, "-n", ns, "--wait=false", check=False)


def test_every_pod_dlw_renders_is_admitted(control_plane: ControlPlane, alice: dict[str, str], ns: str,
                                           tmp_path: Path) -> None:
    """Each engine's pod templates, as their controllers create them, pass the real API server's admission."""
    nb = tmp_path / "train.py"
    nb.write_text("print('hi')\n")
    for engine in ("job", "volcano", "pytorchjob", "trainjob"):
        out = dlw("render", str(nb), "--engine", engine, "--workers", "2", "--gpus", "1", "--volume", "scratch",
                  env=alice, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        objs = [o for o in _docs(out.stdout)]
        templates = list(_templates(objs))
        assert templates, engine
        for i, t in enumerate(templates):
            pod = {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {**t.get("metadata", {}), "name": f"{engine}-{i}", "namespace": ns},
                   "spec": t["spec"]}
            res = control_plane.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
            assert res.returncode == 0, f"{engine} pod {i}: {res.stderr}"


def _docs(text: str) -> list[dict[str, Any]]:
    import yaml

    return [d for d in yaml.safe_load_all(text) if d]


def _templates(objs: list[dict[str, Any]]) -> Any:
    for o in objs:
        s = o.get("spec", {})
        if o["kind"] == "Job" and "template" in s:
            yield s["template"]
        yield from (t["template"] for t in s.get("tasks", []))
        yield from (r["template"] for r in s.get("pytorchReplicaSpecs", {}).values())
        for rj in s.get("template", {}).get("spec", {}).get("replicatedJobs", []):  # TrainingRuntime's JobSet
            yield rj["template"]["spec"]["template"]


def test_users_cannot_edit_the_workspace_configmap(control_plane: ControlPlane, alice: dict[str, str],
                                                   ns: str) -> None:
    kc = Path(alice["KUBECONFIG"])
    patch = control_plane.kubectl("patch", "configmap", "dlw-workspace", "-n", ns, "--type=merge",
                                  "-p", '{"data": {"workspace.yaml": "hacked"}}', check=False, kubeconfig=kc)
    assert patch.returncode != 0
    delete = control_plane.kubectl("delete", "configmap", "dlw-workspace", "-n", ns, check=False, kubeconfig=kc)
    assert delete.returncode != 0
    assert "hacked" not in control_plane.kubectl("get", "cm", "dlw-workspace", "-n", ns, "-o", "yaml").stdout


def test_a_user_namespace_is_deleted_to_the_end(control_plane: ControlPlane, installed: Path) -> None:
    """The namespace controller and the garbage collector delete what the ConfigMap guard protects."""
    ns = user_namespace(control_plane, "carol")
    control_plane.kubectl("delete", "namespace", ns, "--wait=false")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if control_plane.kubectl("get", "namespace", ns, check=False).returncode != 0:
            return
        time.sleep(1)
    left = control_plane.kubectl("get", "namespace", ns, "-o", "jsonpath={.status.conditions}").stdout
    pytest.fail(f"namespace {ns} still Terminating after 120 s: {left}")


NOTEBOOK_NEEDS = [  # what the backend does in the user's own namespace (docs/kubernetes.md)
    ("create", "jobs.batch"), ("delete", "jobs.batch"), ("watch", "jobs.batch"),
    ("create", "configmaps"), ("create", "services"), ("get", "pods"), ("watch", "pods"), ("get", "pods/log"),
    ("delete", "pods"), ("list", "events"), ("create", "pytorchjobs.kubeflow.org"),
    ("create", "jobs.batch.volcano.sh"), ("create", "trainjobs.trainer.kubeflow.org"),
]
NOTEBOOK_MUST_NOT = [
    ("create", "pods"), ("create", "rolebindings.rbac.authorization.k8s.io"), ("create", "secrets"),
    ("get", "secrets"), ("patch", "namespaces"), ("create", "persistentvolumes"),
    ("update", "configmaps/dlw-workspace"),
]


def test_notebook_rights_as_the_api_server_sees_them(control_plane: ControlPlane, alice: dict[str, str],
                                                     ns: str, crds: None) -> None:
    kc = Path(alice["KUBECONFIG"])

    def can(verb: str, what: str, *where: str) -> bool:
        out = control_plane.kubectl("auth", "can-i", verb, what, *where, check=False, kubeconfig=kc)
        return out.stdout.strip() == "yes"

    missing = [f"{v} {r}" for v, r in NOTEBOOK_NEEDS if not can(v, r, "-n", ns)]
    assert missing == [], missing
    extra = [f"{v} {r}" for v, r in NOTEBOOK_MUST_NOT if can(v, r, "-n", ns)]
    assert extra == [], extra
    # Nothing outside her namespace: the hub's, another user's, kube-system, or cluster-wide.
    for where in (["-n", "kube-system"], ["-n", "dlw"], ["-n", "dlw-bob"], ["--all-namespaces"]):
        leaked = [f"{v} {r} {' '.join(where)}" for v, r in NOTEBOOK_NEEDS if can(v, r, *where)]
        assert leaked == [], leaked
    rules = json.loads(control_plane.kubectl("auth", "can-i", "--list", "-n", "kube-system", "-o", "json",
                                             check=False, kubeconfig=kc).stdout or "{}")
    writes = [r for r in rules.get("resourceRules", [])
              if set(r.get("verbs", [])) & {"create", "update", "patch", "delete", "*"}
              and "selfsubject" not in "".join(r.get("resources", []))]
    assert writes == [], writes
