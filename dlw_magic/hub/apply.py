"""Create-or-update of plain manifest dicts with the hub's async Kubernetes client (``kubectl apply`` lite).

The hub applies ``deploy.namespace_objects`` at every spawn: a missing object is created, an existing one
gets a JSON merge patch with the rendered fields, so a changed admin YAML (new ConfigMap text, new quota,
new Blob PV options) reaches namespaces set up before the change. Fields Kubernetes makes immutable (a
PV's source) cannot follow: that object is logged and left, the rest still applied.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

# The hub's RoleBinding in a new user namespace reaches the API server's RBAC cache a moment after it is
# created; requests that need it wait this long for it (403s) before failing.
RBAC_SETTLE_S = 10.0

# kind -> (plural, namespaced): the kinds deploy.namespace_objects renders
RESOURCES: dict[str, tuple[str, bool]] = {
    "Namespace": ("namespaces", False),
    "PersistentVolume": ("persistentvolumes", False),
    "ServiceAccount": ("serviceaccounts", True),
    "ConfigMap": ("configmaps", True),
    "Secret": ("secrets", True),
    "ResourceQuota": ("resourcequotas", True),
    "PersistentVolumeClaim": ("persistentvolumeclaims", True),
    "RoleBinding": ("rolebindings", True),
    "NetworkPolicy": ("networkpolicies", True),
    "LocalQueue": ("localqueues", True),
}


def collection_path(obj: dict[str, Any]) -> str:
    """``/api/v1/namespaces/ns/configmaps`` for a ConfigMap in ns, ``/api/v1/persistentvolumes`` for a PV."""
    plural, namespaced = RESOURCES[obj["kind"]]
    version = obj["apiVersion"]
    base = f"/api/{version}" if "/" not in version else f"/apis/{version}"
    if namespaced:
        base += f"/namespaces/{obj['metadata']['namespace']}"
    return f"{base}/{plural}"


async def _call(api_client: Any, path: str, method: str, body: dict[str, Any] | None, content_type: str) -> Any:
    from kubernetes_asyncio.client.exceptions import ApiException

    loop = asyncio.get_running_loop()
    deadline = loop.time() + RBAC_SETTLE_S
    pause = 0.05  # the RBAC cache usually has it within milliseconds: retry soon, then back off
    while True:
        try:
            return await api_client.call_api(
                path, method, header_params={"Content-Type": content_type, "Accept": "application/json"},
                body=body, auth_settings=["BearerToken"], response_types_map={200: "object", 201: "object"},
                _return_http_data_only=True,  # and _preload_content (default): only then are HTTP errors raised
            )
        except ApiException as e:
            if e.status != 403 or loop.time() > deadline:
                raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.5)


async def _released_claim(api_client: Any, path: str, obj: dict[str, Any]) -> dict[str, Any]:
    """A Blob PV whose claim was deleted (its namespace recreated) keeps the old claim's uid and never binds
    the new claim: clear the uid so the PV controller binds the claim of the same name again."""
    if obj["kind"] != "PersistentVolume":
        return obj
    current = await _call(api_client, path, "GET", None, "application/json") or {}
    phase = (current.get("status") or {}).get("phase")
    if phase != "Released":
        return obj
    claim = {**obj["spec"].get("claimRef", {}), "uid": None, "resourceVersion": None}
    return {**obj, "spec": {**obj["spec"], "claimRef": claim}}


# Objects are applied in waves, each wave's requests at once: cluster-scoped objects first (the namespace;
# each PV before its PVC), then the RoleBindings (the hub's own rights in a new namespace among them), then
# the rest. At every spawn this is ~3 round trips of requests, not two for each object one after another.
WAVES = ({"Namespace", "PersistentVolume"}, {"RoleBinding"})


async def _apply_one(api_client: Any, obj: dict[str, Any], log: logging.Logger) -> None:
    from kubernetes_asyncio.client.exceptions import ApiException

    path = collection_path(obj)
    try:
        await _call(api_client, path, "POST", obj, "application/json")
        return
    except ApiException as e:
        if e.status != 409:
            raise
    name = obj["metadata"]["name"]
    try:
        patch = await _released_claim(api_client, f"{path}/{name}", obj)
        await _call(api_client, f"{path}/{name}", "PATCH", patch, "application/merge-patch+json")
    except ApiException as e:
        if e.status != 422:
            raise
        log.warning("%s %s: cannot be updated in place (%s); delete it to apply the admin's change",
                    obj["kind"], name, e.reason)


async def apply_objects(api_client: Any, objects: list[dict[str, Any]], log: logging.Logger) -> None:
    """Create each object, or merge-patch it where it exists (409), wave by wave (``WAVES``). Other errors
    raise, except 422 on a patch (an immutable field changed), which is logged."""
    def wave(obj: dict[str, Any]) -> int:
        return next((i for i, kinds in enumerate(WAVES) if obj["kind"] in kinds), len(WAVES))

    for i in range(len(WAVES) + 1):
        await asyncio.gather(*(_apply_one(api_client, o, log) for o in objects if wave(o) == i))
