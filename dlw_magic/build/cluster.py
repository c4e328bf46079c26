"""Run the Kaniko build Job on the cluster and wait for the pushed digest."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from .. import settings
from ..errors import DLWError
from ..types import PreparedJob
from .dockerfile import context_tarball, write_context
from .kaniko import build_objects

POLL_SECONDS = 1.0


def _backend(given: Any = None) -> Any:
    """The job's own Kubernetes backend (its kubeconfig and namespace), else the default one."""
    from ..backends import get_backend
    from ..backends.kubernetes import KubernetesBackend

    backend = given if isinstance(given, KubernetesBackend) else get_backend("kubernetes")
    assert isinstance(backend, KubernetesBackend)
    return backend


def build_in_cluster(prepared: PreparedJob, ws: Any, base: str, ref: str, backend: Any = None) -> str:
    from ..engines.policy import check_objects
    from ..render import render_context
    from ..render.code import CONFIGMAP_MAX_BYTES
    from ..render.context import JOB_ID_LABEL

    backend = _backend(backend)
    api, ns = backend.api, backend.namespace
    timeout = settings.current().build_timeout
    prepared.code_in_image = True
    ctx = render_context(prepared, "job", workspace=backend.workspace, namespace=ns)
    with tempfile.TemporaryDirectory(prefix="dlw-build-") as tmp:
        tar = context_tarball(write_context(prepared, base, Path(tmp)))
    if len(tar) * 4 // 3 > CONFIGMAP_MAX_BYTES:
        raise DLWError(f"job {prepared.spec.name}: build: the build context is {len(tar) >> 10} KiB compressed, "
                       f"over the {CONFIGMAP_MAX_BYTES >> 10} KiB a ConfigMap holds: move data files to a volume")
    objects = build_objects(ctx, prepared, tar, ref, timeout)
    pull_secret = ws.images.pull_secret
    check_objects(objects, ns, list(ws.host_path_allowlist), frozenset({pull_secret} if pull_secret else ()))
    cm, job = objects
    name = job["metadata"]["name"]
    for kind in (("batch/v1", "Job"), ("v1", "ConfigMap")):  # a previous build of the same job name
        try:
            api.delete(kind, ns, name)
        except ApiException as err:
            if err.status != 404:
                raise DLWError(f"job {prepared.spec.name}: build: {err.status} {err.reason}") from None
    try:
        api.create(cm)
        created = api.create(job)
    except ApiException as err:
        raise DLWError(f"job {prepared.spec.name}: build: cannot create {name}: {err.status} {err.reason}") from None
    uid = (created.get("metadata") or {}).get("uid")
    if uid:  # the context goes when the build Job does (TTL)
        api.patch(("v1", "ConfigMap"), ns, name, {"metadata": {"ownerReferences": [
            {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": uid}]}})
    selector = backend._selector(**{JOB_ID_LABEL: ctx.job_id, "dlw.dev/role": "build"})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = api.read(("batch/v1", "Job"), ns, name).get("status") or {}
        conds = {c.get("type") for c in status.get("conditions") or [] if c.get("status") == "True"}
        if conds & {"Complete", "Failed", "FailureTarget", "SuccessCriteriaMet"}:
            pods = api.list(("v1", "Pod"), ns, selector)
            message = _termination_message(pods)
            if conds & {"Complete", "SuccessCriteriaMet"}:
                digest = message.strip()
                return f"{ref.rsplit(':', 1)[0]}@{digest}" if digest.startswith("sha256:") else ref
            raise DLWError(f"job {prepared.spec.name}: build failed in {name}: "
                           f"{message.strip().splitlines()[-1] if message.strip() else 'see kubectl logs job/' + name}")
        time.sleep(POLL_SECONDS)
    raise DLWError(f"job {prepared.spec.name}: build: {name} did not finish within {timeout} s")


def _termination_message(pods: list[dict[str, Any]]) -> str:
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            term = (cs.get("state") or {}).get("terminated") or {}
            if term.get("message"):
                return str(term["message"])
    return ""
