"""A definition on Kubernetes: a CronJob in the user's namespace whose pod submits the job.

The cluster keeps the time (``schedule`` + ``timeZone``) and the policies, which are CronJob's own:
``concurrencyPolicy``, ``startingDeadlineSeconds``, ``successfulJobsHistoryLimit``/``failedJobsHistoryLimit``
(``keep``), ``suspend`` (paused). Each fire starts a small pod on the notebook's image, under the
notebook's ServiceAccount (the same RBAC a notebook has, so the same admission rules apply to what it
creates), with the home volume mounted where the notebook has it: it runs ``dlw_magic.schedules.fire``,
which reads the notebook as last saved and submits it as an ordinary job ``NAME-yymmddHHMM``.
The definition itself travels in a ConfigMap beside the CronJob.
"""

from __future__ import annotations

import json
import posixpath
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..errors import DLWError
from ..workspace.volumes import POD_GID, POD_UID
from . import cron
from .model import Definition
from .store import FAILED, SUBMITTED

if TYPE_CHECKING:
    from ..backends import Backend
    from ..types import JobInfo

SCHEDULE_LABEL = "dlw.dev/schedule"
SCHEDULED_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"  # the CronJob controller's, on its Jobs
DEFINITION_DIR = "/etc/dlw-schedule"
FIRE_CPU, FIRE_MEMORY = "100m", "256Mi"


def object_name(d: Definition) -> str:
    return f"dlw-schedule-{d.name}"


def render(d: Definition, *, namespace: str, image: str, user: str, workspace: Any = None) -> list[dict[str, Any]]:
    """The ConfigMap holding the definition and the CronJob that fires it (plain dicts, apply order)."""
    name = object_name(d)
    labels = {"app.kubernetes.io/managed-by": "dlw", "app.kubernetes.io/part-of": "dlw", SCHEDULE_LABEL: d.name}
    meta = {"name": name, "namespace": namespace, "labels": labels}
    definition = {"name": d.name, "timezone": d.timezone, "spec": d.spec, "user": user}
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
                  "data": {"definition.json": json.dumps(definition, sort_keys=True)}}
    volumes: list[dict[str, Any]] = [{"name": "definition", "configMap": {"name": name}}]
    mounts: list[dict[str, Any]] = [{"name": "definition", "mountPath": DEFINITION_DIR, "readOnly": True}]
    env = [{"name": "DLW_NAMESPACE", "value": namespace}, {"name": "DLW_BACKEND", "value": "kubernetes"},
           {"name": "JUPYTERHUB_USER", "value": user}, {"name": "DLW_IMAGE", "value": image}]
    service_account = "dlw-notebook"
    if workspace is not None:
        from ..workspace import WORKSPACE_CONFIGMAP, WORKSPACE_MOUNT, pod_volume

        service_account = workspace.hub.service_account
        # The admin YAML the hub keeps in the namespace, where the notebook pod has it: without it the
        # submission would run under the built-in default workspace, not the admin's.
        volumes.append({"name": "dlw-workspace", "configMap": {"name": WORKSPACE_CONFIGMAP}})
        mounts.append({"name": "dlw-workspace", "mountPath": posixpath.dirname(WORKSPACE_MOUNT), "readOnly": True})
        env.append({"name": "DLW_WORKSPACE_CONFIG", "value": WORKSPACE_MOUNT})
        if workspace.home is not None:  # the notebook is read from the home, as saved at the fire
            vol, mount = pod_volume(workspace.home, user)
            volumes.append(vol)
            mounts.append(mount)
            env.append({"name": "DLW_HOME_MOUNT", "value": workspace.home.mount_path})
    container = {
        "name": "fire",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "dlw_magic.schedules.fire", f"{DEFINITION_DIR}/definition.json"],
        "env": env,
        "volumeMounts": mounts,
        "resources": {"requests": {"cpu": FIRE_CPU, "memory": FIRE_MEMORY},
                      "limits": {"cpu": "1", "memory": "1Gi"}},
        "securityContext": {"privileged": False, "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    pod = {
        "serviceAccountName": service_account,
        "restartPolicy": "Never",
        "enableServiceLinks": False,
        # Pod Security "restricted", which the user namespaces' admission policy asks of every pod: the
        # notebook's user, never root; files it writes in the home stay the notebook's (fsGroup).
        "securityContext": {"runAsNonRoot": True, "runAsUser": POD_UID, "runAsGroup": POD_GID, "fsGroup": POD_GID,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": volumes,
    }
    spec: dict[str, Any] = {
        "schedule": cron.expand(d.cron),
        "timeZone": d.timezone,
        "concurrencyPolicy": d.concurrency,
        "suspend": d.paused,
        "successfulJobsHistoryLimit": d.keep,
        "failedJobsHistoryLimit": d.keep,
        "jobTemplate": {
            "metadata": {"labels": labels},
            # One try: a failed submission is a failed run with its reason in the pod's log, not a loop.
            "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": labels}, "spec": pod}},
        },
    }
    if d.starting_deadline is not None:
        spec["startingDeadlineSeconds"] = d.starting_deadline
    cron_job = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta, "spec": spec}
    return [config_map, cron_job]


