"""Validate rendered Kubernetes objects offline: core kinds against the Kubernetes OpenAPI schema
(kubernetes-validate, strict), custom resources against the controllers' own CRDs (``tests/cluster/crds.py``:
read from their Go modules at the versions the cluster suite runs).

Reusable by any test (render, hub, build)::

    from tests.k8s_schema import validate_object, validate_objects
    validate_objects(yaml.safe_load_all(text))   # AssertionError naming kind/name, field path and problem

CRD schemas are structural OpenAPI v3 with Kubernetes extensions; the API server *prunes* unknown fields
instead of refusing them, which would hide typos, so objects here are checked with
``additionalProperties: false`` wherever a schema lists its properties and does not say
``x-kubernetes-preserve-unknown-fields``. ``x-kubernetes-int-or-string`` becomes integer-or-string.
"""

from __future__ import annotations

import functools
from typing import Any

import jsonschema
import kubernetes_validate

from tests.cluster.crds import crds_by_kind

# Pinned: the newest schema kubernetes-validate 1.37.0 carries offline that our features need
# (podFailurePolicy, Indexed Jobs and publishNotReadyAddresses are all GA well before 1.35).
K8S_VERSION = "1.35.0"


def _strict(schema: Any) -> Any:
    """A copy of a CRD schema that refuses unknown fields and knows int-or-string."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if out.pop("x-kubernetes-int-or-string", False) and "anyOf" not in out:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        out.pop("type", None)
    preserve = out.pop("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


@functools.cache
def crd_schema(api_version: str, kind: str) -> dict[str, Any]:
    crd = crds_by_kind()[(api_version, kind)]
    version = api_version.split("/")[1]
    for v in crd["spec"]["versions"]:
        if v["name"] == version:
            schema = _strict(v["schema"]["openAPIV3Schema"])
            # metadata is {type: object} in CRDs: the API server checks it; here only its shape.
            schema["properties"]["metadata"] = {"type": "object"}
            return schema
    raise KeyError(f"{api_version} not served by the {kind} CRD")


def _where(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"


def validate_object(obj: dict[str, Any]) -> None:
    """Raise AssertionError (one line: object, field path, message) when ``obj`` is not valid."""
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key in crds_by_kind():
        try:
            jsonschema.Draft7Validator(crd_schema(*key)).validate(obj)
        except jsonschema.ValidationError as err:
            path = ".".join(str(p) for p in err.absolute_path)
            raise AssertionError(f"{_where(obj)} ({key[0]} CRD): {path}: {err.message}") from None
        return
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as err:
        path = ".".join(str(p) for p in err.path)
        raise AssertionError(f"{_where(obj)} (Kubernetes {K8S_VERSION}): {path}: {err.message}") from None


def validate_objects(objects: Any) -> int:
    """Validate every object (skips empty YAML documents); returns how many were checked."""
    count = 0
    for obj in objects:
        if obj:
            validate_object(obj)
            count += 1
    return count
