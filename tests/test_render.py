"""Rendering a job for each engine: golden manifests, schema validity, the env contract, refusals.

Golden files live in tests/render_golden/; regenerate them after an intended change with
``DLW_UPDATE_GOLDEN=1 python -m pytest tests/test_render.py`` and review the diff.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_schema import validate_objects

from dlw_magic import snapshot
from dlw_magic.backends.base import PreparedJob
from dlw_magic.engines import get, names
from dlw_magic.engines.objects import render_objects, render_yaml
from dlw_magic.engines.policy import check_objects
from dlw_magic.engines.policy import pod_specs as policy_pod_specs
from dlw_magic.errors import DLWError
from dlw_magic.spec import parse_spec
from dlw_magic.workspace import load_workspace
from tests.cluster.crds import SOURCES, module_dir, pinned

GOLDEN = Path(__file__).parent / "render_golden"
WORKSPACE = str(GOLDEN / "workspace.yaml")
ALL_VOLUMES = [{"name": "datasets"}, {"name": "scratch"}, {"name": "home", "mountPath": "/home/alice"},
               {"name": "refdata"}]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder as cwd, so the spec holds relative paths and renders the same everywhere."""
    monkeypatch.setenv("DLW_USER", "alice")
    for var in ("JUPYTERHUB_USER", "DLW_NAMESPACE", "DLW_WORKSPACE_CONFIG", "DLW_IMAGE", "JUPYTER_IMAGE",
                "JUPYTER_IMAGE_SPEC"):
        monkeypatch.delenv(var, raising=False)
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "train.py").write_text("import os\nprint('rank', os.environ['RANK'])\n")
    monkeypatch.chdir(proj)
    return proj


def prepare(project: Path, **fields: Any) -> PreparedJob:
    data = {"name": "golden", "source": {"script": "train.py"}, "image": "registry.example/team/train:1", **fields}
    spec = parse_spec(data)
    dest = project.parent / f"snap-{len(list(project.parent.iterdir()))}"
    return snapshot.prepare(spec, dest, "alice")


def objects(project: Path, engine: str, workspace: str = WORKSPACE, **fields: Any) -> list[dict[str, Any]]:
    """Rendered objects, each checked against the Kubernetes schema or its CRD on the way."""
    objs = render_objects(prepare(project, **fields), engine, workspace=workspace)
    assert validate_objects(objs) == len(objs)
    return objs


