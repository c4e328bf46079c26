"""What every engine needs to know besides the spec: namespace, labels, image, workspace, code source.

Built once per render by ``engines.objects.render_objects``; engines only read it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..spec import TrainingJob
from ..types import PreparedJob

LABEL_PREFIX = "dlw.dev"
USER_LABEL = f"{LABEL_PREFIX}/user"
JOB_LABEL = f"{LABEL_PREFIX}/job"
JOB_ID_LABEL = f"{LABEL_PREFIX}/job-id"
ENGINE_LABEL = f"{LABEL_PREFIX}/engine"
EXPERIMENT_LABEL = f"{LABEL_PREFIX}/experiment"  # a sweep's trials (dlw_magic.experiments)
TRIAL_LABEL = f"{LABEL_PREFIX}/trial"
SPEC_ANNOTATION = f"{LABEL_PREFIX}/spec"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
KUEUE_PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"  # names a Kueue WorkloadPriorityClass
MASTER_PORT = 29500
DEFAULT_TTL_SECONDS = 7 * 24 * 3600  # finished jobs (and their logs) stay a week unless the admin says otherwise
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def label_value(text: str) -> str:
    """A label-safe form of ``text`` (hub user names may hold '@', '+', ...); unchanged when already safe.

    Unsafe names get a short hash suffix so two users never share a label value.
    """
    if len(text) <= 63 and _LABEL_VALUE.match(text):
        return text
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-_.")[:50].rstrip("-_.")
    return f"{safe}-{hashlib.sha256(text.encode()).hexdigest()[:8]}".lstrip("-")


def job_id_for(prepared: PreparedJob, namespace: str) -> str:
    """The backend puts a fresh id in provenance; a plain render derives a stable one (golden files)."""
    given = prepared.provenance.get("job_id")
    if given:
        return str(given)
    seed = f"{namespace}/{prepared.spec.name}/{prepared.snapshot_hash}"
    return hashlib.sha256(seed.encode()).hexdigest()[:12]


@dataclass
class CodeSource:
    """Where the pod finds the snapshot: a ConfigMap (small) or a sub folder of the user's home volume."""

    config_map: str | None = None
    config_map_items: list[dict[str, str]] = field(default_factory=list)
    home_sub_path: str | None = None
    in_image: bool = False  # built by `build`: the snapshot is a layer of the image itself


@dataclass
class RenderContext:
    prepared: PreparedJob
    engine: str
    namespace: str
    job_id: str
    image: str
    workspace: Any  # dlw_magic.workspace.Workspace, or None when no admin YAML applies
    code: CodeSource
    priority_class: str | None = None
    queue: str | None = None
    queue_system: str = "none"  # volcano | kueue | none (the workspace's queueSystem)
    ttl_seconds: int = DEFAULT_TTL_SECONDS

    @property
    def spec(self) -> TrainingJob:
        return self.prepared.spec

    @property
    def name(self) -> str:
        return self.prepared.spec.name

    @property
    def service_name(self) -> str:
        return self.name

    def labels(self) -> dict[str, str]:
        labels = {
            "app.kubernetes.io/managed-by": "dlw",
            USER_LABEL: label_value(self.prepared.user),
            JOB_LABEL: self.name,
            JOB_ID_LABEL: self.job_id,
            ENGINE_LABEL: self.engine,
        }
        experiment = self.prepared.provenance.get("experiment")
        if experiment:
            labels[EXPERIMENT_LABEL] = label_value(str(experiment))
            labels[TRIAL_LABEL] = str(self.prepared.provenance.get("trial", ""))
        return labels

    def annotations(self) -> dict[str, str]:
        """Unabridged facts that do not fit in labels (the raw user name, the snapshot hash)."""
        out = {f"{LABEL_PREFIX}/user": self.prepared.user, f"{LABEL_PREFIX}/snapshot": self.prepared.snapshot_hash}
        nb = self.prepared.provenance.get("notebook") or self.prepared.provenance.get("script")
        if nb:
            out[f"{LABEL_PREFIX}/source"] = Path(str(nb)).name  # the full path is in the shipped job.yaml
        return out

    def metadata(self, name: str | None = None, extra_labels: dict[str, str] | None = None) -> dict[str, Any]:
        return {
            "name": name or self.name,
            "namespace": self.namespace,
            "labels": {**self.labels(), **(extra_labels or {})},
            "annotations": self.annotations(),
        }
