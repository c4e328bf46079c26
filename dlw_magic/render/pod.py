"""The pod template every engine shares: container, env contract, GPUs, volumes, code, security.

Engines differ only in how they wrap this template and in where a pod learns its rank, so they pass
``rank_from`` (the env var their controller fills in with the pod's index) and ``rank_offset``.

Placement follows the admin's profiles: a job gets the node selector and tolerations of the first
profile of its kind (GPU or CPU, same GPU type and resource), so jobs land where the admin's notebooks
may; a GPU job always tolerates the ``nvidia.com/gpu`` taint. Multi-process and GPU pods get a
memory-backed ``/dev/shm`` (the container runtime's 64 MiB breaks DataLoader workers and NCCL).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import DLWError
from ..workspace import POD_GID, POD_UID
from .code import CODE_DIR, HOME_JOBS_DIR, SNAPSHOT_MOUNT
from .context import MASTER_PORT, RenderContext
from .volumes import catalogue_volumes, home_shared, home_volume

OUTPUT_DIR = "/dlw/output"
# Every attempt of a job sees the same checkpoint folder: the user's home (.dlw/jobs/<name>/checkpoints)
# when a job pod can mount it, else beside the outputs in the pod's own emptyDir (lost with the pod).
CHECKPOINT_DIR = "/dlw/checkpoints"
GPU_SAMPLE_SECONDS = 15  # how often the bootstrap's sampler reports each rank's GPU use
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
# Set by DLW (or by torchrun / the engine's controller): a spec may not override them.
CONTRACT_ENV = frozenset({
    "MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "NODE_RANK",
    "DLW_JOB_NAME", "DLW_JOB_ID", "DLW_OUTPUT_DIR", "DLW_WORKERS", "DLW_PROCS_PER_WORKER",
    "DLW_NODE_RANK_FROM", "DLW_NODE_RANK_OFFSET", "DLW_SNAPSHOT_DIR", "DLW_CODE_DIR", "DLW_CHECKPOINT_DIR",
    "DLW_GPU_SAMPLE_SECONDS", "DLW_METRICS_STDOUT",
    "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES",
})

# The pod's first step (see bootstrap.py), shipped inline so it needs nothing from the image but Python:
# its import of the GPU sampler is replaced by the sampler's source.
_SAMPLER_IMPORT = "from dlw_magic.gpu_sampler import "
# Without its docstring: every pod's command carries it.
_SAMPLER_SOURCE = (Path(__file__).parents[1] / "gpu_sampler.py").read_text(encoding="utf-8").split('"""', 2)[2]


def _inline_sampler(text: str) -> str:
    lines = text.splitlines(keepends=True)
    (at,) = [i for i, line in enumerate(lines) if line.startswith(_SAMPLER_IMPORT)]
    return "".join([*lines[:at], _SAMPLER_SOURCE, *lines[at + 1:]])


BOOTSTRAP = _inline_sampler((Path(__file__).with_name("bootstrap.py")).read_text(encoding="utf-8"))


def _env(ctx: RenderContext, rank_from: str, rank_offset: int, master_addr: str | None) -> list[dict[str, Any]]:
    spec = ctx.spec
    env: list[dict[str, Any]] = []
    if master_addr is not None:  # None: the engine's controller sets the rendezvous variables itself
        env += [
            {"name": "MASTER_ADDR", "value": master_addr},
            {"name": "MASTER_PORT", "value": str(MASTER_PORT)},
            {"name": "WORLD_SIZE", "value": str(spec.world_size)},
        ]
    env += [
        {"name": "DLW_JOB_NAME", "value": spec.name},
        {"name": "DLW_JOB_ID", "value": ctx.job_id},
        {"name": "DLW_OUTPUT_DIR", "value": OUTPUT_DIR},
        {"name": "DLW_WORKERS", "value": str(spec.workers)},
        {"name": "DLW_PROCS_PER_WORKER", "value": str(spec.processes_per_worker)},
        {"name": "DLW_NODE_RANK_FROM", "value": rank_from},
        {"name": "DLW_NODE_RANK_OFFSET", "value": str(rank_offset)},
        {"name": "DLW_SNAPSHOT_DIR", "value": SNAPSHOT_MOUNT},
        {"name": "DLW_CODE_DIR", "value": CODE_DIR},
        {"name": "DLW_CHECKPOINT_DIR", "value": CHECKPOINT_DIR if home_shared(ctx) else OUTPUT_DIR + "/checkpoints"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},  # logs reach `dlw logs` as they are printed
        {"name": "DLW_METRICS_STDOUT", "value": "1"},  # on Kubernetes, metrics travel as tagged log lines
    ]
    if spec.resources.gpus == 0:
        # The NVIDIA runtime would otherwise expose every GPU of the node to a pod that asked for none.
        env.append({"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"})
    else:  # the bootstrap samples this pod's GPUs (NVML) into the metrics channel
        env.append({"name": "DLW_GPU_SAMPLE_SECONDS", "value": str(GPU_SAMPLE_SECONDS)})
    for key, value in sorted(spec.env.items()):
        if key in CONTRACT_ENV:
            raise DLWError(f"job {spec.name}: env.{key}: set by DLW for every job, remove it from the spec")
        env.append({"name": key, "value": value})
    for i, ref in enumerate(spec.secrets):
        if ref.env in CONTRACT_ENV or ref.env in spec.env:
            raise DLWError(f"job {spec.name}: secrets[{i}].env: {ref.env} is already set")
        env.append({"name": ref.env, "valueFrom": {"secretKeyRef": {"name": ref.secret, "key": ref.key}}})
    return env


