"""What every engine is: one object that knows its Kubernetes kind and everything DLW does with it.

An engine renders a prepared job into objects, reads its state and conditions back, finds a pod's rank
from the labels its controller sets, says where its pod templates live (for the policy gate) and which
RBAC rules a notebook needs to use it. Backends, status, logs, RBAC and policy ask the engine; no other
module names an engine's API group or kind.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..errors import DLWError
from ..types import JobState

if TYPE_CHECKING:
    from ..render.context import RenderContext

JOB_VERBS = ["create", "get", "list", "watch", "delete", "patch"]
READ_VERBS = ["get", "list"]
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class Kind:
    """API coordinates of one namespaced kind."""

    api_version: str
    kind: str
    plural: str

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    @property
    def key(self) -> tuple[str, str]:
        return (self.api_version, self.kind)


@dataclass
class Status:
    state: JobState
    reason: str | None = None
    message: str | None = None
    exit_code: int | None = None
    started: float | None = None
    finished: float | None = None
    attempt: int = 0


def ts(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def true_conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c.get("type"): c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("status") == "True"}


def name_index(pod: dict[str, Any]) -> int:
    """The trailing number of a pod name (``x-worker-2`` -> 2): the fallback when labels are missing."""
    tail = ((pod.get("metadata") or {}).get("name") or "").rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def owned_by(obj: dict[str, Any], owner: dict[str, Any]) -> bool:
    """Whether ``obj`` names ``owner`` among its ownerReferences (by UID, else by kind and name)."""
    meta = owner.get("metadata") or {}
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if meta.get("uid") and ref.get("uid") == meta["uid"]:
            return True
        if ref.get("kind") == owner.get("kind") and ref.get("name") == meta.get("name"):
            return True
    return False


def template_spec(holder: dict[str, Any] | None) -> dict[str, Any]:
    return ((holder or {}).get("template") or {}).get("spec") or {}


class Engine(ABC):
    """One Kubernetes workload kind that runs a DLW job. Subclass, fill in, register (see ``engines``)."""

    name: str
    main: Kind  # the object that *is* the job: created, listed, read, cancelled
    owned: tuple[Kind, ...] = ()  # other kinds it renders besides the ConfigMap (a Service, a runtime)
    # Kinds its scheduler makes beside the job that say why the job waits (read only: ``wait_reason``).
    waits_on: tuple[Kind, ...] = ()
    # Kinds its controller makes from the job, never rendered here, whose CRDs the cluster needs too.
    controller_kinds: tuple[Kind, ...] = ()
    controller = ""  # what the admin installs for this engine (``dlw admin check --cluster`` names it)
    container: str = "trainer"  # the container whose log is the rank's log
    # Names end up as Service names (DNS-1035: a letter first) and pod host names.
    name_rule: re.Pattern[str] = DNS_1035
    name_rule_text = "lower-case letters, digits and '-', starting with a letter (DNS-1035)"
    max_name_length = 52  # host names <name>-worker-<i> (Volcano), <name>-node-0-<i> (JobSet) stay under 63
    # Whether a retry restarts every rank together (a lone restarted rank cannot rejoin a static rendezvous).
    restarts_all_ranks = True
    # How cancel deletes the job: Foreground keeps it (Cancelled, with a deletionTimestamp) until its pods
    # are gone; Background where that last update of the job would be refused (see TrainJobEngine).
    cancel_propagation = "Foreground"

    @property
    def api_version(self) -> str:
        return self.main.api_version

    @property
    def kind(self) -> str:
        return self.main.kind

    @property
    def group(self) -> str:
        return self.main.group

    @property
    def version(self) -> str:
        return self.main.version

    @property
    def plural(self) -> str:
        return self.main.plural

    def kinds(self) -> tuple[Kind, ...]:
        return (self.main, *self.owned)

    def crds(self) -> list[str]:
        """Names of the CustomResourceDefinitions this engine needs (built-in API groups have none)."""
        every = (*self.kinds(), *self.waits_on, *self.controller_kinds)
        return list(dict.fromkeys(f"{k.plural}.{k.group}" for k in every if "." in k.group))

    def check_name(self, name: str) -> None:
        """Refuse, in one line naming the field, a job name this engine's controller would not accept."""
        if len(name) > self.max_name_length or not self.name_rule.match(name):
            raise DLWError(
                f"job {name}: name: the {self.name} engine needs {self.name_rule_text}, "
                f"at most {self.max_name_length} characters (try --name nb-{name.strip('-')[:40]})"
            )

    def check(self, ctx: RenderContext) -> None:
        """Refuse, up front and in one line, a job this engine's controller would not run as asked."""
        self.check_name(ctx.name)
        spec = ctx.spec
        if self.name == "volcano" and ctx.queue_system == "kueue":
            raise DLWError(f"job {spec.name}: engine: volcano jobs are not queued by Kueue (queueSystem: kueue); "
                           "use --engine job, pytorchjob or trainjob")
        if spec.preemptible and ctx.workspace is not None:
            from ..render.volumes import home_shared

            if not home_shared(ctx):
                raise DLWError(
                    f"job {spec.name}: preemptible: a preempted job resumes from DLW_CHECKPOINT_DIR, which needs a "
                    "ReadWriteMany home volume (this workspace's is not, so checkpoints would go with the pod); "
                    "ask the admin for one, or run without preemptible")
        if spec.retries and spec.workers > 1 and not self.restarts_all_ranks:
            from . import get, names

            others = " or ".join(n for n in names() if get(n).restarts_all_ranks)
            raise DLWError(
                f"job {spec.name}: retries: the {self.name} engine restarts a failed rank alone, which cannot "
                f"rejoin the others; use --engine {others}, or retries: 0 with {spec.workers} workers"
            )
        if spec.preemptible and spec.workers > 1 and not self.restarts_all_ranks and ctx.queue_system != "kueue":
            from . import get, names

            others = " or ".join(n for n in names() if get(n).restarts_all_ranks)
            raise DLWError(
                f"job {spec.name}: preemptible: the {self.name} engine restarts an evicted rank alone, which "
                f"cannot rejoin the others; use --engine {others}, or a Kueue queue (Kueue stops and resumes "
                "the whole job)"
            )

    @abstractmethod
    def render(self, ctx: RenderContext) -> list[dict[str, Any]]:
        """The job object first, then what it owns (the backend creates them in this order)."""

    @abstractmethod
    def state(self, obj: dict[str, Any]) -> Status:
        """What the engine's controller says about the job object, before looking at pods."""

    @abstractmethod
    def pod_rank(self, pod: dict[str, Any]) -> int:
        """The node rank of one of the job's pods (0 = the rendezvous), from its controller's labels."""

    @abstractmethod
    def pod_specs(self, obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        """(field path, pod spec) for every pod template inside one of this engine's objects."""

    def wait_reason(self, obj: dict[str, Any], related: list[dict[str, Any]]) -> tuple[str, str] | None:
        """(CamelCase reason, one sentence) for a queued job, from the ``waits_on`` objects it owns."""
        return None

    def created_before_job(self, obj: dict[str, Any]) -> bool:
        """Whether ``obj`` must exist before the job object (the job's admission reads it)."""
        return False

    def rbac_rules(self) -> list[dict[str, Any]]:
        """What a notebook needs to create, follow and cancel jobs of this engine (custom kinds only;
        core kinds are granted once in ``hub.rbac``)."""
        rules: dict[str, list[str]] = {}
        for k in self.kinds():
            if k.group:
                rules.setdefault(k.group, []).append(k.plural)
        out = [{"apiGroups": [g], "resources": sorted(set(p)), "verbs": JOB_VERBS} for g, p in rules.items()]
        read: dict[str, list[str]] = {}
        for k in self.waits_on:
            read.setdefault(k.group, []).append(k.plural)
        return out + [{"apiGroups": [g], "resources": sorted(set(p)), "verbs": READ_VERBS} for g, p in read.items()]
