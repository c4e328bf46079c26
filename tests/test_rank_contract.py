"""The rank contract of every engine: its rendered pods, run as local processes, train the digits example.

No cluster here, so the test plays each engine's controller: it takes every pod template the engine
renders, gives each pod the environment that controller injects (Indexed Job: JOB_COMPLETION_INDEX;
Volcano's env plugin: VC_TASK_INDEX; training-operator: MASTER_*, WORLD_SIZE, RANK, PET_*; Kubeflow
Trainer: PET_* only), points the rendezvous at 127.0.0.1, unpacks the code ConfigMap where the pod
would mount it, and runs the container's command. Every pod must exit 0 and rank 0 must report the
accuracy, for 3 pods x 1 rank and 2 pods x 2 ranks (torchrun) on all four engines.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dlw_magic import core, snapshot
from dlw_magic.engines.objects import render_objects
from dlw_magic.engines.policy import pod_specs

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "digits_ddp.ipynb"
WORKSPACE = str(Path(__file__).parent / "render_golden" / "workspace.yaml")
TOPOLOGIES = [(3, 1), (2, 2)]  # (pods, ranks per pod)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _by_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def controller_pods(engine: str, objs: list[dict[str, Any]], port: int) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """(pod spec, env its controller injects) for every pod the engine's controller would create."""
    rdzv = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    out: list[tuple[dict[str, Any], dict[str, str]]] = []
    if engine == "job":  # batch/v1 Indexed Job: one pod per completion index
        [job] = _by_kind(objs, "Job")
        [(_, pod)] = list(pod_specs(job))
        for i in range(job["spec"]["completions"]):
            out.append((pod, {**rdzv, "JOB_COMPLETION_INDEX": str(i)}))
    elif engine == "volcano":  # env plugin: VC_TASK_INDEX (and VK_) per task
        [vc] = _by_kind(objs, "Job")
        for task in vc["spec"]["tasks"]:
            for i in range(task["replicas"]):
                out.append((task["template"]["spec"], {**rdzv, "VC_TASK_INDEX": str(i), "VK_TASK_INDEX": str(i)}))
    elif engine == "pytorchjob":  # training-operator v1.9 envvar.go
        [pt] = _by_kind(objs, "PyTorchJob")
        replicas = pt["spec"]["pytorchReplicaSpecs"]
        nnodes = sum(r["replicas"] for r in replicas.values())
        nproc = int(pt["spec"]["nprocPerNode"])
        rank = 0
        for role in ("Master", "Worker"):
            for _ in range(replicas.get(role, {}).get("replicas", 0)):
                out.append((replicas[role]["template"]["spec"], {
                    **rdzv, "WORLD_SIZE": str(nnodes * nproc), "RANK": str(rank), "PET_NODE_RANK": str(rank),
                    "PET_NNODES": str(nnodes), "PET_NPROC_PER_NODE": str(nproc),
                    "PET_MASTER_ADDR": rdzv["MASTER_ADDR"], "PET_MASTER_PORT": rdzv["MASTER_PORT"],
                }))
                rank += 1
    elif engine == "trainjob":  # Trainer's torch plugin: PET_* only; the JobSet's Job is Indexed
        [train] = _by_kind(objs, "TrainJob")
        [runtime] = _by_kind(objs, "TrainingRuntime")
        [(_, pod)] = list(pod_specs(runtime))
        trainer = train["spec"]["trainer"]
        for i in range(trainer["numNodes"]):
            out.append((pod, {
                "JOB_COMPLETION_INDEX": str(i), "PET_NODE_RANK": str(i), "PET_NNODES": str(trainer["numNodes"]),
                "PET_NPROC_PER_NODE": str(trainer["numProcPerNode"]),
                "PET_MASTER_ADDR": rdzv["MASTER_ADDR"], "PET_MASTER_PORT": rdzv["MASTER_PORT"],
            }))
    else:  # pragma: no cover - a new engine must say here what its controller injects
        raise AssertionError(f"engine {engine}: add its controller's env to controller_pods")
    return out