def pod_specs(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every pod template, found where each engine says they are."""
    return [pod for obj in objs for _, pod in policy_pod_specs(obj)]


def env_of(pod: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in pod["containers"][0]["env"]}


# -- golden cases: every engine, 1 and 3 workers, GPUs and none, every volume kind -------------------------

ENGINES = names()


def _full(engine: str, workers: int) -> dict[str, Any]:
    """Every option at once, less what the engine refuses (see test_engine_refuses_what_it_cannot_run)."""
    fields: dict[str, Any] = {
        "resources": {"gpus": 2, "gpuType": "NVIDIA-H100-80GB-HBM3", "memory": "64Gi", "cpu": "16", "shm": "16Gi"},
        "volumes": ALL_VOLUMES, "queue": "research", "priority": "dlw-high", "retries": 2, "timeout": "4h",
        "secrets": [{"env": "WANDB_API_KEY", "secret": "wandb", "key": "token"}], "env": {"EPOCHS": "3"},
    }
    if workers > 1 and not get(engine).restarts_all_ranks:
        del fields["retries"]
    if engine == "volcano":
        del fields["timeout"]
    return fields


CASES = {
    f"{engine}-{workers}w-{'gpu' if gpus else 'cpu'}": (engine, {
        "workers": workers, **(_full(engine, workers) if gpus else {})})
    for engine in ENGINES for workers in (1, 3) for gpus in (0, 2)
}
CASES["pytorchjob-2w-mig-torchrun"] = ("pytorchjob", {
    "workers": 2, "processesPerWorker": 4, "resources": {"gpus": 4, "gpuResource": "nvidia.com/mig-1g.10gb"}})


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(project: Path, case: str) -> None:
    engine, fields = CASES[case]
    text = render_yaml(prepare(project, **fields), engine, workspace=WORKSPACE)
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert validate_objects(docs) == len(docs) >= 2
    # Anchors and aliases (&id001 / *id001) are valid YAML but unreadable in a review or a kubectl diff.
    assert not re.search(r"[&*]id\d+", text), f"{case}: rendered YAML has anchors or aliases"
    golden = GOLDEN / f"{case}.yaml"
    if os.environ.get("DLW_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text(), f"{case}: rendered YAML differs from {golden} (see module docstring)"


def test_default_engine_comes_from_the_spec(project: Path) -> None:
    text = render_yaml(prepare(project, engine="volcano"), None, workspace=WORKSPACE)
    assert "apiVersion: batch.volcano.sh/v1alpha1" in text


# -- what the manifests promise ------------------------------------------------------------------------------


def test_every_object_is_labelled_and_in_the_users_namespace(project: Path) -> None:
    for engine in ENGINES:
        for obj in objects(project, engine, workers=3):
            meta = obj["metadata"]
            assert meta["namespace"] == "dlw-alice"
            assert {"dlw.dev/user", "dlw.dev/job", "dlw.dev/job-id"} <= set(meta["labels"])
            assert meta["labels"]["dlw.dev/job"] == "golden"


def test_job_engine_multi_worker_rendezvous(project: Path) -> None:
    cm, job, svc = objects(project, "job", workers=3, timeout="1h")
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 3, 3)
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"]) == (0, 3600)
    assert spec["ttlSecondsAfterFinished"] > 0 and spec["podFailurePolicy"]["rules"]
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["subdomain"] == svc["metadata"]["name"] == "golden"
    env = env_of(pod)
    assert (env["MASTER_ADDR"], env["MASTER_PORT"], env["WORLD_SIZE"]) == ("golden-0.golden", "29500", "3")
    assert env["DLW_NODE_RANK_FROM"] == "JOB_COMPLETION_INDEX"
    assert svc["spec"]["selector"] == {"dlw.dev/job-id": job["metadata"]["labels"]["dlw.dev/job-id"]}


def test_job_engine_single_worker_is_a_plain_job(project: Path) -> None:
    objs = objects(project, "job")
    assert [o["kind"] for o in objs] == ["ConfigMap", "Job"]
    assert "completionMode" not in objs[1]["spec"]
    assert env_of(objs[1]["spec"]["template"]["spec"])["MASTER_ADDR"] == "localhost"


def test_volcano_gang_tasks_and_policies(project: Path) -> None:
    vc = objects(project, "volcano", workers=3, queue="research", retries=2)[-1]["spec"]
    assert (vc["schedulerName"], vc["minAvailable"], vc["queue"], vc["maxRetry"]) == ("volcano", 3, "research", 2)
    assert vc["priorityClassName"] == "dlw-normal"  # the workspace default class
    assert [(t["name"], t["replicas"]) for t in vc["tasks"]] == [("master", 1), ("worker", 2)]
    assert {"event": "PodEvicted", "action": "RestartJob"} in vc["policies"]
    assert {"event": "PodFailed", "action": "RestartJob"} in vc["policies"]
    assert vc["tasks"][0]["policies"] == [{"event": "TaskCompleted", "action": "CompleteJob"}]
    assert set(vc["plugins"]) == {"svc", "env"}
    master, worker = (env_of(t["template"]["spec"]) for t in vc["tasks"])
    assert master["MASTER_ADDR"] == worker["MASTER_ADDR"] == "golden-master-0.golden"
    assert (master["DLW_NODE_RANK_OFFSET"], worker["DLW_NODE_RANK_OFFSET"]) == ("0", "1")


def test_pytorchjob_replicas_and_run_policy(project: Path) -> None:
    pt = objects(project, "pytorchjob", workers=3, processesPerWorker=2, queue="research", timeout=600)[-1]["spec"]
    assert pt["nprocPerNode"] == "2"
    assert {k: v["replicas"] for k, v in pt["pytorchReplicaSpecs"].items()} == {"Master": 1, "Worker": 2}
    assert {v["restartPolicy"] for v in pt["pytorchReplicaSpecs"].values()} == {"Never"}
    rp = pt["runPolicy"]
    assert (rp["cleanPodPolicy"], rp["backoffLimit"], rp["activeDeadlineSeconds"]) == ("Running", 0, 600)
    assert rp["schedulingPolicy"] == {"queue": "research", "minAvailable": 3, "priorityClass": "dlw-normal"}
    container = pt["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]
    assert container["name"] == "pytorch" and container["ports"][0]["name"] == "pytorchjob-port"
    assert "MASTER_ADDR" not in env_of(pt["pytorchReplicaSpecs"]["Master"]["template"]["spec"])  # operator sets it


def test_gpus_limits_node_selector_and_toleration(project: Path) -> None:
    pod = pod_specs(objects(project, "job", resources={"gpus": 2, "gpuType": "NVIDIA-A100-SXM4-80GB"}))[0]
    # Requested too: Volcano's PodGroup (minResources) counts a template's requests only.
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert pod["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] == 2
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert "NVIDIA_VISIBLE_DEVICES" not in env_of(pod)
    assert env_of(pod)["DLW_GPU_SAMPLE_SECONDS"] == "15"  # the bootstrap reports this pod's GPU use
    mig = pod_specs(objects(project, "job", resources={"gpus": 1, "gpuResource": "nvidia.com/mig-3g.40gb"}))[0]
    assert mig["containers"][0]["resources"] == {"limits": {"nvidia.com/mig-3g.40gb": 1},
                                                 "requests": {"nvidia.com/mig-3g.40gb": 1}}


def test_no_gpu_pod_cannot_see_the_nodes_gpus(project: Path) -> None:
    for engine in ENGINES:
        for pod in pod_specs(objects(project, engine, workers=3)):
            assert env_of(pod)["NVIDIA_VISIBLE_DEVICES"] == "void"
            assert "DLW_GPU_SAMPLE_SECONDS" not in env_of(pod)  # no GPU, no sampler
            assert "nvidia.com/gpu" not in str(pod["containers"][0]["resources"])


def test_shm_is_a_memory_emptydir(project: Path) -> None:
    pod = pod_specs(objects(project, "job", resources={"shm": "8Gi"}))[0]
    shm = next(v for v in pod["volumes"] if v["name"] == "dlw-shm")
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "8Gi"}
    assert {"name": "dlw-shm", "mountPath": "/dev/shm"} in pod["containers"][0]["volumeMounts"]


def test_catalogue_volumes_render_per_kind(project: Path) -> None:
    pod = pod_specs(objects(project, "job", volumes=ALL_VOLUMES))[0]
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols["dlw-datasets"]["persistentVolumeClaim"] == {"claimName": "dlw-blob-datasets", "readOnly": True}
    # The per-user root, the user's own folder by subPath (the kubelet keeps a subPath inside its volume).
    assert vols["dlw-scratch"]["hostPath"]["path"] == "/mnt/scratch/dlw"
    assert vols["dlw-home"]["persistentVolumeClaim"]["claimName"] == "claim-alice"
    assert vols["dlw-refdata"]["persistentVolumeClaim"]["claimName"] == "refdata"
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["/data/datasets"]["readOnly"] is True and "/home/alice" in mounts
    assert mounts["/scratch"]["subPath"] == "alice"


def test_secrets_only_by_reference(project: Path) -> None:
    pod = pod_specs(objects(project, "job", secrets=[{"env": "HF_TOKEN", "secret": "hf", "key": "token"}]))[0]
    assert env_of(pod)["HF_TOKEN"] == {"secretKeyRef": {"name": "hf", "key": "token"}}


def test_kueue_label_when_the_workspace_queues_with_kueue(project: Path, tmp_path: Path) -> None:
    data = yaml.safe_load(Path(WORKSPACE).read_text())
    data["queueSystem"] = "kueue"
    ws = tmp_path / "kueue.yaml"
    ws.write_text(yaml.safe_dump(data))
    objs = render_objects(prepare(project, queue="research"), "job", workspace=str(ws))
    assert validate_objects(objs) == len(objs)
    job = next(o for o in objs if o["kind"] == "Job")
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "research"
    assert "schedulerName" not in job["spec"]["template"]["spec"]


def test_workspace_from_environment(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLW_WORKSPACE_CONFIG", WORKSPACE)
    objs = render_objects(prepare(project, volumes=[{"name": "refdata"}]), "job")
    assert validate_objects(objs) == len(objs)
    assert "refdata" in str(pod_specs(objs)[0]["volumes"])


def test_cli_render_writes_multi_document_yaml(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.yaml"
    proc = subprocess.run(
        [sys.executable, "-m", "dlw_magic.cli", "render", "train.py", "--name", "clirender", "--engine", "volcano",
         "--workers", "3", "--image", "img:1", "--workspace", WORKSPACE, "-o", str(out)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(out.read_text()) if d]
    assert [d["kind"] for d in docs] == ["ConfigMap", "Job"] and validate_objects(docs) == 2


# -- code: ConfigMap when small, home volume when large -----------------------------------------------------


def test_large_snapshot_needs_a_shared_home(project: Path, tmp_path: Path) -> None:
    (project / "weights.bin").write_bytes(os.urandom(800 * 1024))
    with pytest.raises(DLWError, match="over the 900 KiB a ConfigMap holds.*use build: true"):
        objects(project, "job", source={"script": "train.py", "files": ["weights.bin"]})
    data = yaml.safe_load(Path(WORKSPACE).read_text())
    data["volumes"][0]["accessModes"] = ["ReadWriteMany"]
    ws = tmp_path / "rwx.yaml"
    ws.write_text(yaml.safe_dump(data))
    prepared = prepare(project, source={"script": "train.py", "files": ["weights.bin"]})
    objs = render_objects(prepared, "job", workspace=str(ws))
    assert validate_objects(objs) == len(objs)
    assert [o["kind"] for o in objs] == ["Job"]  # no ConfigMap
    mounts = {m["mountPath"]: m for m in pod_specs(objs)[0]["containers"][0]["volumeMounts"]}
    assert mounts["/dlw/snapshot"]["subPath"] == ".dlw/jobs/golden/code"
    assert mounts["/dlw/output"]["subPath"] == ".dlw/jobs/golden/output"  # outputs outlive the pod


def rwx_home(data: dict[str, Any]) -> None:
    """A ReadWriteMany home: where a preemptible job's checkpoints outlive its pods (DLW refuses it otherwise)."""
    data["volumes"][0]["accessModes"] = ["ReadWriteMany"]


def _workspace(tmp_path: Path, *changes: Any) -> str:
    data = yaml.safe_load(Path(WORKSPACE).read_text())
    for change in changes:
        change(data)
    ws = tmp_path / "workspace-changed.yaml"
    ws.write_text(yaml.safe_dump(data))
    return str(ws)


@pytest.mark.parametrize("engine", ENGINES)
def test_every_attempt_finds_its_checkpoints_on_the_shared_home(project: Path, tmp_path: Path, engine: str) -> None:
    rwx = _workspace(tmp_path, lambda d: d["volumes"][0].update(accessModes=["ReadWriteMany"]))
    objs = render_objects(prepare(project, workers=3), engine, workspace=rwx)
    assert validate_objects(objs) == len(objs)
    for pod in pod_specs(objs):
        assert env_of(pod)["DLW_CHECKPOINT_DIR"] == "/dlw/checkpoints"
        mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == "/dlw/checkpoints")
        assert mount == {"name": "dlw-home", "mountPath": "/dlw/checkpoints",
                         "subPath": ".dlw/jobs/golden/checkpoints"}  # the same folder for every pod and attempt
    # A ReadWriteOnce home cannot be shared with the notebook: the checkpoints go with the pod.
    pod = pod_specs(objects(project, engine))[0]
    assert env_of(pod)["DLW_CHECKPOINT_DIR"] == "/dlw/output/checkpoints"
    assert "/dlw/checkpoints" not in str(pod["containers"][0]["volumeMounts"])


