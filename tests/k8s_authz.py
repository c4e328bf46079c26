"""Kubernetes RBAC, offline: the request attributes of an API path and whether a list of rules allows them.

The API server's authorizer in a few lines (``k8s.io/apiserver/pkg/endpoints/request`` for the
attributes, ``rbac/v1`` rule matching), so tests can replay what a client sent to the kmock emulator
against the Role or ClusterRole DLW renders::

    attrs = request_attributes("GET", "/apis/batch/v1/namespaces/dlw-alice/jobs", {"watch": "true"})
    allowed(role["rules"], attrs)   # verb "watch", group "batch", resource "jobs"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Attributes:
    verb: str
    group: str
    resource: str  # with its subresource: "pods/log"
    namespace: str | None
    name: str | None


def request_attributes(method: str, path: str, query: dict[str, str] | None = None) -> Attributes:
    parts = [p for p in path.strip("/").split("/") if p]
    if parts[0] == "api":
        group, rest = "", parts[2:]
    elif parts[0] == "apis":
        group, rest = parts[1], parts[3:]
    else:
        raise ValueError(f"{path}: not a resource path")
    namespace = None
    if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) != 2:
        namespace, rest = rest[1], rest[2:]
    elif rest[:1] == ["namespaces"] and len(rest) == 2:  # the Namespace object itself
        return _attrs(method, query, group, "namespaces", None, rest[1])
    resource, name = rest[0], rest[1] if len(rest) > 1 else None
    if len(rest) > 2:
        resource += "/" + rest[2]
    return _attrs(method, query, group, resource, namespace, name)


def _attrs(method: str, query: dict[str, str] | None, group: str, resource: str, namespace: str | None,
           name: str | None) -> Attributes:
    method = method.upper()
    if method == "GET":
        watch = (query or {}).get("watch") in ("true", "1")
        verb = "watch" if watch else ("get" if name else "list")
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}[method]
    return Attributes(verb, group, resource, namespace, name)


def allowed(rules: list[dict[str, Any]], attrs: Attributes) -> bool:
    for rule in rules:
        if not ({"*", attrs.group} & set(rule.get("apiGroups", []))):
            continue
        if not ({"*", attrs.resource} & set(rule.get("resources", []))):
            continue
        if not ({"*", attrs.verb} & set(rule.get("verbs", []))):
            continue
        names = rule.get("resourceNames")
        if names and attrs.name not in names:
            continue
        return True
    return False
