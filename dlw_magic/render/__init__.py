"""What every engine renders with: the context of a job's render, the pod template, the code ConfigMap.

The engines (``dlw_magic.engines``) build on this package, never the other way round; a job's objects
for its engine come from ``dlw_magic.engines.objects``, which ends every render in
``engines.policy.check_objects``.
"""

from __future__ import annotations

from typing import Any

import yaml

from .. import engine_names, settings
from ..errors import DLWError
from ..types import PreparedJob
from .code import CONFIGMAP_MAX_BYTES, code_source, encoded_size
from .context import CodeSource, RenderContext, job_id_for

__all__ = ["render_context", "to_yaml"]


def load_workspace_arg(workspace: Any = None) -> Any:
    """A Workspace object as given, else load it: path -> DLW_WORKSPACE_CONFIG -> the repo default."""
    from ..workspace import Workspace, load_workspace

    return workspace if isinstance(workspace, Workspace) else load_workspace(workspace)


def user_namespace(ws: Any, user: str, namespace: str | None = None) -> str:
    """The namespace to use, refusing any namespace but the user's own."""
    own = ws.namespace_for(user)
    wanted = namespace or settings.current().namespace or own
    if wanted != own:
        raise DLWError(
            f"namespace {wanted!r} refused: {user}'s jobs run in {own!r} "
            f"(workspace namespaces.scheme: {ws.namespaces.scheme})"
        )
    return own


def _priority_class(ws: Any, prepared: PreparedJob) -> str | None:
    spec = prepared.spec
    if spec.preemptible:
        low = ws.preemptible_priority_class
        if low is None:
            raise DLWError(f"job {spec.name}: preemptible: the workspace has no preemptible priority class "
                           "(priorityClasses[].preemptible: true)")
        if spec.priority is not None and spec.priority not in (low, ws.priority_values[low],
                                                               str(ws.priority_values[low])):
            raise DLWError(f"job {spec.name}: priority: a preemptible job runs at {low}; drop priority or preemptible")
        return low
    prio = spec.priority
    values: dict[str, int] = ws.priority_values
    if prio is None:
        return ws.default_priority_class
    known = ", ".join(f"{n} ({v})" for n, v in values.items()) or "none"
    if isinstance(prio, str) and not prio.lstrip("-").isdigit():
        if values and prio not in values:
            raise DLWError(f"job {prepared.spec.name}: priority: {prio!r} is not a priority class of the workspace "
                           f"(known: {known})")
        return prio
    by_value = [n for n, v in values.items() if v == int(prio)]
    if not by_value:
        raise DLWError(f"job {prepared.spec.name}: priority: {prio} matches no priority class value (known: {known})")
    return by_value[0]


def _queue(ws: Any, prepared: PreparedJob) -> str | None:
    name = prepared.spec.queue
    if ws.queue_system == "none":
        if name:
            raise DLWError(f"job {prepared.spec.name}: queue: the workspace has no queue system (queueSystem: none)")
        return None
    if name is None:
        return ws.default_queue
    if ws.queues:
        ws.queue(name)  # DLWError naming the known queues
    return name


def render_context(
    prepared: PreparedJob, engine: str | None = None, workspace: Any = None, namespace: str | None = None
) -> RenderContext:
    ws = load_workspace_arg(workspace)
    engine = engine or prepared.spec.engine
    if engine not in engine_names.names():  # an unknown engine fails here, in one line
        raise DLWError(f"engine {engine!r} is unknown (choose from {', '.join(engine_names.names())})")
    ns = user_namespace(ws, prepared.user, namespace)
    in_image = prepared.code_in_image
    size = 0 if in_image else encoded_size(prepared.snapshot_dir)
    fits = size <= CONFIGMAP_MAX_BYTES
    ctx = RenderContext(
        prepared=prepared, engine=engine, namespace=ns, job_id=job_id_for(prepared, ns),
        image=prepared.image or prepared.spec.image or ws.images.default, workspace=ws,
        code=CodeSource(in_image=True) if in_image else code_source(prepared.snapshot_dir, prepared.spec.name, fits),
        priority_class=_priority_class(ws, prepared), queue=_queue(ws, prepared), queue_system=ws.queue_system,
    )
    if not fits:
        from .volumes import home_shared

        if not home_shared(ctx):
            raise DLWError(
                f"job {prepared.spec.name}: the code snapshot is {size >> 10} KiB, over the "
                f"{CONFIGMAP_MAX_BYTES >> 10} KiB a ConfigMap holds, and the home volume is not ReadWriteMany: "
                "use build: true, or move data files to a catalogue volume"
            )
    return ctx


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # shared dicts (two replicas' pod templates) are written out in full: no &id/*id for kubectl


def _str(dumper: yaml.SafeDumper, value: str) -> Any:
    # Multi-line strings (the bootstrap, shipped source files) as literal blocks: readable in kubectl diffs.
    style = "|" if "\n" in value and all(line == line.rstrip() for line in value.splitlines()) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(objects: list[dict[str, Any]]) -> str:
    return yaml.dump_all(objects, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=110)
