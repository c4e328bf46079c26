"""Server-side policy for user namespaces: ValidatingAdmissionPolicies (admissionregistration.k8s.io/v1).

The client-side checks (renderer, catalogue) stop honest mistakes; these stop a user who calls the API
directly with the notebook's token. Every engine ends in pods, so one policy on the pods of every
namespace labelled ``dlw.dev/user-namespace`` covers Jobs, Volcano Jobs and PyTorchJobs alike:

* no privileged containers, no added capabilities, no host ports, no host network/PID/IPC, and the rest
  of Pod Security "baseline" (no unmasked /proc, no unconfined seccomp/AppArmor, safe sysctls only),
  since Pod Security Admission cannot enforce baseline in a namespace that allows any hostPath;
* ``hostPath`` only under the admin's ``hostPathAllowlist``, and a per-user catalogue folder
  (``<path>/<user>``) only the namespace's own user's (the ``dlw.dev/user`` label of per-user namespaces).

The allowlist is written into the cluster-scoped policy itself, which only admins can change; a second
policy keeps users from editing the ``dlw-workspace`` ConfigMap the hub writes into their namespace.
Kubernetes CEL is used in its portable subset (``has``, ``all``, ``exists``, ``startsWith``, ``in``),
which the tests evaluate with cel-python.
"""

from __future__ import annotations

import json
from typing import Any

from ..workspace import HostPathVolume, Workspace
from .rbac import PART_OF, USER_LABEL, USER_NAMESPACE_LABEL, WORKSPACE_CONFIGMAP

API = "admissionregistration.k8s.io/v1"
# Pod Security Standards, baseline: the sysctls a pod may set.
SAFE_SYSCTLS = [
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
]


def _q(s: str) -> str:
    return json.dumps(s)  # a CEL string literal (JSON escapes are valid CEL escapes)


def _under(var: str, prefix: str) -> str:
    prefix = prefix.rstrip("/")
    return f"({var} == {_q(prefix)} || {var}.startsWith({_q(prefix + '/')}))"


def host_path_rule(ws: Workspace) -> str:
    """CEL over one path ``p``: under the allowlist, no '..', and per-user folders only for their user."""
    allowed = " || ".join(_under("p", a) for a in ws.host_path_allowlist) or "false"
    rule = f"!p.contains('..') && ({allowed})"
    user = f"namespaceObject.metadata.labels[{_q(USER_LABEL)}]"
    has_user = f"has(namespaceObject.metadata.labels) && {_q(USER_LABEL)} in namespaceObject.metadata.labels"
    for vol in ws.volumes:
        if isinstance(vol, HostPathVolume) and vol.per_user:
            root = vol.path.rstrip("/")
            mine = f"{_q(root + '/')} + {user}"
            own = f"(p == {mine} || p.startsWith({mine} + '/'))"
            # Without the label (the shared scheme, where RBAC cannot tell users apart) the allowlist alone applies.
            rule += f" && (!{_under('p', root)} || !({has_user}) || {own})"
    return rule


def _containers() -> str:
    return ("object.spec.containers + "
            "(has(object.spec.initContainers) ? object.spec.initContainers : [])")


