"""The admin YAML applied to a KubeSpawner hub: ``configure(c)`` in ``jupyterhub_config.py``.

What a user gets when they pick a profile:

* the profile's image, CPU/memory guarantee and limit, node selector on ``nvidia.com/gpu.product`` and
  the GPU toleration; the ``gpus`` option sets the ``nvidia.com/gpu`` (or MIG) limit;
* the home volume plus the profile's catalogue volumes, mounted by ``workspace.pod_volumes`` (the same
  function the job renderer uses) and *merged* with whatever volumes the spawner already has;
* env ``DLW_PROFILE``, ``DLW_GPUS``, ``DLW_GPU_TYPE``, ``DLW_IMAGE``, ``DLW_NAMESPACE`` (read off the
  finished spawner settings), ``DLW_WORKSPACE_CONFIG``, ``DLW_BACKEND=kubernetes``;
* the ``dlw-notebook`` ServiceAccount, whose RoleBinding to the notebook ClusterRole lets it manage jobs
  in its own namespace only. With ``namespaces.scheme: per-user`` the spawner creates that namespace
  (labelled for the admission policies, Pod Security and Kueue) and, at every spawn, creates or updates
  what ``deploy.namespace_objects`` lists (account, RoleBinding, ConfigMap, NetworkPolicy, GPU quota,
  LocalQueues, Blob PV/PVC) plus a copy of the image pull Secret;
* the command ``jupyterhub-singleuser`` (with KubeSpawner's ``--ip``/``--port``), as z2jh's ``singleuser.cmd``
  gives it, unless the chart already sets one;
* ``JUPYTERHUB_API_URL`` naming the hub by its FQDN, since z2jh's ``http://hub:8081`` resolves only in
  the hub's namespace;
* on the spawn page, while the pod waits, one sentence saying why (``spawn_wait``: a GPU node the
  autoscaler is adding, no node group that fits, an image pull, the quota), also in the timeout error.

Only profiles whose ``groups`` include one of the user's groups are offered (and accepted).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from kubernetes_asyncio.client.rest import ApiException
from kubespawner import KubeSpawner
from traitlets import Unicode, default

from ..workspace import POD_GID, POD_UID, WORKSPACE_MOUNT, Workspace, home_claim_name, pod_volumes, workspace_path
from . import profiles as prof
from . import rbac, spawn_wait
from .apply import apply_objects
from .auth import apply_auth
from .culler import add_culler, add_gpu_culler, culler_service  # noqa: F401 - part of this module's API
from .deploy import namespace_objects
from .workspace_cache import cached_workspace, user_groups

WORKSPACE_DIR = str(Path(WORKSPACE_MOUNT).parent)
WORKSPACE_VOLUME = {"name": "dlw-workspace", "configMap": {"name": rbac.WORKSPACE_CONFIGMAP}}
WORKSPACE_VOLUME_MOUNT = {"name": "dlw-workspace", "mountPath": WORKSPACE_DIR, "readOnly": True}
# As job pods get (render.pod): the runtime's 64 MiB /dev/shm kills DataLoader workers; charged to the pod's memory.
SHM_VOLUME = {"name": "dlw-shm", "emptyDir": {"medium": "Memory"}}
SHM_VOLUME_MOUNT = {"name": "dlw-shm", "mountPath": "/dev/shm"}
log = logging.getLogger(__name__)


def hub_fqdn_url(url: str, hub_namespace: str, cluster_domain: str = "cluster.local") -> str:
    """``http://hub:8081/x`` -> ``http://hub.<ns>.svc.<domain>:8081/x``; hosts with a dot are kept."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host or "." in host:
        return url
    netloc = f"{host}.{hub_namespace}.svc.{cluster_domain}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _by_name(items: Any) -> list[dict[str, Any]]:
    return list(items.values()) if isinstance(items, dict) else list(items or [])


