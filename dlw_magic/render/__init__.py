"""Render a prepared job into Kubernetes objects for one engine (``dlw_magic.engines``).

This package builds what every engine shares (the context, the pod template, the code ConfigMap) and
asks the engine for the rest. Every render ends in ``policy.check_objects``: what leaves this package
is confined to the user's namespace and the admin's catalogue.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from .. import engines, settings
from ..backends.base import PreparedJob
from ..errors import DLWError
from .code import CONFIGMAP_MAX_BYTES, code_source, config_map, encoded_size
from .context import KUEUE_PRIORITY_LABEL, KUEUE_QUEUE_LABEL, SPEC_ANNOTATION, CodeSource, RenderContext, job_id_for
from .policy import check_objects

__all__ = ["objects_for", "render_context", "render_objects", "render_yaml", "to_yaml"]


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
    engines.get(engine)  # an unknown engine fails here, in one line
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


def render_objects(
    prepared: PreparedJob, engine: str | None = None, workspace: Any = None, namespace: str | None = None
) -> list[dict[str, Any]]:
    """The objects to create, in order: the code ConfigMap first, then the job and its Service."""
    return objects_for(render_context(prepared, engine, workspace, namespace))


def objects_for(ctx: RenderContext) -> list[dict[str, Any]]:
    engine = engines.get(ctx.engine)
    engine.check(ctx)
    objects = engine.render(ctx)
    # The spec rides on the job object, so `dlw list/rerun` work for jobs applied with kubectl too.
    objects[0]["metadata"]["annotations"][SPEC_ANNOTATION] = json.dumps(
        {**ctx.spec.to_yaml_dict(), "engine": ctx.engine}, separators=(",", ":"), sort_keys=True)
    if ctx.queue and ctx.queue_system == "kueue":
        objects[0]["metadata"]["labels"][KUEUE_QUEUE_LABEL] = ctx.queue
        wpc = ctx.workspace.priority_class(ctx.priority_class) if ctx.priority_class else None
        if wpc is not None and wpc.workload_priority_class:  # else Kueue takes the pods' PriorityClass
            objects[0]["metadata"]["labels"][KUEUE_PRIORITY_LABEL] = wpc.workload_priority_class
    cm = config_map(ctx)
    if cm is not None:
        objects.insert(0, cm)
    check_objects(objects, ctx.namespace, list(ctx.workspace.host_path_allowlist))
    return objects


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


def render_yaml(prepared: PreparedJob, engine: str | None = None, workspace: Any = None) -> str:
    """Multi-document YAML for ``kubectl apply -f -``."""
    return to_yaml(render_objects(prepared, engine=engine, workspace=workspace))