def _resources(ctx: RenderContext) -> dict[str, Any]:
    res = ctx.spec.resources
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    if res.cpu:
        requests["cpu"] = res.cpu  # no CPU limit: throttling slows data loading for no one's benefit
    if res.memory:
        requests["memory"] = limits["memory"] = res.memory
    if res.gpus:
        # In requests too (equal, as Kubernetes requires): a gang scheduler's PodGroup counts the template's
        # requests only (Volcano's job controller, the training-operator); the API server defaults a request
        # from the limit on the Pod, never in a job's template, so the gang's GPUs went uncounted.
        requests[res.gpu_resource] = limits[res.gpu_resource] = res.gpus
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _code_volume(ctx: RenderContext) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Snapshot (ConfigMap or home sub folder), the writable code copy, DLW_OUTPUT_DIR, DLW_CHECKPOINT_DIR.

    Outputs and checkpoints land in the user's home (``.dlw/jobs/<name>/output`` and ``.../checkpoints``)
    when that claim is ReadWriteMany, so they outlive the pod and a restarted attempt resumes; otherwise
    both live in an emptyDir that goes with the pod (mount a catalogue volume to keep them).
    """
    volumes: list[dict[str, Any]] = [{"name": "dlw-code", "emptyDir": {}}]
    mounts: list[dict[str, Any]] = [{"name": "dlw-code", "mountPath": CODE_DIR}]
    if ctx.code.home_sub_path is not None or home_shared(ctx):
        volumes.append(home_volume(ctx)[0])
    # A built image holds the snapshot at SNAPSHOT_MOUNT itself: nothing to mount then.
    if ctx.code.config_map:
        volumes.append({
            "name": "dlw-snapshot",
            "configMap": {"name": ctx.code.config_map, "items": ctx.code.config_map_items},
        })
        mounts.append({"name": "dlw-snapshot", "mountPath": SNAPSHOT_MOUNT, "readOnly": True})
    elif ctx.code.home_sub_path:
        mounts.append({
            "name": "dlw-home", "mountPath": SNAPSHOT_MOUNT, "readOnly": True, "subPath": ctx.code.home_sub_path,
        })
    if home_shared(ctx):
        mounts.append({"name": "dlw-home", "mountPath": OUTPUT_DIR, "subPath": f"{HOME_JOBS_DIR}/{ctx.name}/output"})
        mounts.append({"name": "dlw-home", "mountPath": CHECKPOINT_DIR,
                       "subPath": f"{HOME_JOBS_DIR}/{ctx.name}/checkpoints"})
    else:
        volumes.append({"name": "dlw-output", "emptyDir": {}})
        mounts.append({"name": "dlw-output", "mountPath": OUTPUT_DIR})
    return volumes, mounts


def _placement(ctx: RenderContext) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Node selector and tolerations for the job's pods, from the admin profile that matches it."""
    res = ctx.spec.resources
    selector: dict[str, str] = {}
    tolerations: list[dict[str, Any]] = []
    ws = ctx.workspace
    profiles = ws.profiles if ws is not None else []
    match = next((p for p in profiles if bool(any(p.gpus)) == bool(res.gpus)
                  and (not res.gpus or p.gpu_resource == res.gpu_resource)
                  and (not res.gpu_type or p.gpu_type == res.gpu_type)), None)
    if match is not None:
        selector.update(match.node_selector)
        if res.gpus and match.gpu_type:
            selector[GPU_PRODUCT_LABEL] = match.gpu_type
        tolerations += [dict(t) for t in match.tolerations]
    if res.gpus:
        if res.gpu_type:
            selector[GPU_PRODUCT_LABEL] = res.gpu_type
        if GPU_TOLERATION not in tolerations:
            tolerations.append(dict(GPU_TOLERATION))
    return selector, tolerations


