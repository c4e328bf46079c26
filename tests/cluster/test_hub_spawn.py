"""A real JupyterHub with DLW's KubeSpawner (hub_config/jupyterhub_config.py) against the real control plane,
as the hub's own ServiceAccount: a user signs in and spawns the GPU profile from the spawn form; the hub
makes her namespace and what DLW puts there, the admission policies admit her pod, kube-scheduler binds it
to the GPU node, the process kubelet runs its ``jupyterhub-singleuser`` and the hub reaches it. With the GPU
node full, the spawn page's sentence is made of kube-scheduler's own FailedScheduling event.

The user is ``dana``, not the session's ``alice`` (whose namespace the suite's fixture makes), so that
everything in the namespace is provably the hub's work.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import GPU_TAINT, GPU_TYPE
from tests.cluster.controlplane import ControlPlane
from tests.cluster.hub import Hub, proxy_path
from tests.cluster.kubelet import ProcessKubelet
from tests.cluster.support import WORKSPACE, hub_kubeconfig

USER = "dana"
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def hub(control_plane: ControlPlane, installed: Path, nodes: dict[str, ProcessKubelet],
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    if not proxy_path() and os.environ.get("CI") != "true":
        pytest.skip("configurable-http-proxy is missing: run `source scripts/env.sh test` (npm ci --prefix hub_config)")
    h = Hub(control_plane, tmp_path_factory.mktemp("hub"), users=(USER,)).start()
    try:
        yield h
    finally:
        for user in h.api("GET", "/users"):
            if user.get("servers") or user.get("pending"):
                h.api("DELETE", f"/users/{user['name']}/server", ok=(202, 204, 400))
        h.stop()


def spawn_from_form(hub: Hub, user: str, gpus: int) -> None:
    """Sign in and submit the spawn form with the GPU profile and ``gpus`` GPUs, as a person does."""
    s = hub.login(user)
    form = s.get(f"{hub.url}/hub/spawn", timeout=60)
    assert form.status_code == 200 and 'value="gpu"' in form.text, form.text[:500]
    res = s.post(f"{hub.url}/hub/spawn", allow_redirects=False, timeout=120,
                 data={"profile": "gpu", "profile-option-gpu--gpus": str(gpus), "_xsrf": s.cookies.get("_xsrf", "")})
    assert res.status_code == 302, f"spawn form: {res.status_code} {res.text[:500]}\n{hub.log_tail()}"


def pod_of(cp: ControlPlane, ns: str) -> dict[str, Any]:
    pods = cp.get("pods", "-n", ns, "-l", "component=singleuser-server")["items"]
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    return pods[0]


def pod_logs(node: ProcessKubelet) -> str:
    """The container logs the process kubelet kept (for a failure's message: the pod may be gone)."""
    return "\n".join(f"{p}:\n{p.read_text(errors='replace')[-3000:]}" for p in node.root.glob("pods/*/*.log"))


def test_gpu_spawn_makes_the_namespace_and_runs_on_the_gpu_node(hub: Hub, control_plane: ControlPlane,
                                                                 nodes: dict[str, ProcessKubelet]):
    from dlw_magic.hub.deploy import namespace_objects
    from dlw_magic.workspace import load_workspace

    ws = load_workspace(WORKSPACE)
    ns = ws.namespace_for(USER)
    assert control_plane.kubectl("get", "namespace", ns, check=False).returncode != 0  # the hub makes it

    spawn_from_form(hub, USER, gpus=2)
    events = list(hub.progress(USER))
    assert events[-1].get("ready"), f"{events[-1]}\n{hub.log_tail()}\n{pod_logs(nodes['gpu'])}"

    # The namespace, labelled for the admission policies, with everything deploy.namespace_objects lists.
    got = control_plane.get("namespace", ns)
    want = namespace_objects(ws, ns, WORKSPACE.read_text(), USER)
    assert want[0]["metadata"]["labels"].items() <= got["metadata"]["labels"].items()
    for obj in want[1:]:
        found = control_plane.kubectl("get", obj["kind"].lower(), obj["metadata"]["name"], "-n", ns, check=False)
        assert found.returncode == 0, f"{obj['kind']} {obj['metadata']['name']} missing: {found.stderr}"

    # The pod exists, so the ValidatingAdmissionPolicies admitted it; kube-scheduler bound it to gpu-0.
    pod = pod_of(control_plane, ns)
    assert pod["spec"]["nodeName"] == "gpu-0"
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert pod["spec"]["nodeSelector"]["nvidia.com/gpu.product"] == GPU_TYPE
    assert pod["spec"]["serviceAccountName"] == ws.hub.service_account
    scheduled = control_plane.get("events", "-n", ns, "--field-selector",
                                  f"involvedObject.name={pod['metadata']['name']},reason=Scheduled")["items"]
    assert [e["message"] for e in scheduled] == [f"Successfully assigned {ns}/{pod['metadata']['name']} to gpu-0"]
    assert pod["status"]["phase"] == "Running"
    # ... and the policies do guard her namespace: the same pod adding a capability is refused (server dry run).
    bad = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "cap-copy", "namespace": ns},
           "spec": {k: v for k, v in pod["spec"].items() if k != "nodeName"}}
    bad["spec"]["containers"][0]["securityContext"]["capabilities"]["add"] = ["NET_ADMIN"]
    refused = control_plane.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(bad), check=False,
                                    kubeconfig=hub_kubeconfig(control_plane))
    assert refused.returncode != 0 and "may not add Linux capabilities" in refused.stderr, refused.stderr
    # The spawn page showed the scheduler's word as it came (KubeSpawner's event stream).
    assert any("Successfully assigned" in e.get("message", "") for e in events), events

    # The hub reaches the notebook server that runs in the pod (the process kubelet's jupyterhub-singleuser).
    model = hub.api("GET", f"/users/{USER}")
    assert model["servers"][""]["ready"] is True
    s = hub.login(USER)  # her browser: through the proxy, the server's OAuth with the hub, to JupyterLab
    lab = s.get(f"{hub.url}/user/{USER}/lab", timeout=120)
    assert lab.status_code == 200 and lab.url == f"{hub.url}/user/{USER}/lab", (lab.status_code, lab.url)
    status = s.get(f"{hub.url}/user/{USER}/api/status", timeout=60)
    assert status.status_code == 200, status.text[:300]

    # The hub's log does not claim the profile choice went unhandled (JupyterHub 5.3's warning).
    assert "unhandled user_options" not in hub.log.read_text()

    hub.stop_server(USER)
    control_plane.wait_for(lambda: not control_plane.get("pods", "-n", ns)["items"], "the notebook pod deleted", 120)


