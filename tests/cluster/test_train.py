"""`dlw train` on the real control plane, as alice's notebook runs it: her ServiceAccount's own token,
the real Job controller and kube-scheduler, pods run by the process kubelet, logs read through the API
server. The other engines train to the end in test_pytorchjob.py, test_volcano.py and test_trainjob.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.cluster.controlplane import ControlPlane
from tests.cluster.support import dlw, write_notebook

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "examples" / "digits_ddp.ipynb"


def _pods(cp: ControlPlane, ns: str, job: str) -> list[dict]:
    return cp.get("pods", "-n", ns, "-l", f"dlw.dev/job={job}")["items"]


def test_digits_trains_with_two_workers_through_the_real_job_controller(control_plane, alice):
    out = dlw("train", str(DIGITS), "--name", "digits-2w", "--engine", "job", "--workers", "2",
              "-p", "epochs=1", "--wait", env=alice, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    status = dlw("status", "digits-2w", "-o", "json", env=alice)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["state"] == "Succeeded"
    pods = _pods(control_plane, alice["DLW_NAMESPACE"], "digits-2w")
    assert len(pods) == 2 and {p["status"]["phase"] for p in pods} == {"Succeeded"}
    assert {p["spec"]["nodeName"] for p in pods} == {"cpu-0"}  # no GPU asked: not on the tainted GPU node
    logs = dlw("logs", "digits-2w", env=alice)
    assert logs.returncode == 0, logs.stderr
    assert re.search(r"accuracy: 0\.\d+", logs.stdout), logs.stdout[-2000:]
    # The same output through the API server's pods/log, with alice's own token.
    rank0 = next(p for p in pods if p["metadata"]["annotations"].get("batch.kubernetes.io/job-completion-index") == "0")
    direct = control_plane.kubectl("logs", rank0["metadata"]["name"], "-n", alice["DLW_NAMESPACE"],
                                   kubeconfig=Path(alice["KUBECONFIG"]))
    assert "accuracy" in direct.stdout


def test_cancel_stops_a_running_job_and_its_processes(control_plane, alice, tmp_path):
    nb = write_notebook(tmp_path / "sleepy.ipynb", ["import time\nprint('started', flush=True)\ntime.sleep(600)"])
    out = dlw("train", str(nb), "--name", "sleepy", "--engine", "job", env=alice)
    assert out.returncode == 0, out.stderr
    ns = alice["DLW_NAMESPACE"]
    running = lambda: any(p["status"].get("phase") == "Running" for p in _pods(control_plane, ns, "sleepy"))  # noqa: E731
    control_plane.wait_for(running, "the sleepy pod Running", 120)
    control_plane.wait_for(lambda: "started" in dlw("logs", "sleepy", env=alice).stdout, "its first line", 60)
    cancel = dlw("cancel", "sleepy", env=alice)
    assert cancel.returncode == 0, cancel.stderr
    # The Job is deleted with its pods; the kubelet stops the process on the graceful delete.
    control_plane.wait_for(lambda: not _pods(control_plane, ns, "sleepy"), "the pods gone", 90)
    state = json.loads(dlw("status", "sleepy", "-o", "json", env=alice).stdout or "{}").get("state")
    assert state in (None, "Cancelled"), state


def test_gpu_job_is_placed_on_the_gpu_node_and_sees_its_gpus(control_plane, alice, tmp_path):
    cell = "import os\nprint('visible', os.environ.get('NVIDIA_VISIBLE_DEVICES'))"
    nb = write_notebook(tmp_path / "gpus.ipynb", [cell])
    out = dlw("train", str(nb), "--name", "gpus", "--engine", "job", "--gpus", "2", "--wait", env=alice, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    [pod] = _pods(control_plane, alice["DLW_NAMESPACE"], "gpus")
    assert pod["spec"]["nodeName"] == "gpu-0"
    assert re.search(r"visible \d,\d", dlw("logs", "gpus", env=alice).stdout)