def unpack_config_map(objs: list[dict[str, Any]], pod: dict[str, Any], dest: Path) -> None:
    """The code ConfigMap as the kubelet mounts it into ``pod``: each key at its item's path."""
    [cm] = _by_kind(objs, "ConfigMap")
    items = next(v["configMap"]["items"] for v in pod["volumes"] if "configMap" in v)
    for item in items:
        target = dest / item["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        if item["key"] in cm.get("data", {}):
            target.write_text(cm["data"][item["key"]])
        else:
            target.write_bytes(base64.b64decode(cm["binaryData"][item["key"]]))


@pytest.mark.slow
@pytest.mark.parametrize(("pods", "procs"), TOPOLOGIES)
@pytest.mark.parametrize("engine", ["job", "volcano", "pytorchjob", "trainjob"])
def test_rendered_pods_train_the_digits_example(engine: str, pods: int, procs: int, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLW_USER", "alice")
    for var in ("DLW_NAMESPACE", "DLW_WORKSPACE_CONFIG", "JUPYTERHUB_USER"):
        monkeypatch.delenv(var, raising=False)
    spec = core.build_spec(EXAMPLE, name="digits", workers=pods, processes_per_worker=procs, engine=engine,
                           image="img:1", parameters={"epochs": 1})
    prepared = snapshot.prepare(spec, tmp_path / "staging", "alice")
    objs = render_objects(prepared, workspace=WORKSPACE)
    port = _free_port()
    pods_env = controller_pods(engine, objs, port)
    snap = tmp_path / "snapshot"
    unpack_config_map(objs, pods_env[0][0], snap)
    bindir = str(Path(sys.executable).parent)  # python and torchrun, as the image would have them
    procs_run = []
    for i, (pod, injected) in enumerate(pods_env):
        [container] = pod["containers"]
        env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        env.update(injected)
        env.update({
            "PATH": f"{bindir}:{os.environ['PATH']}", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
            "DLW_SNAPSHOT_DIR": str(snap), "DLW_CODE_DIR": str(tmp_path / f"pod{i}" / "code"),
            "DLW_OUTPUT_DIR": str(tmp_path / f"pod{i}" / "output"), "OMP_NUM_THREADS": "1",
            # The pod's own /dlw/output/checkpoints (no shared home): here a folder of this pod, not a path
            # of the machine that every test would share (a later job would resume from an earlier one's).
            "DLW_CHECKPOINT_DIR": str(tmp_path / f"pod{i}" / "output" / "checkpoints"),
        })
        procs_run.append(subprocess.Popen(
            [*container["command"], *container["args"]], env=env, cwd=tmp_path,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    assert len(procs_run) == pods
    outputs = []
    try:
        for proc in procs_run:
            out, _ = proc.communicate(timeout=120)
            outputs.append(out)
    finally:
        for proc in procs_run:
            proc.kill()
    for i, (proc, out) in enumerate(zip(procs_run, outputs, strict=True)):
        assert proc.returncode == 0, f"{engine} pod {i} exited {proc.returncode}:\n{out[-3000:]}"
    every = "".join(outputs)
    world = pods * procs
    # Local ranks print at the same instant and print() writes the text and the newline apart: lines of
    # two ranks may interleave ("rank 3/4 startingrank 2/4 starting"), so no line anchors here.
    started = sorted(int(r) for r in re.findall(rf"rank (\d+)/{world} starting", every))
    assert started == list(range(world)), every[-3000:]  # each rank once, all in one world
    assert "resuming" not in every, every[-3000:]  # a new job starts from scratch
    accuracy = re.search(r"accuracy: (\d\.\d{4})", outputs[0])  # (another rank's text may follow it)
    assert accuracy, outputs[0][-3000:]  # trained to the end: one epoch is no benchmark of accuracy