def test_binary_files_travel_as_binary_data(project: Path) -> None:
    (project / "vocab.bin").write_bytes(bytes(range(256)))
    cm = objects(project, "job", source={"script": "train.py", "files": ["vocab.bin"]})[0]
    assert any(k.endswith("vocab.bin") for k in cm["binaryData"])
    assert cm["metadata"]["name"] == "golden-code"


# -- the bootstrap every pod runs first ---------------------------------------------------------------------


def _bootstrap(tmp_path: Path, env: dict[str, str], argv: list[str]) -> subprocess.CompletedProcess[str]:
    from dlw_magic.render.pod import BOOTSTRAP

    snap = tmp_path / "snapshot"
    (snap / "pkg").mkdir(parents=True, exist_ok=True)
    (snap / "pkg" / "data.txt").write_text("shipped")
    base = {"PATH": os.environ["PATH"], "DLW_SNAPSHOT_DIR": str(snap), "DLW_CODE_DIR": str(tmp_path / "code"),
            "DLW_OUTPUT_DIR": str(tmp_path / "out"), "DLW_WORKERS": "3", "DLW_PROCS_PER_WORKER": "1"}
    return subprocess.run([sys.executable, "-c", BOOTSTRAP, *argv], env={**base, **env},
                          capture_output=True, text=True, timeout=30)


