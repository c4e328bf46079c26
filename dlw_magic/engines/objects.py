"""A prepared job's Kubernetes objects for its engine, in the order they are created.

The render context and the shared pieces come from ``dlw_magic.render``; the engine adds its job object.
Every render ends in ``policy.check_objects``: what leaves here is confined to the user's namespace and
the admin's catalogue.
"""

from __future__ import annotations

import json
from typing import Any

from ..render import render_context, to_yaml
from ..render.code import config_map
from ..render.context import KUEUE_PRIORITY_LABEL, KUEUE_QUEUE_LABEL, SPEC_ANNOTATION, RenderContext
from ..types import PreparedJob
from . import get
from .policy import check_objects

__all__ = ["objects_for", "render_objects", "render_yaml"]


def render_objects(
    prepared: PreparedJob, engine: str | None = None, workspace: Any = None, namespace: str | None = None
) -> list[dict[str, Any]]:
    """The objects to create, in order: the code ConfigMap first, then the job and its Service."""
    return objects_for(render_context(prepared, engine, workspace, namespace))


def objects_for(ctx: RenderContext) -> list[dict[str, Any]]:
    engine = get(ctx.engine)
    engine.check(ctx)
    objects = engine.render(ctx)
    # The spec rides on the job object, so `dlw list/rerun` work for jobs applied with kubectl too.
    objects[0]["metadata"]["annotations"][SPEC_ANNOTATION] = json.dumps(
        {**ctx.spec.to_yaml_dict(), "engine": ctx.engine}, separators=(",", ":"), sort_keys=True
    )
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


def render_yaml(prepared: PreparedJob, engine: str | None = None, workspace: Any = None) -> str:
    """Multi-document YAML for ``kubectl apply -f -``."""
    return to_yaml(render_objects(prepared, engine=engine, workspace=workspace))
