"""The cluster's builder: a Kaniko Job in the user's namespace that builds the context and pushes it.

The context travels as a tar.gz in a ConfigMap (Kaniko reads ``tar://``); the pushed digest comes
back as the pod's termination message (``--digest-file=/dev/termination-log``). Kaniko needs neither
privileges nor a Docker daemon, which is why it is the default cluster builder.
"""

from __future__ import annotations

import base64
from typing import Any

from .. import settings
from ..render.context import RenderContext
from ..types import PreparedJob

# The admin mirrors the Kaniko executor into their registry (clusters often cannot pull from outside);
# DLW_BUILDER_IMAGE overrides.
BUILDER_TAG = "kaniko-executor:v1.23.2"
CONTEXT_MOUNT = "/workspace"


def builder_image(registry: str) -> str:
    return settings.current().builder_image or f"{registry}/{BUILDER_TAG}"


def build_objects(
    ctx: RenderContext, prepared: PreparedJob, context_tar: bytes, destination: str, timeout: int = 1800
) -> list[dict[str, Any]]:
    """ConfigMap (context) + Job (kaniko), labelled like the job they build for."""
    ws = ctx.workspace
    name = f"{prepared.spec.name}-build"
    registry = ws.images.registry
    extra = {"dlw.dev/role": "build"}
    args = [
        f"--context=tar://{CONTEXT_MOUNT}/context.tar.gz",
        f"--destination={destination}",
        "--cache=true",  # dependency layers come from the cache repo when requirements did not change
        f"--cache-repo={registry}/cache",
        "--digest-file=/dev/termination-log",
        "--snapshot-mode=redo",
        "--cleanup",
    ]
    mounts: list[dict[str, Any]] = [{"name": "context", "mountPath": CONTEXT_MOUNT, "readOnly": True}]
    volumes: list[dict[str, Any]] = [{"name": "context", "configMap": {"name": name}}]
    if ws.images.pull_secret:
        # The push credential is the admin's registry secret, mounted where Kaniko looks for it.
        volumes.append({"name": "registry-auth", "secret": {
            "secretName": ws.images.pull_secret, "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}})
        mounts.append({"name": "registry-auth", "mountPath": "/kaniko/.docker", "readOnly": True})
    cm = {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": ctx.metadata(name, extra), "immutable": True,
        "binaryData": {"context.tar.gz": base64.b64encode(context_tar).decode("ascii")},
    }
    job: dict[str, Any] = {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": ctx.metadata(name, extra),
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": timeout,
            "ttlSecondsAfterFinished": 3600,
            "template": {
                "metadata": {"labels": {**ctx.labels(), **extra}},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "kaniko",
                        "image": builder_image(registry),
                        "args": args,
                        "volumeMounts": mounts,
                        "terminationMessagePolicy": "File",
                        "securityContext": {"privileged": False, "allowPrivilegeEscalation": False},
                    }],
                    "volumes": volumes,
                },
            },
        },
    }
    # Queued like the job it builds for (the user namespaces' admission policy refuses jobs outside a queue).
    if ctx.queue and ctx.queue_system == "volcano":
        template = job["spec"]["template"]
        template["spec"]["schedulerName"] = "volcano"
        template["metadata"]["annotations"] = {"scheduling.volcano.sh/queue-name": ctx.queue}
    elif ctx.queue and ctx.queue_system == "kueue":
        job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] = ctx.queue
    return [cm, job]
