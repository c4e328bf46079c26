"""The Kubernetes backend: the same jobs as the local runner, as the objects of any registered engine.

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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from ... import engines, settings
from ...engines.base import Engine, Kind, ts
from ...errors import Conflict, DLWError, NotFound
from ...render.context import SPEC_ANNOTATION
from ...spec import TrainingJob
from ..base import Backend, GpuInfo, JobInfo, JobState, LogChunk, PreparedJob
from .api import Api, api_client, api_error, pod_namespace
from .logs import follow_logs, read_logs, read_saved, saved_logs_dir, saved_ranks
from .status import job_status
from .waits import explain_wait
from .watch import JobWatch

PROVENANCE_ANNOTATION = "dlw.dev/provenance"
ROLE_LABEL = "dlw.dev/role"
CREATED_ANNOTATION = "dlw.dev/created"


class KubernetesBackend(Backend):
    name = "kubernetes"

    def __init__(
        self, kubeconfig: str | None = None, namespace: str | None = None, workspace: str | None = None,
        watch: bool = True,
    ) -> None:
        from ...render import load_workspace_arg, user_namespace

        self.kubeconfig = kubeconfig or settings.current().kubeconfig
        self.workspace = load_workspace_arg(workspace or settings.current().workspace_config)
        self.user = settings.current().user
        # The namespace is the user's (workspace scheme); an explicit or detected one must agree with it.
        wanted = namespace or settings.current().namespace or pod_namespace()
        self.namespace = user_namespace(self.workspace, self.user, wanted)
        self.api = Api(api_client(self.kubeconfig))
        self._missing_kinds: set[str] = set()  # names of engines whose CRD the cluster lacks (404 on list)
        self._missing_related: set[Kind] = set()  # Kueue / scheduler kinds not installed or not readable
        self._executor: ThreadPoolExecutor | None = None
        # Follow jobs with watches (one long request each) rather than polling; False polls, as servers
        # without watch need (detected on their own) and the follow benchmark's baseline does.
        self.watch = watch

    # -- helpers -----------------------------------------------------------------------------------------

    def _selector(self, **extra: str) -> dict[str, str]:
        from ...render.context import USER_LABEL, label_value

        return {"app.kubernetes.io/managed-by": "dlw", USER_LABEL: label_value(self.user), **extra}

    def _pool(self) -> ThreadPoolExecutor:
        # API calls that do not depend on each other go out together: each costs a round trip.
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="dlw-k8s")
        return self._executor

    def _read_or_none(self, kind: tuple[str, str], name: str) -> dict[str, Any] | None:
        try:
            return self.api.read(kind, self.namespace, name)
        except ApiException as err:
            if err.status == 404:
                return None
            raise api_error(err, f"job {name}") from None

    def _engines(self) -> list[Engine]:
        return [e for e in engines.all_engines() if e.name not in self._missing_kinds]

    def _find(self, name: str) -> tuple[Engine, dict[str, Any]]:
        """(engine, object) of the user's job called ``name``; NotFound otherwise (also for others' jobs)."""
        from ...render.context import ENGINE_LABEL, JOB_LABEL

        candidates = self._engines()
        found = self._pool().map(lambda e: self._read_or_none(e.main.key, name), candidates)
        for engine, obj in zip(candidates, list(found), strict=True):
            wanted = self._selector(**{JOB_LABEL: name, ENGINE_LABEL: engine.name})
            labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
            if obj is not None and all(labels.get(k) == v for k, v in wanted.items()):
                return engine, obj
        raise NotFound(f"job {name}: no such job in namespace {self.namespace}")

    def _pods(self, job_id: str) -> list[dict[str, Any]]:
        from ...render.context import JOB_ID_LABEL

        try:
            return self.api.list(("v1", "Pod"), self.namespace, self._selector(**{JOB_ID_LABEL: job_id}))
        except ApiException as err:
            raise api_error(err, "list pods") from None

    def _info(
        self, engine: Engine, obj: dict[str, Any], pods: list[dict[str, Any]] | None = None, events: bool = True
    ) -> JobInfo:
        from ...render.context import JOB_ID_LABEL

        meta = obj.get("metadata") or {}
        ann = meta.get("annotations") or {}
        spec = _json(ann.get(SPEC_ANNOTATION))
        job_id = (meta.get("labels") or {}).get(JOB_ID_LABEL, "")
        if pods is None:
            pods = self._pods(job_id) if job_id else []
        ranked = [(engine.pod_rank(p), p) for p in pods]
        st = job_status(engine, obj, ranked, spec)
        if events and st.state == JobState.QUEUED:
            known = (st.reason, st.message or "") if st.reason not in (None, "Suspended") else None
            found = explain_wait(self.api, self.namespace, engine, obj, pods, self._missing_related, self._pool(),
                                 known)
            if found:
                st.reason, st.message = found
        workers = int(spec.get("workers", 1))
        res = spec.get("resources") or {}
        priority = spec.get("priority")
        values = self.workspace.priority_values
        return JobInfo(
            name=meta.get("name", ""), user=self.user, state=st.state, backend=self.name, engine=engine.name,
            id=job_id, workers=workers, world_size=workers * int(spec.get("processesPerWorker", 1)),
            gpus=int(res.get("gpus", 0)),
            created=ts(meta.get("creationTimestamp")) or _float(ann.get(CREATED_ANNOTATION)),
            started=st.started, finished=st.finished, exit_code=st.exit_code, reason=st.reason,
            message=st.message, attempt=st.attempt, output_dir=self._output_dir(meta.get("name", "")),
            priority=values.get(priority, priority if isinstance(priority, int) else 0) if priority else 0,
            queue=spec.get("queue"), provenance=_json(ann.get(PROVENANCE_ANNOTATION)), spec=spec,
        )

    def _output_dir(self, name: str) -> str | None:
        """Where this notebook sees the job's DLW_OUTPUT_DIR: in the home, when jobs can mount it too."""
        from ...render.code import HOME_JOBS_DIR

        home = self.workspace.home
        if home is None or "ReadWriteMany" not in home.access_modes:
            return None  # an emptyDir in the pod: gone with it
        return f"{home.mount_path}/{HOME_JOBS_DIR}/{name}/output"

    def _saved_logs(self, name: str, job_id: str | None) -> Path | None:
        """The rank logs the job's pods kept, as this notebook sees them (only with a ReadWriteMany home)."""
        if self._output_dir(name) is None:
            return None
        return saved_logs_dir(Path(settings.current().home_mount or self.workspace.home.mount_path), name, job_id)

    # -- Backend interface -------------------------------------------------------------------------------

    def staging_dir(self, spec: TrainingJob) -> Path:
        # The snapshot only lives until it is shipped (ConfigMap or home volume), so a temp folder will do.
        return Path(tempfile.mkdtemp(prefix=f"dlw-{spec.name}-"))

    def check_name_free(self, name: str) -> None:
        # Label-selected lists, not reads by name: an empty list is cheaper for an API server than a 404,
        # and a kind whose CRD is missing shows up once (404 on the list) and is skipped from then on.
        from ...render.context import JOB_LABEL

        selector = {"app.kubernetes.io/managed-by": "dlw", JOB_LABEL: name}

        def taken(engine: Engine) -> bool:
            try:
                objs = self.api.list(engine.main.key, self.namespace, selector)
            except ApiException as err:
                if err.status == 404:
                    self._missing_kinds.add(engine.name)
                    return False
                raise api_error(err, f"job {name}") from None
            return any(o["metadata"].get("name") == name for o in objs)

        if any(list(self._pool().map(taken, self._engines()))):
            raise Conflict(f"job {name}: a job of this name already exists in {self.namespace} (pick another name)")

    def submit(self, job: PreparedJob) -> JobInfo:
        from ...engines.objects import objects_for
        from ...render import render_context

        job.provenance["job_id"] = uuid.uuid4().hex[:12]
        if not job.spec.image and not job.spec.build.enabled:
            job.image = self.notebook_image() or job.image
        job.provenance["image"] = job.image
        ctx = render_context(job, workspace=self.workspace, namespace=self.namespace)
        objects = objects_for(ctx)
        if ctx.code.home_sub_path:
            self._ship_to_home(job, ctx.code.home_sub_path)
        engine = engines.get(ctx.engine)
        kind = engine.main
        main = next(o for o in objects if (o["apiVersion"], o["kind"]) == kind.key)
        main["metadata"]["annotations"].update({
            PROVENANCE_ANNOTATION: json.dumps(job.provenance, separators=(",", ":"), default=str),
            CREATED_ANNOTATION: f"{time.time():.3f}",
        })
        first = [o for o in objects if o is not main and engine.created_before_job(o)]
        rest = [o for o in objects if o is not main and o not in first]
        try:
            for obj in first:
                self.api.create(obj)
            created = self.api.create(main)
        except ApiException as err:
            if first:
                self._delete_all(engine, job.spec.name, ctx.job_id)
            shutil.rmtree(job.snapshot_dir, ignore_errors=True)
            if err.status == 409:
                raise Conflict(f"job {job.spec.name}: a job of this name already exists in {self.namespace}") from None
            if err.status == 404:
                raise DLWError(f"job {job.spec.name}: the cluster has no {kind.kind} ({kind.api_version}): "
                               f"is the {engine.name} engine installed? Try --engine job") from None
            raise api_error(err, f"job {job.spec.name}") from None
        uid = (created.get("metadata") or {}).get("uid")
        # No blockOwnerDeletion: it needs rights on the owner's finalizers that a notebook does not hold.
        owner = [{"apiVersion": kind.api_version, "kind": kind.kind, "name": job.spec.name, "uid": uid}] if uid else []
        for obj in rest:
            if owner:  # the ConfigMap and Service go when the job goes (cancel, TTL)
                obj["metadata"]["ownerReferences"] = owner
        try:
            if owner:  # what had to exist before the job goes with it too
                for obj in first:
                    self.api.patch((obj["apiVersion"], obj["kind"]), self.namespace, obj["metadata"]["name"],
                                   {"metadata": {"ownerReferences": owner}})
            list(self._pool().map(self.api.create, rest))
        except ApiException as err:
            self._delete_all(engine, job.spec.name, ctx.job_id)
            raise api_error(err, f"job {job.spec.name}") from None
        finally:
            shutil.rmtree(job.snapshot_dir, ignore_errors=True)
        return self._info(engine, created, pods=[], events=False)

    def _ship_to_home(self, job: PreparedJob, sub_path: str) -> None:
        """Copy a large snapshot into the user's home, which this notebook pod mounts and the job will too."""
        home = self.workspace.home
        root = Path(settings.current().home_mount or home.mount_path)
        if not root.is_dir():
            raise DLWError(f"job {job.spec.name}: the code snapshot is too large for a ConfigMap and the home "
                           f"volume is not mounted here ({root}): use build: true")
        dest = root / sub_path
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(job.snapshot_dir, dest)

    def list_jobs(self) -> list[JobInfo]:
        from ...render.context import ENGINE_LABEL, JOB_ID_LABEL

        def fetch(kind: tuple[str, str]) -> list[dict[str, Any]] | None:
            try:
                return self.api.list(kind, self.namespace, self._selector())
            except ApiException as err:
                if err.status == 404 and kind != ("v1", "Pod"):
                    return None  # the engine's CRD is not installed: nothing of that kind
                raise api_error(err, "list jobs") from None

        candidates = self._engines()
        # Pods and every engine's jobs in one round trip; pods are matched to jobs by job id.
        pods, *per_engine = self._pool().map(fetch, [("v1", "Pod"), *(e.main.key for e in candidates)])
        pods_by_id: dict[str, list[dict[str, Any]]] = {}
        for pod in pods or []:
            pods_by_id.setdefault(pod["metadata"]["labels"].get(JOB_ID_LABEL, ""), []).append(pod)
        out: list[JobInfo] = []
        for engine, objs in zip(candidates, per_engine, strict=True):
            if objs is None:
                self._missing_kinds.add(engine.name)
                continue
            for obj in objs:
                labels = (obj.get("metadata") or {}).get("labels") or {}
                # batch/v1 and Volcano both say "Job": trust the label on servers that mix them; a
                # labelled role (the Kaniko build Job) is a helper of a training job, not one.
                if labels.get(ENGINE_LABEL) != engine.name or ROLE_LABEL in labels:
                    continue
                # No per-job event lookups in a listing: `dlw status NAME` explains a stuck job.
                out.append(self._info(engine, obj, pods_by_id.get(labels.get(JOB_ID_LABEL, ""), []), events=False))
        out.sort(key=lambda j: j.created or 0, reverse=True)
        return out

    def get(self, name: str) -> JobInfo:
        engine, obj = self._find(name)
        return self._info(engine, obj)

    def metrics(self, job: JobInfo) -> dict[str, list[list[Any]]]:
        """From the output folder where this pod sees it (a shared home); else from the pods' logs, where
        ranks print their metrics as tagged lines (DLW_METRICS_STDOUT=1) and the bootstrap its GPU use.
        Rank 0 gives the job's metrics; the other pods add their GPU use as ``gpu.util@rank1``, ..."""
        from ...metrics import read_log

        found = super().metrics(job)
        if found:
            return found
        merged: dict[str, list[list[Any]]] = {}
        for rank in range(max(job.workers, 1)):
            try:
                text = "".join(chunk.text for chunk in self.logs(job.name, rank=rank))
            except DLWError:
                continue  # this rank's pod is gone and kept no log
            for name, points in read_log(text.splitlines()).items():
                if rank == 0:
                    merged[name] = points
                elif name.startswith("gpu."):
                    merged[f"{name}@rank{rank}"] = points
        return merged

    def cancel(self, name: str) -> JobInfo:
        engine, obj = self._find(name)
        info = self._info(engine, obj)
        if info.state.finished:
            raise Conflict(f"job {name} has already finished ({info.state.value}); nothing to cancel")
        self._delete_all(engine, name, info.id)
        info.state, info.reason, info.message = JobState.CANCELLED, "Cancelled", "cancelled by the user"
        info.finished = time.time()
        return info

    def _delete_all(self, engine: Engine, name: str, job_id: str) -> None:
        from ...render.context import JOB_ID_LABEL

        try:
            self.api.delete(engine.main.key, self.namespace, name, engine.cancel_propagation)
            self.api.read(engine.main.key, self.namespace, name)
            stays = True  # foreground deletion: until its pods are gone
        except ApiException as err:
            if err.status != 404:
                raise api_error(err, f"cancel {name}") from None
            stays = False
        # Owner references remove these too on a real cluster; delete them here for servers without a GC.
        # What the job needed before it was created stays while the job does: its controller's webhook
        # validates every update of the job against it (Trainer's, the TrainingRuntime; a finalizer's removal
        # is such an update, refused without it: the job would never go). The owner reference removes it.
        for kind in (("v1", "ConfigMap"), *(k.key for k in engine.owned)):
            try:
                for obj in self.api.list(kind, self.namespace, self._selector(**{JOB_ID_LABEL: job_id})):
                    if not (stays and engine.created_before_job(obj)):
                        self.api.delete(kind, self.namespace, obj["metadata"]["name"])
            except ApiException as err:
                if err.status != 404:
                    raise api_error(err, f"cancel {name}") from None

    def logs(
        self, name: str, rank: int | None = None, follow: bool = False, offset: int = 0
    ) -> Iterator[LogChunk]:
        if offset and rank is None:
            raise DLWError("logs: an offset needs a rank")
        try:
            engine, obj = self._find(name)
        except NotFound:
            # The job object is gone (TTL, deleted): what its pods kept on the home volume is all there is.
            saved = self._saved_logs(name, None)
            if not saved_ranks(saved):
                raise
            yield from read_saved(saved, rank, offset)
            return
        job_id = (obj["metadata"].get("labels") or {}).get("dlw.dev/job-id", "")
        if not follow or self._info(engine, obj, [], events=False).state.finished:  # nothing more will come
            saved = self._saved_logs(name, job_id)
            yield from read_logs(self.api, self.namespace, engine, self._pods(job_id), rank, offset, saved)
            return

        def poll() -> tuple[list[dict[str, Any]], bool]:
            try:
                eng, current = self._find(name)
            except NotFound:
                return [], True
            pods = self._pods(job_id)
            return pods, self._info(eng, current, pods).state.finished

        if not self.watch:
            yield from follow_logs(self.api, self.namespace, engine, poll, rank, offset)
            return
        from ...render.context import ENGINE_LABEL, JOB_ID_LABEL, JOB_LABEL

        job_watch = JobWatch(
            self.api, self.namespace, engine.main.key, name,
            job_selector=self._selector(**{JOB_LABEL: name, ENGINE_LABEL: engine.name}),
            pod_selector=self._selector(**{JOB_ID_LABEL: job_id}),
        )
        with job_watch:  # back to ``poll`` if the server cannot watch
            watched = job_watch.poller(lambda o, p: self._info(engine, o, p, events=False).state.finished, poll)
            yield from follow_logs(self.api, self.namespace, engine, watched, rank, offset)

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
        if not pod_name or not (settings.current().in_cluster or settings.current().pod_name):
            return None
        try:
            pod = self.api.read(("v1", "Pod"), self.namespace, settings.current().pod_name or pod_name)
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
