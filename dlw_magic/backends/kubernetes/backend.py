"""The Kubernetes backend: the same jobs as the local runner, as Jobs, Volcano Jobs or PyTorchJobs.

submit renders the prepared job (``dlw_magic.render``) and creates the objects in the user's namespace;
everything else reads them back by label (``dlw.dev/user``, ``dlw.dev/job``, ``dlw.dev/job-id``), so a job
applied with ``kubectl apply -f`` from ``dlw render`` is listed, followed and cancelled the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from ...errors import Conflict, DLWError, NotFound
from ...spec import TrainingJob
from ..base import Backend, GpuInfo, JobInfo, JobState, LogChunk, PreparedJob
from .api import Api, api_client, api_error, kubeconfig_namespace, pod_namespace
from .logs import follow_logs, pod_rank, read_logs
from .status import job_status, ts

ENGINE_KINDS: dict[str, tuple[str, str]] = {
    "job": ("batch/v1", "Job"),
    "volcano": ("batch.volcano.sh/v1alpha1", "Job"),
    "pytorchjob": ("kubeflow.org/v1", "PyTorchJob"),
}
SPEC_ANNOTATION = "dlw.dev/spec"
PROVENANCE_ANNOTATION = "dlw.dev/provenance"
CREATED_ANNOTATION = "dlw.dev/created"


class KubernetesBackend(Backend):
    name = "kubernetes"

    def __init__(
        self, kubeconfig: str | None = None, namespace: str | None = None, workspace: str | None = None
    ) -> None:
        from ...core import current_user
        from ...render import load_workspace_arg, user_namespace

        self.kubeconfig = kubeconfig or os.environ.get("DLW_KUBECONFIG")
        self.workspace = load_workspace_arg(workspace or os.environ.get("DLW_WORKSPACE_CONFIG"))
        self.user = current_user()
        wanted = namespace or os.environ.get("DLW_NAMESPACE") or pod_namespace()
        if wanted is None and self.kubeconfig:
            wanted = kubeconfig_namespace(self.kubeconfig)
        self.namespace = user_namespace(self.workspace, self.user, wanted)
        self.api = Api(api_client(self.kubeconfig))
        self._missing_kinds: set[str] = set()  # engines whose CRD the cluster lacks (404 on list)

    # -- helpers -----------------------------------------------------------------------------------------

    def _selector(self, **extra: str) -> dict[str, str]:
        from ...render.context import USER_LABEL, label_value

        return {"app.kubernetes.io/managed-by": "dlw", USER_LABEL: label_value(self.user), **extra}

    def _find(self, name: str) -> tuple[str, dict[str, Any]]:
        """(engine, object) of the user's job called ``name``; NotFound otherwise (also for others' jobs)."""
        from ...render.context import JOB_LABEL

        for engine, kind in ENGINE_KINDS.items():
            if engine in self._missing_kinds:
                continue
            try:
                obj = self.api.read(kind, self.namespace, name)
            except ApiException as err:
                if err.status == 404:
                    continue
                raise api_error(err, f"job {name}") from None
            labels = (obj.get("metadata") or {}).get("labels") or {}
            if all(labels.get(k) == v for k, v in self._selector(**{JOB_LABEL: name}).items()):
                return engine, obj
        raise NotFound(f"job {name}: no such job in namespace {self.namespace}")

    def _pods(self, job_id: str) -> list[dict[str, Any]]:
        from ...render.context import JOB_ID_LABEL

        try:
            return self.api.list(("v1", "Pod"), self.namespace, self._selector(**{JOB_ID_LABEL: job_id}))
        except ApiException as err:
            raise api_error(err, "list pods") from None

    def _info(self, engine: str, obj: dict[str, Any], pods: list[dict[str, Any]] | None = None) -> JobInfo:
        from ...render.context import JOB_ID_LABEL

        meta = obj.get("metadata") or {}
        ann = meta.get("annotations") or {}
        spec = _json(ann.get(SPEC_ANNOTATION))
        job_id = (meta.get("labels") or {}).get(JOB_ID_LABEL, "")
        if pods is None:
            pods = self._pods(job_id) if job_id else []
        ranked = [(pod_rank(engine, p), p) for p in pods]
        st = job_status(engine, obj, ranked, spec)
        if st.state == JobState.QUEUED and st.reason is None and not pods:
            st.reason, st.message = self._job_event_reason(meta.get("name", ""))
        workers = int(spec.get("workers", 1))
        res = spec.get("resources") or {}
        priority = spec.get("priority")
        values = self.workspace.priority_values
        return JobInfo(
            name=meta.get("name", ""), user=self.user, state=st.state, backend=self.name, engine=engine,
            id=job_id, workers=workers, world_size=workers * int(spec.get("processesPerWorker", 1)),
            gpus=int(res.get("gpus", 0)),
            created=ts(meta.get("creationTimestamp")) or _float(ann.get(CREATED_ANNOTATION)),
            started=st.started, finished=st.finished, exit_code=st.exit_code, reason=st.reason,
            message=st.message, attempt=st.attempt, output_dir=None,
            priority=values.get(priority, priority if isinstance(priority, int) else 0) if priority else 0,
            queue=spec.get("queue"), provenance=_json(ann.get(PROVENANCE_ANNOTATION)), spec=spec,
        )

    def _job_event_reason(self, name: str) -> tuple[str | None, str | None]:
        """A queued job with no pods: the controller may be refused pods (quota, admission): say why."""
        try:
            events = self.api.call(
                "GET", f"/api/v1/namespaces/{self.namespace}/events",
                query=[("fieldSelector", f"involvedObject.name={name}")],
            ) or {}
        except ApiException:
            return None, None
        warnings = [
            e for e in events.get("items") or []
            if e.get("type") == "Warning" and (e.get("involvedObject") or {}).get("name") == name
        ]
        if not warnings:
            return None, None
        last = warnings[-1]
        message = last.get("message") or ""
        reason = "QuotaExceeded" if "exceeded quota" in message else last.get("reason") or "Warning"
        return reason, message

    # -- Backend interface -------------------------------------------------------------------------------

    def staging_dir(self, spec: TrainingJob) -> Path:
        # The snapshot only lives until it is shipped (ConfigMap or home volume), so a temp folder will do.
        return Path(tempfile.mkdtemp(prefix=f"dlw-{spec.name}-"))

    def check_name_free(self, name: str) -> None:
        try:
            self._find(name)
        except NotFound:
            return
        raise Conflict(f"job {name}: you already have a job of this name (dlw cancel or pick another name)")

    def submit(self, job: PreparedJob) -> JobInfo:
        from ...render import objects_for, render_context

        job.provenance["job_id"] = uuid.uuid4().hex[:12]
        if not job.spec.image and not job.spec.build.enabled:
            job.image = self.notebook_image() or job.image
        job.provenance["image"] = job.image
        ctx = render_context(job, workspace=self.workspace, namespace=self.namespace)
        objects = objects_for(ctx)
        if ctx.code.home_sub_path:
            self._ship_to_home(job, ctx.code.home_sub_path)
        kind = ENGINE_KINDS[ctx.engine]
        main = next(o for o in objects if (o["apiVersion"], o["kind"]) == kind)
        main["metadata"]["annotations"].update({
            SPEC_ANNOTATION: json.dumps(job.spec.to_yaml_dict(), separators=(",", ":")),
            PROVENANCE_ANNOTATION: json.dumps(job.provenance, separators=(",", ":"), default=str),
            CREATED_ANNOTATION: f"{time.time():.3f}",
        })
        try:
            created = self.api.create(main)
        except ApiException as err:
            if err.status == 409:
                raise Conflict(f"job {job.spec.name}: a job of this name already exists in {self.namespace}") from None
            if err.status == 404:
                raise DLWError(f"job {job.spec.name}: the cluster has no {kind[1]} ({kind[0]}): "
                               f"is the {ctx.engine} engine installed? Try --engine job") from None
            raise api_error(err, f"job {job.spec.name}") from None
        uid = (created.get("metadata") or {}).get("uid")
        owner = [{"apiVersion": kind[0], "kind": kind[1], "name": job.spec.name, "uid": uid,
                  "blockOwnerDeletion": True}] if uid else None
        try:
            for obj in objects:
                if obj is main:
                    continue
                if owner:  # the ConfigMap and Service go when the job goes (cancel, TTL)
                    obj["metadata"]["ownerReferences"] = owner
                self.api.create(obj)
        except ApiException as err:
            self._delete_all(ctx.engine, job.spec.name, ctx.job_id)
            raise api_error(err, f"job {job.spec.name}") from None
        finally:
            shutil.rmtree(job.snapshot_dir, ignore_errors=True)
        return self._info(ctx.engine, created, pods=[])

    def _ship_to_home(self, job: PreparedJob, sub_path: str) -> None:
        """Copy a large snapshot into the user's home, which this notebook pod mounts and the job will too."""
        home = self.workspace.home
        root = Path(os.environ.get("DLW_HOME_MOUNT") or home.mount_path)
        if not root.is_dir():
            raise DLWError(f"job {job.spec.name}: the code snapshot is too large for a ConfigMap and the home "
                           f"volume is not mounted here ({root}): use build: true")
        dest = root / sub_path
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(job.snapshot_dir, dest)

    def list_jobs(self) -> list[JobInfo]:
        from ...render.context import JOB_ID_LABEL

        pods_by_id: dict[str, list[dict[str, Any]]] = {}
        try:
            for pod in self.api.list(("v1", "Pod"), self.namespace, self._selector()):
                pods_by_id.setdefault(pod["metadata"]["labels"].get(JOB_ID_LABEL, ""), []).append(pod)
        except ApiException as err:
            raise api_error(err, "list pods") from None
        out: list[JobInfo] = []
        for engine, kind in ENGINE_KINDS.items():
            if engine in self._missing_kinds:
                continue
            try:
                objs = self.api.list(kind, self.namespace, self._selector())
            except ApiException as err:
                if err.status == 404:  # the engine's CRD is not installed: nothing of that kind
                    self._missing_kinds.add(engine)
                    continue
                raise api_error(err, "list jobs") from None
            for obj in objs:
                if (obj.get("metadata") or {}).get("labels", {}).get("dlw.dev/engine", engine) != engine:
                    continue  # batch/v1 and Volcano both say "Job" in some servers' listings
                job_id = obj["metadata"]["labels"].get(JOB_ID_LABEL, "")
                out.append(self._info(engine, obj, pods_by_id.get(job_id, [])))
        out.sort(key=lambda j: j.created or 0, reverse=True)
        return out

    def get(self, name: str) -> JobInfo:
        engine, obj = self._find(name)
        return self._info(engine, obj)

    def cancel(self, name: str) -> JobInfo:
        engine, obj = self._find(name)
        info = self._info(engine, obj)
        if info.state.finished:
            raise Conflict(f"job {name} has already finished ({info.state.value}); nothing to cancel")
        self._delete_all(engine, name, info.id)
        info.state, info.reason, info.message = JobState.CANCELLED, "Cancelled", "cancelled by the user"
        info.finished = time.time()
        return info

    def _delete_all(self, engine: str, name: str, job_id: str) -> None:
        from ...render.context import JOB_ID_LABEL

        try:
            self.api.delete(ENGINE_KINDS[engine], self.namespace, name)
        except ApiException as err:
            if err.status != 404:
                raise api_error(err, f"cancel {name}") from None
        # Owner references remove these too on a real cluster; delete them here for servers without a GC.
        for kind in (("v1", "ConfigMap"), ("v1", "Service")):
            try:
                for obj in self.api.list(kind, self.namespace, self._selector(**{JOB_ID_LABEL: job_id})):
                    self.api.delete(kind, self.namespace, obj["metadata"]["name"])
            except ApiException as err:
                if err.status != 404:
                    raise api_error(err, f"cancel {name}") from None

    def logs(
        self, name: str, rank: int | None = None, follow: bool = False, offset: int = 0
    ) -> Iterator[LogChunk]:
        if offset and rank is None:
            raise DLWError("logs: an offset needs a rank")
        engine, obj = self._find(name)
        job_id = (obj["metadata"].get("labels") or {}).get("dlw.dev/job-id", "")
        container = "pytorch" if engine == "pytorchjob" else "trainer"
        if not follow:
            yield from read_logs(self.api, self.namespace, engine, self._pods(job_id), container, rank, offset)
            return

        def poll() -> tuple[list[dict[str, Any]], bool]:
            try:
                eng, current = self._find(name)
            except NotFound:
                return [], True
            pods = self._pods(job_id)
            return pods, self._info(eng, current, pods).state.finished

        yield from follow_logs(self.api, self.namespace, engine, container, poll, rank, offset)

    def events(self, name: str) -> list[dict[str, Any]]:
        """Events of the job and its pods, oldest first (``kubectl describe`` in one list)."""
        engine, obj = self._find(name)
        job_id = (obj["metadata"].get("labels") or {}).get("dlw.dev/job-id", "")
        names = {name, *(p["metadata"]["name"] for p in self._pods(job_id))}
        try:
            items = (self.api.call("GET", f"/api/v1/namespaces/{self.namespace}/events") or {}).get("items") or []
        except ApiException as err:
            raise api_error(err, f"events of {name}") from None
        mine = [e for e in items if (e.get("involvedObject") or {}).get("name") in names]
        mine.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
        return [
            {"type": e.get("type"), "reason": e.get("reason"), "object": (e.get("involvedObject") or {}).get("name"),
             "message": e.get("message"), "time": e.get("lastTimestamp") or e.get("eventTime")}
            for e in mine
        ]

    def notebook_image(self) -> str | None:
        """The digest of the image this notebook pod runs (so the job runs exactly the same environment)."""
        pod_name = os.environ.get("HOSTNAME")
        if not pod_name or not (os.environ.get("KUBERNETES_SERVICE_HOST") or os.environ.get("DLW_POD_NAME")):
            return None
        try:
            pod = self.api.read(("v1", "Pod"), self.namespace, os.environ.get("DLW_POD_NAME") or pod_name)
        except ApiException:
            return None
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        main = next((s for s in statuses if s.get("name") == "notebook"), statuses[0] if statuses else None)
        if not main:
            return None
        image_id = (main.get("imageID") or "").split("://", 1)[-1]
        return image_id if "@sha256:" in image_id else main.get("image")

    def gpus(self) -> tuple[list[GpuInfo], str | None]:
        return [], "GPUs are allocated by the cluster: request them with resources.gpus (dlw train --gpus N)"


def _json(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None