def merge_named(existing: Any, extra: list[dict[str, Any]], key: str = "name") -> list[dict[str, Any]]:
    """``existing`` plus those of ``extra`` whose name is new: profiles add volumes, never replace them."""
    out = _by_name(existing)
    # z2jh's own additions may be client model objects (V1Container), not dicts
    seen = {item.get(key) if isinstance(item, dict) else getattr(item, key, None) for item in out}
    out.extend(item for item in extra if item.get(key) not in seen)
    return out


def volume_overrides(ws: Workspace, profile_name: str) -> dict[str, Any]:
    """Callables KubeSpawner calls with the spawner: per-user volumes merged into the existing ones."""
    profile = ws.profile(profile_name)
    names = ([ws.home.name] if ws.home else []) + list(profile.volumes)
    wanted_tolerations = prof.profile_override(ws, profile).get("tolerations", [])
    per_user: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}

    def for_user(user: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        if user not in per_user:
            if len(per_user) > 4096:
                per_user.clear()
            per_user[user] = pod_volumes(ws, names, user)
        return per_user[user]

    def volumes(spawner: KubeSpawner) -> list[dict[str, Any]]:
        return merge_named(spawner.volumes, for_user(spawner.user.name)[0])

    def volume_mounts(spawner: KubeSpawner) -> list[dict[str, Any]]:
        return merge_named(spawner.volume_mounts, for_user(spawner.user.name)[1])

    def tolerations(spawner: KubeSpawner) -> list[dict[str, Any]]:
        current = _by_name(spawner.tolerations)
        return current + [t for t in wanted_tolerations if t not in current]

    out: dict[str, Any] = {"volumes": volumes, "volume_mounts": volume_mounts}
    if wanted_tolerations:
        out["tolerations"] = tolerations
    return out


def kube_profile_list(ws: Workspace, groups: list[str] | None = None) -> list[dict[str, Any]]:
    """Entries as KubeSpawner's ``_get_initialized_profile_list`` would leave them (slug, one default
    profile, a default choice, ``unlisted_choice`` off), plus the per-user volume callables."""
    entries = prof.profile_list(ws, groups)
    if entries and not any(e["default"] for e in entries):
        entries[0]["default"] = True  # the admin's default is not open to these groups
    for entry in entries:
        entry["kubespawner_override"].update(volume_overrides(ws, entry["slug"]))
        for option in entry.get("profile_options", {}).values():
            option["unlisted_choice"] = {"enabled": False}
    return entries


class DLWKubeSpawner(KubeSpawner):
    """KubeSpawner reading the admin YAML: per-user namespace, home claim name and namespace set-up."""

    workspace_config = Unicode(
        "", config=True, help="Admin YAML path; empty: $DLW_WORKSPACE_CONFIG or the shipped default."
    )

    @property
    def workspace(self) -> Workspace:
        return cached_workspace(self.workspace_config or None)

    @default("apply_user_options")
    def _apply_user_options_default(self) -> Any:
        # KubeSpawner applies profile and options itself (load_user_options, at start); saying so here keeps
        # JupyterHub (>= 5.3) from logging at every spawn that the options went unhandled.
        return lambda spawner, user_options: None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        ws = self.workspace
        if ws.namespaces.scheme == "per-user":
            self.namespace = ws.namespace_for(self.user.name)
            self.dns_name = self.dns_name_template.format(namespace=self.namespace, name=self.pod_name)
        if ws.home is not None:
            # The same claim name a job gets from workspace.home_claim_name (KubeSpawner's own slug differs).
            self.pvc_name = home_claim_name(ws.home, self.user.name)

    def _get_initialized_profile_list(self, profile_list: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # Our lists are built initialized and nothing in a spawn mutates them (no unlisted choices;
        # overrides hold only scalars, flat dicts and callables), so skip KubeSpawner's per-spawn deep copy.
        if any(profile_list is entries for _, entries in _PROFILE_CACHE.values()):
            return profile_list
        return super()._get_initialized_profile_list(profile_list)

    async def progress(self) -> AsyncGenerator[dict[str, Any], None]:
        async with aclosing(spawn_wait.with_wait_sentences(self, super().progress())) as events:
            async for event in events:
                yield event

    async def _start(self) -> Any:
        # Give up just before the hub does, with an error that says why the pod still waits.
        limit = self.start_timeout - spawn_wait.START_MARGIN_S
        try:
            if limit <= 0:
                return await super()._start()
            return await asyncio.wait_for(super()._start(), limit)
        except TimeoutError as err:  # one class from Python 3.11 on
            raise spawn_wait.spawn_timeout(self, err) from err

    async def _make_create_pod_request(self, pod: Any, request_timeout: int) -> bool:
        try:
            return bool(await super()._make_create_pod_request(pod, request_timeout))
        except ApiException as err:
            refused = spawn_wait.quota_refusal(err)
            if refused is None:
                raise
            raise refused from None

    def get_env(self) -> dict[str, str]:
        env = super().get_env()
        ws = self.workspace
        profile = (self.user_options or {}).get("profile") or ws.default_profile.name
        gpus = sum(int(v) for k, v in self.extra_resource_limits.items() if k.startswith("nvidia.com/"))
        env.update({
            "DLW_PROFILE": profile,
            "DLW_GPUS": str(gpus),
            "DLW_GPU_TYPE": self.node_selector.get(prof.GPU_PRODUCT_LABEL, ""),
            "DLW_IMAGE": self.image,
            "DLW_NAMESPACE": self.namespace,
            "DLW_GROUPS": ",".join(user_groups(self.user)),  # budgets by group (dlw_magic.usage)
        })
        return env

    async def _ensure_namespace(self) -> None:
        await super()._ensure_namespace()
        await self.ensure_user_objects()

    async def ensure_user_objects(self) -> None:
        """Create or update what the user's namespace needs (``deploy.namespace_objects``), so a changed
        admin YAML reaches it at the next spawn; copy the image pull Secret from the hub's namespace."""
        ws = self.workspace
        text = workspace_path(self.workspace_config or None).read_text(encoding="utf-8")
        objects = namespace_objects(ws, self.namespace, text, self.user.name, user_groups(self.user))
        pull = ws.images.pull_secret
        if pull:
            secret = await self.api.read_namespaced_secret(pull, ws.namespaces.hub)
            objects.append({"apiVersion": "v1", "kind": "Secret", "type": secret.type, "data": secret.data,
                            "metadata": {"name": pull, "namespace": self.namespace,
                                         "labels": dict(rbac.PART_OF)}})
        await apply_objects(self.api.api_client, objects, log)


_PROFILE_CACHE: dict[tuple[int, tuple[str, ...]], tuple[Workspace, list[dict[str, Any]]]] = {}


def _profile_list_for(ws: Workspace, groups: tuple[str, ...]) -> list[dict[str, Any]]:
    # One list per (workspace, group set), shared by spawns: nothing in a spawn mutates it (see
    # DLWKubeSpawner._get_initialized_profile_list). A new admin YAML is a new Workspace object.
    key = (id(ws), groups)
    hit = _PROFILE_CACHE.get(key)
    if hit is not None and hit[0] is ws:
        return hit[1]
    if len(_PROFILE_CACHE) > 256:
        _PROFILE_CACHE.clear()
    entries = kube_profile_list(ws, list(groups))
    _PROFILE_CACHE[key] = (ws, entries)
    return entries


def profile_list_callable(ws_path: str | None = None) -> Any:
    """``KubeSpawner.profile_list``: the profiles the spawning user's groups allow, built once per group set
    (and again when the admin YAML changes)."""

    def for_spawner(spawner: KubeSpawner) -> list[dict[str, Any]]:
        return _profile_list_for(cached_workspace(ws_path), tuple(sorted(user_groups(spawner.user))))

    return for_spawner


def spawner_settings(ws: Workspace, ws_path: str | None = None) -> dict[str, Any]:
    """KubeSpawner trait values (beyond profiles) the admin YAML implies."""
    settings: dict[str, Any] = {
        "profile_list": profile_list_callable(ws_path),
        "enable_user_namespaces": ws.namespaces.scheme == "per-user",
        "service_account": ws.hub.service_account,
        "automount_service_account_token": True,
        # As z2jh's singleuser.cmd: without it KubeSpawner runs the image's CMD and drops its own --ip/--port
        # arguments, and a profile image whose CMD is not the notebook server never comes up.
        "cmd": "jupyterhub-singleuser",
        "allow_privilege_escalation": False,
        "privileged": False,
        "uid": POD_UID,
        "fs_gid": POD_GID,
        # Pod Security "restricted", as the user namespaces' admission policy asks of every pod.
        "pod_security_context": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "container_security_context": {"runAsNonRoot": True, "allowPrivilegeEscalation": False,
                                       "capabilities": {"drop": ["ALL"]},
                                       "seccompProfile": {"type": "RuntimeDefault"}},
        "priority_class_name": ws.notebook_priority_class[0],
        "start_timeout": ws.hub.start_timeout,  # over z2jh's singleuser.startTimeout (300 s): GPU nodes boot slowly
        "image": ws.default_profile.image,
        "volumes": [WORKSPACE_VOLUME, SHM_VOLUME],
        "volume_mounts": [WORKSPACE_VOLUME_MOUNT, SHM_VOLUME_MOUNT],
        "environment": {
            "DLW_BACKEND": "kubernetes",
            "DLW_WORKSPACE_CONFIG": WORKSPACE_MOUNT,
        },
        # z2jh's hub NetworkPolicy admits pods with this label (from other namespaces too, see deploy).
        "extra_labels": {**rbac.PART_OF, rbac.HUB_ACCESS_LABEL: "true"},
    }
    if ws.namespaces.scheme == "shared":
        settings["namespace"] = ws.namespaces.shared
    else:
        # KubeSpawner labels the namespaces it creates; ensure_user_objects adds the user's own label.
        settings["user_namespace_labels"] = rbac.namespace_labels(ws)
    if ws.images.pull_secret:
        settings["image_pull_secrets"] = [ws.images.pull_secret]
    home = ws.home
    if home is not None:
        settings.update(
            storage_pvc_ensure=True,
            storage_capacity=home.size,
            storage_access_modes=list(home.access_modes),
        )
        if home.storage_class:
            settings["storage_class"] = home.storage_class
    return settings


def configure(c: Any, path: str | None = None, cull: bool = True) -> Workspace:
    """Apply the admin YAML to a JupyterHub config object ``c`` (KubeSpawner). Returns the workspace."""
    ws = cached_workspace(path)
    c.JupyterHub.spawner_class = DLWKubeSpawner
    if path:
        c.DLWKubeSpawner.workspace_config = str(path)
    for trait, value in spawner_settings(ws, path).items():
        current = c.KubeSpawner.get(trait, None)
        if trait == "cmd" and current:  # the chart's singleuser.cmd (the admin's choice) stays
            continue
        if isinstance(value, list) and current:  # keep what the chart (z2jh) already mounts
            value = merge_named(current, value) if trait.startswith("volume") else [*current, *value]
        elif isinstance(value, dict) and isinstance(current, dict):
            value = {**current, **value}
        setattr(c.KubeSpawner, trait, value)
    if ws.hub.admin_users:
        c.Authenticator.admin_users = set(ws.hub.admin_users)
    apply_auth(c, ws)
    connect = c.JupyterHub.get("hub_connect_url", None)
    if connect and ws.namespaces.scheme == "per-user":  # z2jh's short name resolves in its namespace only
        c.JupyterHub.hub_connect_url = hub_fqdn_url(connect, ws.namespaces.hub, ws.hub.cluster_domain)
    if cull:
        add_culler(c, ws)
    add_gpu_culler(c, ws, str(workspace_path(path)))  # z2jh's culler counts browser activity only
    return ws