def pod_template(
    ctx: RenderContext,
    *,
    role: str,
    rank_from: str,
    rank_offset: int = 0,
    master_addr: str | None,
    container_name: str = "trainer",
    restart_policy: str | None = "Never",
    ports: list[dict[str, Any]] | None = None,
    subdomain: str | None = None,
) -> dict[str, Any]:
    """A PodTemplateSpec for one role (master/worker) of the job."""
    spec = ctx.spec
    res = spec.resources
    volumes, mounts = _code_volume(ctx)
    extra_volumes, extra_mounts = catalogue_volumes(ctx)
    for vol in extra_volumes:
        same = next((v for v in volumes if v["name"] == vol["name"]), None)
        if same is None:
            volumes.append(vol)
        elif same != vol:  # pragma: no cover - the home claim is the only shared name and renders alike
            raise DLWError(f"job {spec.name}: volumes: {vol['name']} is mounted twice in different ways")
    taken = {m["mountPath"] for m in mounts}
    for mount in extra_mounts:
        if mount["mountPath"] in taken:
            raise DLWError(f"job {spec.name}: volumes: {mount['mountPath']} is reserved by DLW, mount elsewhere")
        mounts.append(mount)
    if res.shm or res.gpus or spec.processes_per_worker > 1:
        # Without sizeLimit the tmpfs is bounded by the container's memory limit (it is charged there).
        shm: dict[str, Any] = {"medium": "Memory", **({"sizeLimit": res.shm} if res.shm else {})}
        volumes.append({"name": "dlw-shm", "emptyDir": shm})
        mounts.append({"name": "dlw-shm", "mountPath": "/dev/shm"})
    container: dict[str, Any] = {
        "name": container_name,
        "image": ctx.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-c", BOOTSTRAP],
        "args": list(ctx.prepared.entrypoint),
        "workingDir": CODE_DIR,
        "env": _env(ctx, rank_from, rank_offset, master_addr),
        "resources": _resources(ctx),
        "volumeMounts": mounts,
        "securityContext": {
            "privileged": False,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if ports:
        container["ports"] = ports
    pod: dict[str, Any] = {
        "containers": [container],
        "volumes": volumes,
        "automountServiceAccountToken": False,  # training code has no business with the API server
        "enableServiceLinks": False,
        # Pod Security "restricted" (what the user namespaces' admission policy asks of every pod): the
        # notebook's user, never root; the home claim's files stay the notebook's (fsGroup).
        "securityContext": {"runAsNonRoot": True, "runAsUser": POD_UID, "runAsGroup": POD_GID, "fsGroup": POD_GID,
                            "seccompProfile": {"type": "RuntimeDefault"}},
    }
    if spec.preemptible:  # the time the spec gives its ranks to checkpoint after SIGTERM (Kubernetes: 30 s)
        pod["terminationGracePeriodSeconds"] = spec.preemption.grace_period
    if restart_policy:
        pod["restartPolicy"] = restart_policy
    if subdomain:
        pod["subdomain"] = subdomain
    if res.gpu_type and not res.gpus:
        raise DLWError(f"job {spec.name}: resources.gpuType: set resources.gpus too (a GPU type without GPUs)")
    selector, tolerations = _placement(ctx)
    if tolerations:
        pod["tolerations"] = tolerations
    if selector:
        pod["nodeSelector"] = selector
    if ctx.priority_class:
        pod["priorityClassName"] = ctx.priority_class
    pull_secret = ctx.workspace.images.pull_secret if ctx.workspace is not None else None
    if pull_secret:  # built job images live in the admin's registry
        pod["imagePullSecrets"] = [{"name": pull_secret}]
    labels = {**ctx.labels(), "dlw.dev/role": role}
    return {"metadata": {"labels": labels, "annotations": ctx.annotations()}, "spec": pod}