def test_no_gpu_free_the_spawn_page_says_why_in_the_schedulers_words(hub: Hub, control_plane: ControlPlane,
                                                                        nodes: dict[str, ProcessKubelet]):
    # Fill gpu-0: a pod outside DLW's namespaces holding every GPU the scheduler still counts as free there.
    pods = control_plane.get("pods", "--all-namespaces", "--field-selector", "spec.nodeName=gpu-0")["items"]
    held = sum(int(((c.get("resources") or {}).get("limits") or {}).get("nvidia.com/gpu", 0))
               for p in pods if p["status"].get("phase") not in ("Succeeded", "Failed")
               for c in p["spec"]["containers"])
    free = nodes["gpu"].gpus - held
    filler = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "gpu-filler", "namespace": "default"},
              "spec": {"nodeName": "gpu-0", "tolerations": [{**GPU_TAINT, "operator": "Equal"}],
                       "containers": [{"name": "hold", "image": "pause", "command": ["sleep", "infinity"],
                                       "resources": {"limits": {"nvidia.com/gpu": str(free)}}}]}}
    try:
        if free > 0:
            control_plane.apply([filler])
            control_plane.wait_for(lambda: control_plane.get("pod", "gpu-filler", "-n", "default")["status"].get(
                "phase") == "Running", "the filler pod Running", 60)
        spawn_from_form(hub, USER, gpus=1)
        raw, sentences = None, []
        for event in hub.progress(USER, timeout=180):
            if "raw_event" in event and event["raw_event"].get("reason") == "FailedScheduling":
                raw = raw or event["raw_event"]
            elif raw is not None and "raw_event" not in event and event.get("message"):
                sentences.append(event["message"])
                break
        assert raw is not None, hub.log_tail()
        # kube-scheduler's own text: no node fits (gpu-0 is full; cpu-0 has no GPU of that type).
        message = raw["message"]
        assert "default-scheduler" in ((raw.get("source") or {}).get("component"), raw.get("reportingComponent"))
        assert re.match(r"0/\d+ nodes are available: .*\b1 Insufficient nvidia\.com/gpu", message), message
        assert sentences == [f"Waiting for a node with a free GPU (nvidia.com/gpu: 1, type {GPU_TYPE}): {message}"]
    finally:
        hub.stop_server(USER)
        control_plane.kubectl("delete", "pod", "gpu-filler", "-n", "default", "--wait=false", check=False)