def pod_validations(ws: Workspace) -> list[dict[str, str]]:
    c = "variables.containers"
    sc = "has(c.securityContext)"
    return [
        {"expression": f"!{c}.exists(c, {sc} && has(c.securityContext.privileged) && c.securityContext.privileged)",
         "message": "privileged containers are not allowed in DLW user namespaces"},
        {"expression": f"{c}.all(c, !{sc} || !has(c.securityContext.capabilities) || "
                       "!has(c.securityContext.capabilities.add) || size(c.securityContext.capabilities.add) == 0)",
         "message": "containers may not add Linux capabilities in DLW user namespaces"},
        {"expression": f"{c}.all(c, !has(c.ports) || c.ports.all(x, !has(x.hostPort) || x.hostPort == 0))",
         "message": "host ports are not allowed in DLW user namespaces"},
        {"expression": "!(has(object.spec.hostNetwork) && object.spec.hostNetwork) && "
                       "!(has(object.spec.hostPID) && object.spec.hostPID) && "
                       "!(has(object.spec.hostIPC) && object.spec.hostIPC)",
         "message": "host network, PID and IPC namespaces are not allowed in DLW user namespaces"},
        # The rest of Pod Security "baseline", which the namespace cannot enforce once hostPath is allowed.
        {"expression": f"{c}.all(c, !{sc} || ((!has(c.securityContext.procMount) || "
                       "c.securityContext.procMount == 'Default') && "
                       "(!has(c.securityContext.windowsOptions) || "
                       "!has(c.securityContext.windowsOptions.hostProcess) || "
                       "!c.securityContext.windowsOptions.hostProcess)))",
         "message": "unmasked /proc and Windows host processes are not allowed in DLW user namespaces"},
        {"expression": f"{c}.all(c, !{sc} || ((!has(c.securityContext.seccompProfile) || "
                       "c.securityContext.seccompProfile.type != 'Unconfined') && "
                       "(!has(c.securityContext.appArmorProfile) || "
                       "c.securityContext.appArmorProfile.type != 'Unconfined'))) && "
                       "(!has(object.spec.securityContext) || "
                       "((!has(object.spec.securityContext.seccompProfile) || "
                       "object.spec.securityContext.seccompProfile.type != 'Unconfined') && "
                       "(!has(object.spec.securityContext.appArmorProfile) || "
                       "object.spec.securityContext.appArmorProfile.type != 'Unconfined')))",
         "message": "unconfined seccomp or AppArmor profiles are not allowed in DLW user namespaces"},
        {"expression": "!has(object.spec.securityContext) || !has(object.spec.securityContext.sysctls) || "
                       f"object.spec.securityContext.sysctls.all(s, s.name in {json.dumps(SAFE_SYSCTLS)})",
         "message": "only Pod Security's safe sysctls are allowed in DLW user namespaces"},
        {"expression": "!has(object.spec.volumes) || object.spec.volumes.all(v, !has(v.hostPath) || "
                       f"[v.hostPath.path].all(p, {host_path_rule(ws)}))",
         "message": "hostPath volumes must be under the admin's hostPathAllowlist "
                    f"({', '.join(ws.host_path_allowlist) or 'none'}), in the user's own folder"},
    ]


def _policy(name: str, resources: list[str], operations: list[str], body: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API, "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name, "labels": dict(PART_OF)},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{
                "apiGroups": [""], "apiVersions": ["v1"], "operations": operations, "resources": resources}]},
            **body,
        },
    }


def _binding(name: str) -> dict[str, Any]:
    return {
        "apiVersion": API, "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name, "labels": dict(PART_OF)},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels": {USER_NAMESPACE_LABEL: "true"}}},
        },
    }


def hub_username(ws: Workspace, hub_service_account: str = "hub") -> str:
    return f"system:serviceaccount:{ws.namespaces.hub}:{hub_service_account}"


def admission_policies(ws: Workspace) -> list[dict[str, Any]]:
    """The pod policy and the ConfigMap guard, each with its binding to the user namespaces."""
    pods = f"{ws.name}-user-pods"
    workspace_cm = f"{ws.name}-workspace-configmap"
    return [
        _policy(pods, ["pods"], ["CREATE", "UPDATE"], {
            "variables": [{"name": "containers", "expression": _containers()}],
            "validations": pod_validations(ws),
        }),
        _binding(pods),
        _policy(workspace_cm, ["configmaps"], ["CREATE", "UPDATE", "DELETE"], {
            "matchConditions": [{"name": "not-the-hub",
                                 "expression": f"request.userInfo.username != {_q(hub_username(ws))}"}],
            "validations": [{
                "expression": "(request.operation == 'DELETE' ? oldObject : object).metadata.name != "
                              f"{_q(WORKSPACE_CONFIGMAP)}",
                "message": f"the {WORKSPACE_CONFIGMAP} ConfigMap is the admin's; only the hub writes it"}],
        }),
        _binding(workspace_cm),
    ]