def _kube(backend: Backend | None) -> Any:
    from ..backends import get_backend

    backend = backend or get_backend("kubernetes")
    if backend.name != "kubernetes":
        raise DLWError("this schedule lives in Kubernetes: use --backend kubernetes")
    return backend


def apply(d: Definition, backend: Backend | None = None, replace: bool = False) -> dict[str, Any]:
    """Create (or with ``replace``, update) the definition's objects; returns facts to keep with it."""
    from kubernetes.client.exceptions import ApiException

    from ..backends.kubernetes.api import api_error
    from ..snapshot import current_image

    kube = _kube(backend)
    # The firing pod runs dlw itself: the notebook's image (which has it) before the job's own.
    image = kube.notebook_image() or current_image() or d.spec.get("image") or ""
    if not image:
        raise DLWError("image: cannot tell the notebook's image; pass --image for the scheduled job")
    objects = render(d, namespace=kube.namespace, image=image, user=kube.user, workspace=kube.workspace)
    try:
        for obj in objects:
            key = (obj["apiVersion"], obj["kind"])
            if replace:
                try:
                    kube.api.delete(key, kube.namespace, obj["metadata"]["name"])
                except ApiException as err:
                    if err.status != 404:
                        raise
            kube.api.create(obj)
    except ApiException as err:
        if err.status == 409:
            raise DLWError(f"schedule {d.name}: CronJob {object_name(d)} already exists in {kube.namespace}") from None
        raise api_error(err, f"schedule {d.name}") from None
    return {"cronJob": object_name(d), "namespace": kube.namespace, "image": image}


def set_suspended(d: Definition, suspended: bool, backend: Backend | None = None) -> None:
    from kubernetes.client.exceptions import ApiException

    from ..backends.kubernetes.api import api_error

    kube = _kube(backend)
    try:
        kube.api.patch(("batch/v1", "CronJob"), kube.namespace, object_name(d), {"spec": {"suspend": suspended}})
    except ApiException as err:
        raise api_error(err, f"schedule {d.name}") from None


def remove(d: Definition, backend: Backend | None = None) -> None:
    from kubernetes.client.exceptions import ApiException

    from ..backends.kubernetes.api import api_error

    kube = _kube(backend)
    for key in (("batch/v1", "CronJob"), ("v1", "ConfigMap")):
        try:
            kube.api.delete(key, kube.namespace, object_name(d))
        except ApiException as err:
            if err.status != 404:
                raise api_error(err, f"schedule {d.name}") from None


def cluster_runs(d: Definition, jobs: dict[str, JobInfo], backend: Backend | None = None) -> list[dict[str, Any]]:
    """The fires the CronJob controller made, as runs (the local store never sees them): each job a fire pod
    submitted (``NAME-yymmddHHMM``, its state the job's), and with ``backend`` each fire whose pod could not
    submit (Failed, with the pod's reason: its last log line)."""
    runs = []
    for name in jobs:
        m = re.fullmatch(re.escape(d.name) + r"-(\d{10})", name)
        if m:
            at = datetime.strptime(m.group(1), "%y%m%d%H%M").replace(tzinfo=cron.zone(d.timezone))
            runs.append({"job": name, "state": SUBMITTED, "scheduled": at.timestamp()})
    if backend is not None:
        runs += _failed_fires(d, _kube(backend))
    return runs


def _failed_fires(d: Definition, kube: Any) -> list[dict[str, Any]]:
    from kubernetes.client.exceptions import ApiException

    from ..backends.kubernetes.api import api_error

    try:
        fire_jobs = kube.api.list(("batch/v1", "Job"), kube.namespace, {SCHEDULE_LABEL: d.name})
    except ApiException as err:
        raise api_error(err, f"schedule {d.name}") from None
    out = []
    for job in fire_jobs:
        conditions = (job.get("status") or {}).get("conditions") or []
        if not any(c.get("type") == "Failed" and c.get("status") == "True" for c in conditions):
            continue
        meta = job["metadata"]
        stamp = (meta.get("annotations") or {}).get(SCHEDULED_ANNOTATION) or meta["creationTimestamp"]
        out.append({"job": None, "state": FAILED, "reason": "SubmitFailed",
                    "scheduled": datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp(),
                    "message": _last_log_line(kube, meta["name"]) or f"the fire's Job {meta['name']} failed"})
    return out


def _last_log_line(kube: Any, fire_job: str) -> str:
    """What the fire pod said last (``dlw schedule: run failed: ...``); empty when its pod is gone."""
    from kubernetes.client.exceptions import ApiException

    try:
        pods = kube.api.list(("v1", "Pod"), kube.namespace, {"batch.kubernetes.io/job-name": fire_job})
        if not pods:
            return ""
        text = kube.api.pod_log(kube.namespace, pods[0]["metadata"]["name"], "fire", timeout=10).read()
    except (ApiException, DLWError, OSError):
        return ""
    lines = [ln.strip() for ln in text.decode(errors="replace").splitlines() if ln.strip()]
    return lines[-1].removeprefix("dlw schedule: run failed: ") if lines else ""
