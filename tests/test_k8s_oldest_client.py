"""The backend's API and watch code on the oldest ``kubernetes`` client pyproject.toml declares.

An image built with that client must run ``dlw train``: the request (``Api.call``), the job and pod watch
(``ObjectWatch``: list, then a watch stream) and a log read run in a child Python whose ``kubernetes`` package
is that version (installed with uv into a throwaway folder put first on its path), against the kmock emulator.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UV = shutil.which("uv") or "/opt/uvenv/bin/uv"

CHILD = r"""
import sys, threading, time
import kubernetes
assert kubernetes.__version__ == sys.argv[2], kubernetes.__version__
from dlw_magic.backends.kubernetes.api import Api, api_client
from dlw_magic.backends.kubernetes.watch import ObjectWatch

api = Api(api_client(sys.argv[1]))
cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "dlw-alice",
      "labels": {"dlw.dev/job": "demo"}}, "data": {"k": "v"}}
api.create(cm)
assert api.read(("v1", "ConfigMap"), "dlw-alice", "a")["data"] == {"k": "v"}
assert [o["metadata"]["name"] for o in api.list(("v1", "ConfigMap"), "dlw-alice", {"dlw.dev/job": "demo"})] == ["a"]
changed = threading.Condition()
watch = ObjectWatch(api, ("v1", "ConfigMap"), "dlw-alice", {"dlw.dev/job": "demo"}, changed)
watch.start()
api.create({**cm, "metadata": {**cm["metadata"], "name": "b"}})
deadline = time.monotonic() + 20
with changed:
    while "b" not in watch.objects and time.monotonic() < deadline and not watch.unsupported:
        changed.wait(0.5)
watch.stop()
assert not watch.unsupported and sorted(watch.objects) == ["a", "b"], (watch.unsupported, watch.objects)
print("oldest client ok")
"""


def oldest_declared() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    match = re.search(r'"kubernetes>=([0-9.]+)"', text)
    assert match, "pyproject.toml declares no kubernetes minimum"
    return match.group(1)


def test_backend_api_and_watch_run_on_the_oldest_declared_client(tmp_path: Path) -> None:
    from tests.k8s_emulator import KubeEmulator

    version = oldest_declared()
    target = tmp_path / "k8s-old"
    install = subprocess.run(
        [UV, "pip", "install", "-q", "--no-deps", "--target", str(target), f"kubernetes=={version}"],
        capture_output=True, text=True, timeout=300)
    if install.returncode != 0:
        pytest.skip(f"cannot install kubernetes=={version} here: {install.stderr.strip()[-200:]}")
    with KubeEmulator(tmp_path, resources=["v1/configmaps"]) as kube:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(ROOT)])}
        run = subprocess.run([sys.executable, "-c", CHILD, str(kube.kubeconfig), version],
                             capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0 and "oldest client ok" in run.stdout, run.stdout + run.stderr
