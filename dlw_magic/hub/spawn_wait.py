"""Why a notebook waits, on the hub's spawn page: one sentence beside KubeSpawner's raw pod events.

JupyterHub's spawn-pending page shows the messages of ``Spawner.progress()``; KubeSpawner yields the pod's
events there as they come ("0/3 nodes are available: 3 Insufficient nvidia.com/gpu", "pod triggered
scale-up: ..."). A researcher waiting for a GPU wants the meaning, so after each event the page also gets
the sentence ``waits.object_reason`` makes of the events shown so far (the same sentence ``dlw status``
gives a queued job), when it changed. When the spawn gives up the last sentence goes into the error the page
shows; a pod the namespace's quota refuses fails at once with the quota sentence instead of the raw 403.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from kubernetes_asyncio.client.rest import ApiException

from ..backends.kubernetes.waits import GpuAsk, object_reason, quota_sentence
from . import profiles as prof

__all__ = ["SpawnRefused", "SpawnTimeout", "notebook_gpu_ask", "quota_refusal", "spawn_timeout", "wait_sentence",
           "with_wait_sentences"]

WHO = "your notebook"
# The hub gives up after start_timeout counted from about when the spawner's own clock starts; the spawner
# gives up this much earlier, so that its error, naming why, is the one the page shows.
START_MARGIN_S = 2.0


class SpawnTimeout(TimeoutError):
    """The notebook did not start in time; ``str()`` (what the page shows) says what it waited for."""


class SpawnRefused(RuntimeError):
    """The cluster refused the notebook's pod for a reason the user can act on."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.jupyterhub_message = message  # JupyterHub shows this after "Spawn failed: "


def _plain(sentence: str) -> str:
    return sentence[:1].upper() + sentence[1:]


def notebook_gpu_ask(spawner: Any) -> GpuAsk | None:
    """The GPUs the chosen profile asks for (after ``load_user_options``): resource, count and type."""
    asked = [(k, int(v)) for k, v in (spawner.extra_resource_limits or {}).items()
             if k.startswith("nvidia.com/") and str(v).isdigit()]
    if not asked:
        return None
    product = (spawner.node_selector or {}).get(prof.GPU_PRODUCT_LABEL, "")
    return GpuAsk(asked[0][0], sum(n for _, n in asked), product)


def _pod_pending(spawner: Any) -> bool:
    reflector = spawner.pod_reflector
    pod = reflector.pods.get(f"{spawner.namespace}/{spawner.pod_name}") if reflector else None
    return pod is None or ((pod.get("status") or {}).get("phase") or "Pending") == "Pending"


def wait_sentence(spawner: Any, events: list[dict[str, Any]] | None = None) -> str | None:
    """Why the notebook pod waits, from ``events`` (default: all of this spawn's), or None once it runs."""
    if not _pod_pending(spawner):
        return None
    found = object_reason(spawner.events if events is None else events, WHO, notebook_gpu_ask(spawner))
    return _plain(found[1]) if found else None


async def with_wait_sentences(
    spawner: Any, upstream: AsyncGenerator[dict[str, Any], None]
) -> AsyncGenerator[dict[str, Any], None]:
    """KubeSpawner's progress events, each pod event followed by the wait sentence when it changed."""
    shown: list[dict[str, Any]] = []
    last = None
    async with aclosing(upstream) as events:
        async for event in events:
            yield event
            if "raw_event" not in event:
                continue
            shown.append(event["raw_event"])
            sentence = wait_sentence(spawner, shown)
            if sentence and sentence != last:
                last = sentence
                yield {"message": sentence}


def spawn_timeout(spawner: Any, err: Exception) -> SpawnTimeout:
    """The timeout error the page shows, ending with why the pod still waits when the cluster said."""
    head = str(err).rstrip("!. ") or f"Your notebook did not start in {spawner.start_timeout} seconds"
    sentence = wait_sentence(spawner)
    return SpawnTimeout(f"{head}. {sentence}" if sentence else head)


def quota_refusal(err: ApiException) -> SpawnRefused | None:
    """A ResourceQuota's 403 on creating the pod, as a sentence (the API's Status message says which)."""
    if err.status != 403:
        return None
    try:
        message = json.loads(err.body or "{}").get("message") or ""
    except (TypeError, ValueError):
        message = str(err.body or "")
    if "exceeded quota" not in message:
        return None
    return SpawnRefused(_plain(quota_sentence(message, "the notebook")))