def test_bootstrap_sets_the_rank_and_runs_in_a_writable_copy(tmp_path: Path) -> None:
    probe = ("import os; print(os.environ['RANK'], os.environ['WORLD_SIZE'], os.environ['LOCAL_RANK'], "
             "open('pkg/data.txt').read(), os.getcwd()); open('written', 'w').write('ok')")
    env = {"DLW_NODE_RANK_FROM": "PET_NODE_RANK,VC_TASK_INDEX", "VC_TASK_INDEX": "1", "DLW_NODE_RANK_OFFSET": "1"}
    proc = _bootstrap(tmp_path, env, [sys.executable, "-c", probe])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["2", "3", "0", "shipped", str(tmp_path / "code")]
    assert (tmp_path / "out").is_dir() and (tmp_path / "code" / "written").exists()


def test_bootstrap_hands_several_processes_to_torchrun(tmp_path: Path) -> None:
    fake = tmp_path / "bin" / "torchrun"
    fake.parent.mkdir()
    fake.write_text(f"#!{sys.executable}\nimport sys; print(' '.join(sys.argv[1:]))\n")
    fake.chmod(0o755)
    env = {"PATH": f"{fake.parent}:{os.environ['PATH']}", "DLW_PROCS_PER_WORKER": "4", "DLW_WORKERS": "2",
           "DLW_NODE_RANK_FROM": "JOB_COMPLETION_INDEX", "JOB_COMPLETION_INDEX": "1",
           "MASTER_ADDR": "golden-0.golden", "MASTER_PORT": "29500"}
    proc = _bootstrap(tmp_path, env, ["python", "-m", "dlw_magic.launch", "main.py"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["--nnodes=2", "--nproc-per-node=4", "--node-rank=1",
                                   "--master-addr=golden-0.golden", "--master-port=29500",
                                   "-m", "dlw_magic.launch", "main.py"]


def test_bootstrap_reports_gpu_use_until_the_entrypoint_exits(tmp_path: Path) -> None:
    """The sampler reads an NVML stand-in here (DLW_NVML_STANDIN): no GPU in the test environment."""
    from dlw_magic.render.pod import BOOTSTRAP

    (tmp_path / "code").mkdir()
    standin = tmp_path / "nvml.json"
    standin.write_text("[[40, 1000], [80, 3000]]")  # two GPUs: [utilization %, used MiB]
    go = tmp_path / "go"
    entry = (f"import os, time\nend = time.time() + 30\nwhile not os.path.exists({str(go)!r}) and time.time() < end:"
             "\n    time.sleep(0.05)\nprint('trained', flush=True)")
    env = {"PATH": os.environ["PATH"], "DLW_CODE_DIR": str(tmp_path / "code"), "DLW_OUTPUT_DIR": str(tmp_path / "out"),
           "DLW_CHECKPOINT_DIR": str(tmp_path / "ckpt"), "DLW_WORKERS": "1", "DLW_PROCS_PER_WORKER": "1",
           "DLW_GPU_SAMPLE_SECONDS": "0.1", "DLW_NVML_STANDIN": str(standin)}
    proc = subprocess.Popen([sys.executable, "-c", BOOTSTRAP, sys.executable, "-c", entry], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()  # the sampler reports while the entrypoint runs
        go.touch()
        rest = proc.stdout.read()  # end of file: the entrypoint and the sampler have both closed stdout
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
    finally:
        proc.kill()
    tag = "#dlw-metrics "  # dlw_magic.metrics.TAG: read back from the pod's log by parse_log_line
    assert first.startswith(tag), first
    step, when, values = json.loads(first[len(tag):])
    assert step == 0 and when > 0 and values == {"gpu.util": 60.0, "gpu.mem_mib": 4000}
    lines = rest.splitlines()
    assert "trained" in lines
    assert all(json.loads(x[len(tag):])[2] == values for x in lines if x.startswith(tag))
    kept = (tmp_path / "out" / "metrics" / "gpu-rank-0.jsonl").read_text().splitlines()  # a shared home reads these
    assert kept and all(json.loads(x)[2] == values for x in kept)
    assert "import dlw_magic" not in BOOTSTRAP and "from dlw_magic" not in BOOTSTRAP  # the sampler ships inline
    assert (tmp_path / "ckpt").is_dir()  # the checkpoint folder exists before the job starts


# -- preemption -------------------------------------------------------------------------------------------


def test_preemptible_jobs_run_at_the_workspaces_preemptible_class(project: Path, tmp_path: Path) -> None:
    for engine in ENGINES:
        objs = objects(project, engine, _workspace(tmp_path, rwx_home), preemptible=True)
        assert {pod["priorityClassName"] for pod in pod_specs(objs)} == {"dlw-low"}
    # Saying the same class twice is fine; asking for another is a contradiction.
    rwx = _workspace(tmp_path, rwx_home)
    assert pod_specs(objects(project, "job", rwx, preemptible=True, priority=100))[0]["priorityClassName"] == "dlw-low"
    with pytest.raises(DLWError, match="priority: a preemptible job runs at dlw-low; drop priority or preemptible"):
        objects(project, "job", rwx, preemptible=True, priority="dlw-high")
    none = _workspace(tmp_path, lambda d: d["priorityClasses"][2].pop("preemptible"))
    with pytest.raises(DLWError, match=r"preemptible: the workspace has no preemptible priority class"):
        render_objects(prepare(project, preemptible=True), "job", workspace=none)


def test_two_preemptible_classes_are_refused(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, lambda d: d["priorityClasses"][1].update(preemptible=True))
    with pytest.raises(DLWError, match="more than one priority class has preemptible: true"):
        load_workspace(ws)


def test_an_evicted_rank_restarts_every_rank(project: Path, tmp_path: Path) -> None:
    rwx = _workspace(tmp_path, rwx_home)
    vc = objects(project, "volcano", rwx, workers=3, preemptible=True)[-1]["spec"]
    assert vc["policies"][0] == {"event": "PodEvicted", "action": "RestartJob"}
    assert vc["maxRetry"] == 10  # each eviction restart counts; no retries: only evictions restart it
    runtime = objects(project, "trainjob", rwx, workers=3, preemptible=True)[-1]
    jobset = runtime["spec"]["template"]["spec"]
    evicted, missing = jobset["failurePolicy"]["rules"]
    assert evicted["action"] == "RestartJobSetAndIgnoreMaxRestarts" and missing["action"] == "FailJobSet"
    # JobSet's webhook refuses a rule name outside its pattern (read from the pinned module): Trainer then
    # never makes the JobSet and the TrainJob waits for ever.
    source = (module_dir(pinned("jobset", SOURCES["jobset"][0])) / "pkg/webhooks/jobset_webhook.go").read_text()
    name_fmt = re.search(r'ruleNameFmt\s*=\s*"(.+?)"', source)
    assert name_fmt, "JobSet's failure policy rule name pattern not found"
    assert [r["name"] for r in jobset["failurePolicy"]["rules"] if not re.fullmatch(name_fmt.group(1), r["name"])] == []
    # The JobSet tells an eviction from a missing command by the Job's failure message, which names the
    # pod failure policy rule that matched: rule 0 is the DisruptionTarget one.
    rules = jobset["replicatedJobs"][0]["template"]["spec"]["podFailurePolicy"]["rules"]
    assert rules[0] == {"action": "FailJob", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    message = "Pod dlw-alice/golden-node-0-1-x7 has condition DisruptionTarget matching FailJob rule at index 0"
    assert [re.search(p, message) is not None for p in evicted["onJobFailureMessagePatterns"]] == [True]
    code = ("Container node for pod dlw-alice/golden-node-0-1-x7 failed with exit code 127 matching FailJob rule "
            "at index 1")
    assert re.search(evicted["onJobFailureMessagePatterns"][0], code) is None
    job = objects(project, "job", rwx, preemptible=True)[-1]["spec"]  # one pod is every rank: it comes back alone
    assert job["podFailurePolicy"]["rules"][0]["action"] == "Ignore"
    pt = objects(project, "pytorchjob", rwx, preemptible=True)[-1]["spec"]
    assert pt["pytorchReplicaSpecs"]["Master"]["restartPolicy"] == "ExitCode"  # a signal exit comes back


@pytest.mark.parametrize("engine", ["job", "pytorchjob"])
def test_preemptible_ranks_that_cannot_rejoin_need_kueue(project: Path, tmp_path: Path, engine: str) -> None:
    with pytest.raises(DLWError, match=rf"preemptible: the {engine} engine restarts an evicted rank alone.*"
                                       "--engine volcano or trainjob, or a Kueue queue"):
        objects(project, engine, _workspace(tmp_path, rwx_home), workers=3, preemptible=True)

    def kueue(d: dict[str, Any]) -> None:
        d["queueSystem"] = "kueue"
        d["priorityClasses"][2]["workloadPriorityClass"] = "low"

    # Kueue preempts a workload by suspending the whole job and resumes it whole: every rank restarts.
    objs = render_objects(prepare(project, workers=3, preemptible=True, queue="research"), engine,
                          workspace=_workspace(tmp_path, kueue, rwx_home))
    assert validate_objects(objs) == len(objs)
    labels = objs[1]["metadata"]["labels"]
    assert labels["kueue.x-k8s.io/queue-name"] == "research"
    assert labels["kueue.x-k8s.io/priority-class"] == "low"
    assert {pod["priorityClassName"] for pod in pod_specs(objs)} == {"dlw-low"}


def test_kueue_finds_its_labels_on_the_trainjob(project: Path, tmp_path: Path) -> None:
    def kueue(d: dict[str, Any]) -> None:
        d["queueSystem"] = "kueue"
        d["priorityClasses"][2]["workloadPriorityClass"] = "low"

    ws = _workspace(tmp_path, kueue, rwx_home)
    cm, train, runtime = render_objects(prepare(project, workers=3, preemptible=True, queue="research"), "trainjob",
                                        workspace=ws)
    assert validate_objects([cm, train, runtime]) == 3
    assert train["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "research"  # Kueue watches the TrainJob
    assert train["metadata"]["labels"]["kueue.x-k8s.io/priority-class"] == "low"
    # Without a WorkloadPriorityClass Kueue takes the pods' class: no label that names a missing object.
    plain = render_objects(prepare(project, queue="research"), "trainjob", workspace=ws)[1]
    assert "kueue.x-k8s.io/priority-class" not in plain["metadata"]["labels"]


# -- refusals: one clear line each --------------------------------------------------------------------------


def test_unknown_volume_is_refused(project: Path) -> None:
    with pytest.raises(DLWError, match="volume 'imagenet' is not in the admin's catalogue"):
        objects(project, "job", volumes=[{"name": "imagenet"}])


def test_read_write_on_a_read_only_volume_is_refused(project: Path) -> None:
    with pytest.raises(DLWError, match="read-only"):
        objects(project, "job", volumes=[{"name": "datasets", "readOnly": False}])


def test_unlisted_hostpath_is_refused(project: Path) -> None:
    ws = load_workspace(WORKSPACE)
    ws.volume("scratch").path = "/var/lib/kubelet"  # as if the catalogue's own check were bypassed
    with pytest.raises(DLWError, match="hostPath /var/lib/kubelet refused: not under the admin's "
                                       r"hostPathAllowlist \(/mnt/scratch\)"):
        render_objects(prepare(project, volumes=[{"name": "scratch"}]), "job", workspace=ws)


def test_another_namespace_is_refused(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DLWError, match="namespace 'dlw-bob' refused: alice's jobs run in 'dlw-alice'"):
        render_objects(prepare(project), "job", workspace=WORKSPACE, namespace="dlw-bob")
    monkeypatch.setenv("DLW_NAMESPACE", "kube-system")
    with pytest.raises(DLWError, match="namespace 'kube-system' refused"):
        render_objects(prepare(project), "job", workspace=WORKSPACE)


def test_contract_env_cannot_be_overridden(project: Path) -> None:
    with pytest.raises(DLWError, match="env.RANK: set by DLW"):
        objects(project, "job", env={"RANK": "3"})


def test_unknown_priority_queue_and_engine_are_refused(project: Path) -> None:
    with pytest.raises(DLWError, match=r"priority: 'urgent' is not a priority class.*dlw-high \(10000\)"):
        objects(project, "job", priority="urgent")
    with pytest.raises(DLWError, match="priority: 5 matches no priority class value"):
        objects(project, "job", priority=5)
    assert pod_specs(objects(project, "job", priority=10000))[0]["priorityClassName"] == "dlw-high"
    with pytest.raises(DLWError, match="queue 'gold' is not defined by the admin"):
        objects(project, "volcano", queue="gold")
    with pytest.raises(DLWError, match="engine 'mpijob' is unknown"):
        render_objects(prepare(project), "mpijob", workspace=WORKSPACE)


@pytest.mark.parametrize(("change", "message"), [
    (lambda pod: pod["containers"][0]["securityContext"].update(privileged=True), "privileged: refused"),
    (lambda pod: pod.update(hostNetwork=True), "hostNetwork: refused"),
    (lambda pod: pod.update(hostPID=True), "hostPID: refused"),
    (lambda pod: pod["volumes"].append({"name": "s", "secret": {"secretName": "x"}}), "secret volumes are refused"),
    (lambda pod: pod["containers"][0].setdefault("envFrom", []).append({"secretRef": {"name": "x"}}),
     "envFrom.secretRef: refused"),
    (lambda pod: pod["containers"][0]["securityContext"]["capabilities"].update(add=["SYS_ADMIN"]),
     "capabilities.add: refused"),
    (lambda pod: pod["volumes"].append({"name": "h", "hostPath": {"path": "/mnt/scratch/../../etc"}}),
     "hostPath /mnt/scratch/../../etc refused"),
])
def test_policy_refuses_what_no_job_may_do(project: Path, change: Any, message: str) -> None:
    for engine in ENGINES:
        objs = copy.deepcopy(objects(project, engine, workers=3))
        for pod in pod_specs(objs):
            change(pod)
        with pytest.raises(DLWError, match=message):
            check_objects(objs, "dlw-alice", ["/mnt/scratch"])


def test_policy_refuses_objects_outside_the_namespace(project: Path) -> None:
    objs = objects(project, "job")
    objs[0]["metadata"]["namespace"] = "default"
    with pytest.raises(DLWError, match="namespace 'default' refused"):
        check_objects(objs, "dlw-alice", [])


# -- what each engine's controller accepts, refused up front in one line -------------------------------------


@pytest.mark.parametrize("engine", ["volcano", "pytorchjob", "trainjob"])
def test_names_must_start_with_a_letter_where_a_service_is_made_from_them(project: Path, engine: str) -> None:
    with pytest.raises(DLWError, match=rf"job 01-mnist: name: the {engine} engine needs .*DNS-1035.*nb-01-mnist"):
        objects(project, engine, name="01-mnist")


def test_job_engine_takes_a_digit_first_name_with_a_lettered_service(project: Path) -> None:
    cm, job, svc = objects(project, "job", name="01-mnist", workers=2)
    assert job["metadata"]["name"] == "01-mnist" and svc["metadata"]["name"] == "dlw-01-mnist"
    assert job["spec"]["template"]["spec"]["subdomain"] == "dlw-01-mnist"


def test_generated_names_suit_every_engine() -> None:
    from dlw_magic.core import default_name

    name = default_name("notebooks/01_mnist.ipynb")
    assert name.startswith("nb-01-mnist-") and name[0].isalpha()
    assert default_name("digits_ddp.ipynb").startswith("digits-ddp-")
    for engine in ENGINES:
        get(engine).check_name(name)  # no DLWError


@pytest.mark.parametrize("engine", ["job", "pytorchjob"])
def test_retries_of_several_workers_need_an_engine_that_restarts_all_ranks(project: Path, engine: str) -> None:
    with pytest.raises(DLWError, match=rf"retries: the {engine} engine restarts a failed rank alone.*"
                                       "--engine volcano or trainjob"):
        objects(project, engine, workers=2, retries=1)
    single = objects(project, engine, retries=3)[-1]["spec"]
    assert single.get("backoffLimit", single.get("runPolicy", {}).get("backoffLimit")) == 3


def test_pytorchjob_retries_by_exit_code(project: Path) -> None:
    pt = objects(project, "pytorchjob", retries=2)[-1]["spec"]
    assert pt["pytorchReplicaSpecs"]["Master"]["restartPolicy"] == "ExitCode"
    assert pt["runPolicy"]["backoffLimit"] == 2


def test_volcano_refuses_a_timeout_that_each_restart_would_renew(project: Path) -> None:
    with pytest.raises(DLWError, match="timeout: a Volcano Job has no job-wide deadline"):
        objects(project, "volcano", workers=2, retries=1, timeout="1h")
    vc = objects(project, "volcano", workers=2, timeout="1h")[-1]["spec"]
    assert {"event": "PodFailed", "action": "TerminateJob"} in vc["policies"]
    assert {t["template"]["spec"]["activeDeadlineSeconds"] for t in vc["tasks"]} == {3600}


def test_a_kueue_queue_is_not_a_volcano_queue(project: Path, tmp_path: Path) -> None:
    """Kueue does not queue Volcano Jobs: a volcano job under queueSystem kueue would run past every queue."""
    data = yaml.safe_load(Path(WORKSPACE).read_text())
    data["queueSystem"] = "kueue"
    ws = tmp_path / "kueue.yaml"
    ws.write_text(yaml.safe_dump(data))
    with pytest.raises(DLWError, match="engine: volcano jobs are not queued by Kueue"):
        render_objects(prepare(project, queue="research"), "volcano", workspace=str(ws))


def test_trainjob_runs_on_its_own_runtime_and_restarts_all_ranks(project: Path) -> None:
    cm, train, runtime = objects(project, "trainjob", workers=3, processesPerWorker=2, retries=2, timeout="2h")
    spec = train["spec"]
    assert spec["runtimeRef"] == {"apiGroup": "trainer.kubeflow.org", "kind": "TrainingRuntime", "name": "golden"}
    assert spec["trainer"] == {"numNodes": 3, "numProcPerNode": 2}
    assert spec["activeDeadlineSeconds"] == 7200  # one deadline for the whole job
    assert runtime["metadata"]["name"] == "golden" and runtime["spec"]["mlPolicy"]["torch"] == {}
    jobset = runtime["spec"]["template"]["spec"]
    assert jobset["failurePolicy"]["maxRestarts"] == 2  # JobSet recreates every rank together
    [node] = jobset["replicatedJobs"]
    assert node["name"] == "node" and node["template"]["spec"]["backoffLimit"] == 0
    pod = node["template"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["name"] == "node" and pod["restartPolicy"] == "Never"
    env = env_of(pod)
    assert env["DLW_NODE_RANK_FROM"] == "PET_NODE_RANK" and "MASTER_ADDR" not in env  # Trainer injects PET_*


def test_engines_from_other_packages_register_by_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            project: Path) -> None:
    import importlib

    from dlw_magic import engine_names, engines

    pkg = tmp_path / "site"
    (pkg / "myengine.py").parent.mkdir()
    (pkg / "myengine.py").write_text(
        "from dlw_magic.engines.job import JobEngine\n"
        "class Mine(JobEngine):\n    name = 'mine'\nENGINE = Mine()\n")
    dist = pkg / "myengine-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myengine\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[dlw_magic.engines]\nmine = myengine:ENGINE\n")
    monkeypatch.syspath_prepend(str(pkg))
    importlib.invalidate_caches()
    engines._registry.cache_clear()
    engine_names.names.cache_clear()  # the spec's list of names, read without loading the engines
    try:
        assert engines.names()[-1] == "mine"
        job = objects(project, "mine")[-1]
        assert job["metadata"]["labels"]["dlw.dev/engine"] == "mine"
        assert parse_spec({"name": "x", "source": {"script": "train.py"}, "engine": "mine"}).engine == "mine"
    finally:
        monkeypatch.undo()
        engines._registry.cache_clear()
        engine_names.names.cache_clear()
    with pytest.raises(DLWError, match="engine: 'mine' is not an engine"):
        parse_spec({"name": "x", "source": {"script": "train.py"}, "engine": "mine"})
