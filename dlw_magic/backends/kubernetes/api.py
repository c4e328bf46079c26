"""Thin access to the API server through the official client: config, and generic create/read/list/delete.

Objects travel as plain dicts (what the renderer produces, what kubectl shows) through the official
client's ``call_api``: one code path for core kinds and custom resources, and no model (de)serialisation.
Pod logs use the typed call with ``_preload_content=False`` (raw bytes, streamable).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from ... import settings
from ...errors import DLWError, Unavailable

SA_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
# Client-side limits, so a half-open connection (the server or a proxy gone without a FIN) fails instead of
# hanging: connecting here; the longest silence an answer may have is DLW_K8S_SILENCE_SECONDS (``Api.silence``),
# after which urllib3 retries a GET on a new connection. The server itself ends a plain request after 60 s.
CONNECT_SECONDS = 10.0

# (apiVersion, kind) -> (group, version, plural) of the core kinds; engines add their own (``coordinates``)
CORE_KINDS: dict[tuple[str, str], tuple[str, str, str]] = {
    ("v1", "ConfigMap"): ("", "v1", "configmaps"),
    ("v1", "Service"): ("", "v1", "services"),
    ("v1", "Pod"): ("", "v1", "pods"),
    ("v1", "Event"): ("", "v1", "events"),
    ("batch/v1", "CronJob"): ("batch", "v1", "cronjobs"),  # job definitions on a schedule (dlw schedule)
}


def coordinates(kind: tuple[str, str]) -> tuple[str, str, str]:
    """(group, version, plural) of a core kind or of any kind a registered engine renders."""
    if kind in CORE_KINDS:
        return CORE_KINDS[kind]
    from ...engines import all_engines

    for engine in all_engines():
        for k in (*engine.kinds(), *engine.waits_on):
            if k.key == kind:
                return k.group, k.version, k.plural
    raise DLWError(f"kubernetes: {kind[1]} ({kind[0]}) is not a kind DLW knows")


def api_client(kubeconfig: str | None = None) -> client.ApiClient:
    """DLW_KUBECONFIG / the given file, else in-cluster config (a notebook pod), else ~/.kube/config."""
    path = kubeconfig or settings.current().kubeconfig
    try:
        if path:
            return config.new_client_from_config(config_file=path)
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            cfg = client.Configuration()
            config.load_incluster_config(client_configuration=cfg)
            return client.ApiClient(cfg)
        return config.new_client_from_config()
    except (config.ConfigException, OSError) as err:
        where = path or "~/.kube/config (or in-cluster config)"
        raise DLWError(f"kubernetes: cannot load {where}: {err}") from None


def pod_namespace() -> str | None:
    try:
        return SA_NAMESPACE_FILE.read_text().strip() or None
    except OSError:
        return None


def api_error(err: ApiException, what: str) -> DLWError:
    """One line from an API error: the server's message, not the HTTP dump."""
    message = err.reason or ""
    try:
        body = json.loads(err.body or "{}")
        message = body.get("message") or message
    except (ValueError, TypeError):
        pass
    return DLWError(f"{what}: {err.status} {message}".strip())


# Answers that say "not now" rather than "no": too many requests, and a server (or its proxy) that is away.
RETRY_STATUSES = frozenset({429, 502, 503, 504})


class Api:
    """Generic dict-in, dict-out access for the kinds DLW creates."""

    def __init__(self, api: client.ApiClient) -> None:
        # Raw requests only: the generated typed APIs (CoreV1Api builds its pydantic models at import) cost
        # about a second of CPU per `dlw` command.
        self.client = api
        self.silence = settings.current().k8s_silence_seconds

    def _path(self, group: str, version: str, plural: str, namespace: str, name: str | None = None) -> str:
        base = f"/api/{version}" if not group else f"/apis/{group}/{version}"
        path = f"{base}/namespaces/{namespace}/{plural}"
        return f"{path}/{name}" if name else path

    def call(
        self, method: str, path: str, body: Any = None, query: list[tuple[str, Any]] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        """One raw request; JSON back as dicts (one code path for core kinds and custom resources).
        A server that cannot be reached, or answers that it is unavailable, raises ``Unavailable``."""
        try:
            resp = self.client.call_api(
                *self.client.param_serialize(
                    method=method, resource_path=path, query_params=query or [], body=body,
                    header_params={"Accept": "application/json", "Content-Type": content_type},
                    auth_settings=["BearerToken"],
                ),
                _request_timeout=(CONNECT_SECONDS, self.silence),
            )
            resp.read()
        except urllib3.exceptions.HTTPError as err:
            raise Unavailable(f"the Kubernetes API server cannot be reached: {type(err).__name__}") from err
        if resp.status in RETRY_STATUSES:
            raise Unavailable(f"the Kubernetes API server answered {resp.status} to {method} {path}")
        if not 200 <= resp.status <= 299:
            raise ApiException(http_resp=resp)
        data = resp.data
        return json.loads(data) if data else None

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        group, version, plural = coordinates((obj["apiVersion"], obj["kind"]))
        return self.call("POST", self._path(group, version, plural, obj["metadata"]["namespace"]), obj)

    def read(self, kind: tuple[str, str], namespace: str, name: str) -> dict[str, Any]:
        return self.call("GET", self._path(*coordinates(kind), namespace, name))

    def list(self, kind: tuple[str, str], namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]:
        """Objects whose labels match ``selector``; filtered here too, for servers that ignore selectors."""
        query = [("labelSelector", ",".join(f"{k}={v}" for k, v in selector.items()))]
        items = (self.call("GET", self._path(*coordinates(kind), namespace), query=query) or {}).get("items") or []
        return [o for o in items if _matches(o, selector)]

    def patch(self, kind: tuple[str, str], namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self.call(
            "PATCH", self._path(*coordinates(kind), namespace, name), patch, content_type="application/merge-patch+json"
        )

    def delete(self, kind: tuple[str, str], namespace: str, name: str, propagation: str = "Foreground") -> None:
        # Foreground: the job object stays (with a deletionTimestamp) until its pods are gone.
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        self.call("DELETE", self._path(*coordinates(kind), namespace, name), body)

    def pod_log(
        self, namespace: str, pod: str, container: str, follow: bool = False,
        timeout: float | tuple[float, float] | None = None,  # seconds, or (connect, read)
        timestamps: bool = False, tail: int | None = None,
    ) -> Any:
        """The raw urllib3 response of a pod's log (stream it with ``.stream()``); ``timestamps``: each
        line starts with when it was written (RFC 3339) and a space; ``tail``: only the last lines.
        Without ``timeout``, the answer may be silent for ``silence`` seconds at most."""
        query = [("container", container), ("follow", str(follow).lower()), ("timestamps", str(timestamps).lower())]
        if tail is not None:
            query.append(("tailLines", str(tail)))
        resp = self.client.call_api(
            *self.client.param_serialize(
                method="GET", resource_path=f"/api/v1/namespaces/{namespace}/pods/{pod}/log", query_params=query,
                header_params={"Accept": "*/*"}, auth_settings=["BearerToken"],
            ),
            _request_timeout=timeout or (CONNECT_SECONDS, self.silence),
        )
        if not 200 <= resp.status <= 299:
            resp.read()
            raise ApiException(http_resp=resp)
        return resp.response  # unread: the caller streams it


def _matches(obj: dict[str, Any], selector: dict[str, str]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())
