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

from ..workspace import WORKSPACE_CONFIGMAP, Workspace
from .rbac import PART_OF, USER_LABEL, USER_NAMESPACE_LABEL

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


def _is(var: str, path: str) -> str:
    """``var`` is ``path`` (or ``path/``): compared as written, so ``//``, ``/./`` or ``..`` spellings of an
    allowed folder are refused, not normalised into it (the node resolves them; the policy would not)."""
    path = path.rstrip("/") or "/"
    return f"({var} == {_q(path)} || {var} == {_q(path + '/')})"


def _subpath_ok(v: str) -> str:
    """Every mount of pod volume ``v`` picks the user's own folder by ``subPath`` (the kubelet keeps a subPath
    inside its volume, symlinks included); without the namespace's user label (shared scheme) one folder."""
    own = ("(variables.user != '' ? m.subPath == variables.user : "
           "(m.subPath != '' && m.subPath != '.' && !m.subPath.contains('/')))")
    return (f"variables.containers.exists(c, has(c.volumeMounts) && c.volumeMounts.exists(m, m.name == {v}.name)) && "
            f"variables.containers.all(c, !has(c.volumeMounts) || c.volumeMounts.all(m, m.name != {v}.name || "
            f"(has(m.subPath) && !has(m.subPathExpr) && {own})))")


def host_path_rule(ws: Workspace) -> str:
    """CEL over one hostPath volume ``v`` (its path ``p``): exactly a shared root (``ws.host_path_roots``), or
    exactly a per-user root mounted only at ``subPath: <user>``, or exactly the user's own folder; nothing
    below any of them (a pod could plant a symlink there that a later pod's hostPath would follow)."""
    shared, per_user = ws.host_path_roots()
    rules = [_is("p", s) for s in shared]
    for root in per_user:
        rules.append(f"({_is('p', root)} && {_subpath_ok('v')})")
        base = root.rstrip("/")
        rules.append(f"(variables.user != '' && (p == {_q(base + '/')} + variables.user || "
                     f"p == {_q(base + '/')} + variables.user + '/'))")
    return " || ".join(rules) or "false"


def _containers() -> str:
    return ("object.spec.containers + "
            "(has(object.spec.initContainers) ? object.spec.initContainers : []) + "
            "(has(object.spec.ephemeralContainers) ? object.spec.ephemeralContainers : [])")


def _user() -> str:
    labels = "namespaceObject.metadata.labels"
    return f"has({labels}) && {_q(USER_LABEL)} in {labels} ? {labels}[{_q(USER_LABEL)}] : ''"


def builder_image(ws: Workspace) -> str:
    """The admin's Kaniko image (``build.kaniko``): the one image that may run as root (it unpacks base images)."""
    from ..build.kaniko import BUILDER_TAG

    return f"{ws.images.registry}/{BUILDER_TAG}"


def _builder(ws: Workspace) -> str:
    return (f"variables.containers.all(c, c.image == {_q(builder_image(ws))}) && "
            "(!has(object.spec.volumes) || object.spec.volumes.all(v, !has(v.hostPath)))")


# Pod Security "baseline": SELinux types a container may ask for.
SELINUX_TYPES = ["", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"]


def _selinux_ok(sc: str) -> str:
    o = f"{sc}.seLinuxOptions"
    return (f"(!has({sc}) || !has({o}) || ((!has({o}.type) || {o}.type in {json.dumps(SELINUX_TYPES)}) && "
            f"!has({o}.user) && !has({o}.role)))")


def pod_validations(ws: Workspace) -> list[dict[str, str]]:
    c = "variables.containers"
    sc = "has(c.securityContext)"
    psc = "object.spec.securityContext"
    has_psc = f"has({psc})"
    seccomp_ok = "['RuntimeDefault', 'Localhost']"
    classes = [p.name for p in ws.priority_classes] + [ws.notebook_priority_class[0]]
    out = [
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
                       f"(!{has_psc} || "
                       f"((!has({psc}.seccompProfile) || {psc}.seccompProfile.type != 'Unconfined') && "
                       f"(!has({psc}.appArmorProfile) || {psc}.appArmorProfile.type != 'Unconfined')))",
         "message": "unconfined seccomp or AppArmor profiles are not allowed in DLW user namespaces"},
        {"expression": f"{_selinux_ok(psc)} && {c}.all(c, {_selinux_ok('c.securityContext')})",
         "message": "SELinux options other than the container types (no spc_t, user or role) are not allowed "
                    "in DLW user namespaces"},
        {"expression": f"!{has_psc} || !has({psc}.sysctls) || "
                       f"{psc}.sysctls.all(s, s.name in {json.dumps(SAFE_SYSCTLS)})",
         "message": "only Pod Security's safe sysctls are allowed in DLW user namespaces"},
        # Pod Security "restricted" for every pod but the image builder's (Kaniko unpacks images as root).
        {"expression": f"variables.builder || (({has_psc} && has({psc}.runAsNonRoot) && {psc}.runAsNonRoot) ? "
                       f"{c}.all(c, !{sc} || !has(c.securityContext.runAsNonRoot) || "
                       "c.securityContext.runAsNonRoot) : "
                       f"{c}.all(c, {sc} && has(c.securityContext.runAsNonRoot) && c.securityContext.runAsNonRoot)) "
                       f"&& !({has_psc} && has({psc}.runAsUser) && {psc}.runAsUser == 0) && "
                       f"{c}.all(c, !({sc} && has(c.securityContext.runAsUser) && c.securityContext.runAsUser == 0))",
         "message": "containers must run as non-root (runAsNonRoot: true, no runAsUser 0) in DLW user namespaces"},
        {"expression": f"{c}.all(c, {sc} && has(c.securityContext.allowPrivilegeEscalation) && "
                       "!c.securityContext.allowPrivilegeEscalation)",
         "message": "every container must set allowPrivilegeEscalation: false in DLW user namespaces"},
        {"expression": f"({has_psc} && has({psc}.seccompProfile) && {psc}.seccompProfile.type in {seccomp_ok}) || "
                       f"{c}.all(c, {sc} && has(c.securityContext.seccompProfile) && "
                       f"c.securityContext.seccompProfile.type in {seccomp_ok})",
         "message": "pods must use the RuntimeDefault (or a Localhost) seccomp profile in DLW user namespaces"},
        {"expression": f"variables.builder || {c}.all(c, {sc} && has(c.securityContext.capabilities) && "
                       "has(c.securityContext.capabilities.drop) && 'ALL' in c.securityContext.capabilities.drop)",
         "message": "containers must drop ALL capabilities in DLW user namespaces"},
        {"expression": "!has(object.spec.volumes) || object.spec.volumes.all(v, !has(v.hostPath) || "
                       f"[v.hostPath.path].all(p, {host_path_rule(ws)}))",
         "message": "hostPath volumes must be exactly a folder of the admin's catalogue or hostPathAllowlist "
                    f"({', '.join(ws.host_path_allowlist) or 'none'}), per-user ones only the user's own "
                    "(subPath: <user>); sub-folders only through volumeMounts[].subPath"},
    ]
    if ws.priority_classes:
        out.append({
            "expression": "!has(object.spec.priorityClassName) || "
                          f"object.spec.priorityClassName in {json.dumps(classes)}",
            "message": f"priorityClassName must be one of the admin's classes ({', '.join(classes)})"})
    return out


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


# The controllers that empty a namespace being deleted (through admission, kubernetes/kubernetes#129883): a
# policy that refuses them leaves the namespace Terminating for ever.
NAMESPACE_CLEANERS = (
    "system:serviceaccount:kube-system:namespace-controller",
    "system:serviceaccount:kube-system:generic-garbage-collector",
)


def _labelled(obj: str) -> str:
    labels = f"{obj}.metadata.labels"
    key = _q(USER_NAMESPACE_LABEL)
    return f"(has({labels}) && {key} in {labels} && {labels}[{key}] == 'true')"


def hub_validations(ws: Workspace) -> list[dict[str, str]]:
    """What RBAC cannot say about the hub's writes (its ClusterRole must reach namespaces it creates later):
    namespaced objects only in DLW namespaces or its own; Namespaces only DLW's, keeping the labels the user
    namespaces' policies select on and the Pod Security level DLW sets; PersistentVolumes only the Blob CSI
    driver's, with the credential in the hub's namespace."""
    from ..workspace.blob import DRIVER
    from .rbac import namespace_labels

    hub_ns = ws.namespaces.hub
    enforce = namespace_labels(ws)["pod-security.kubernetes.io/enforce"]
    enforce_label = "pod-security.kubernetes.io/enforce"
    if ws.namespaces.scheme == "per-user":
        name_ok = f"object.metadata.name.startsWith({_q(ws.namespaces.prefix)})"
    else:
        name_ok = f"object.metadata.name == {_q(ws.namespaces.shared)}"
    user_kept = (f"(!has(oldObject.metadata.labels) || !({_q(USER_LABEL)} in oldObject.metadata.labels) || "
                 f"({_q(USER_LABEL)} in object.metadata.labels && object.metadata.labels[{_q(USER_LABEL)}] == "
                 f"oldObject.metadata.labels[{_q(USER_LABEL)}]))")
    ns_rule = (f"request.operation != 'DELETE' && {_labelled('object')} && {name_ok} && "
               f"{_q(enforce_label)} in object.metadata.labels && "
               f"object.metadata.labels[{_q(enforce_label)}] == {_q(enforce)} && "
               f"(request.operation == 'CREATE' || ({_labelled('oldObject')} && {user_kept}))")
    pv = "object.spec"
    secret_ok = (f"(!has({pv}.csi.nodeStageSecretRef) || {pv}.csi.nodeStageSecretRef.namespace == {_q(hub_ns)})")
    pv_rule = (f"request.operation != 'DELETE' && has({pv}.csi) && {pv}.csi.driver == {_q(DRIVER)} && {secret_ok} && "
               f"(!has({pv}.claimRef) || !has({pv}.claimRef.namespace) || "
               f"{pv}.claimRef.namespace.startsWith({_q(ws.namespaces.prefix)}) || "
               f"{pv}.claimRef.namespace == {_q(ws.namespaces.shared)})")
    return [
        # request.namespace is absent (not "") for cluster-scoped objects on the API server.
        {"expression": f"!has(request.namespace) || request.namespace == '' || "
                       "request.resource.resource == 'namespaces' || "
                       f"request.namespace == {_q(hub_ns)} || {_labelled('namespaceObject')}",
         "message": f"the hub writes only in DLW user namespaces (label {USER_NAMESPACE_LABEL}) and its own"},
        {"expression": f"request.resource.resource != 'namespaces' || ({ns_rule})",
         "message": f"the hub may create and update only DLW namespaces, keeping {USER_NAMESPACE_LABEL}, "
                    f"{USER_LABEL} and the Pod Security level {enforce}"},
        {"expression": f"request.resource.resource != 'persistentvolumes' || ({pv_rule})",
         "message": f"the hub may create only {DRIVER} PersistentVolumes for DLW namespaces"},
    ]


def hub_policy(ws: Workspace, hub_service_account: str = "hub") -> list[dict[str, Any]]:
    """The hub's own requests, cluster-wide: a stolen hub token stays confined to what DLW namespaces need."""
    name = f"{ws.name}-hub-confinement"
    policy = {
        "apiVersion": API, "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name, "labels": dict(PART_OF)},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{
                "apiGroups": ["*"], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE", "DELETE"],
                "resources": ["*"], "scope": "*"}]},
            "matchConditions": [{"name": "the-hub", "expression":
                                 f"request.userInfo.username == {_q(hub_username(ws, hub_service_account))}"}],
            "validations": hub_validations(ws),
        },
    }
    binding = {
        "apiVersion": API, "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name, "labels": dict(PART_OF)},
        "spec": {"policyName": name, "validationActions": ["Deny"]},
    }
    return [policy, binding]


def service_validations() -> list[dict[str, str]]:
    return [{
        "expression": "(!has(object.spec.type) || object.spec.type == 'ClusterIP') && "
                      "(!has(object.spec.externalIPs) || size(object.spec.externalIPs) == 0)",
        "message": "only ClusterIP Services (no LoadBalancer, NodePort, ExternalName or externalIPs) in DLW "
                   "user namespaces: the hub's proxy is the way in"}]


def job_queue_validations(ws: Workspace) -> list[dict[str, str]]:
    """A job a user creates names one of the admin's queues, the way its queue system reads it."""
    queues = json.dumps([q.name for q in ws.queues])
    kind = "request.resource.resource"
    if ws.queue_system == "kueue":
        label = "kueue.x-k8s.io/queue-name"
        return [{"expression": f"has(object.metadata.labels) && {_q(label)} in object.metadata.labels && "
                               f"object.metadata.labels[{_q(label)}] in {queues}",
                 "message": f"jobs must carry the label {label} naming one of the admin's queues ({queues})"}]
    tpl = "object.spec.template"
    ann = "scheduling.volcano.sh/queue-name"
    return [{"expression": (
        f"({kind} != 'jobs' || request.resource.group != 'batch' || (has({tpl}.spec.schedulerName) && "
        f"{tpl}.spec.schedulerName == 'volcano' && has({tpl}.metadata) && has({tpl}.metadata.annotations) && "
        f"{_q(ann)} in {tpl}.metadata.annotations && {tpl}.metadata.annotations[{_q(ann)}] in {queues})) && "
        f"({kind} != 'jobs' || request.resource.group != 'batch.volcano.sh' || "
        f"(has(object.spec.queue) && object.spec.queue in {queues})) && "
        f"({kind} != 'pytorchjobs' || (has(object.spec.runPolicy) && has(object.spec.runPolicy.schedulingPolicy) && "
        "has(object.spec.runPolicy.schedulingPolicy.queue) && "
        f"object.spec.runPolicy.schedulingPolicy.queue in {queues}))"),
        "message": f"jobs must run in one of the admin's Volcano queues ({queues}) through the volcano scheduler"}]


def admission_policies(ws: Workspace) -> list[dict[str, Any]]:
    """The pod policy, the ConfigMap guard, the Service rule and the queue rule, each bound to the user
    namespaces, and the hub's confinement."""
    pods = f"{ws.name}-user-pods"
    workspace_cm = f"{ws.name}-workspace-configmap"
    services = f"{ws.name}-user-services"
    out = [
        _policy(pods, ["pods", "pods/ephemeralcontainers"], ["CREATE", "UPDATE"], {
            "variables": [{"name": "containers", "expression": _containers()},
                          {"name": "user", "expression": _user()},
                          {"name": "builder", "expression": _builder(ws)}],
            "validations": pod_validations(ws),
        }),
        _binding(pods),
        _policy(workspace_cm, ["configmaps"], ["CREATE", "UPDATE", "DELETE"], {
            "matchConditions": [{"name": "not-the-hub-or-namespace-cleanup",
                                 "expression": f"!(request.userInfo.username in "
                                               f"{json.dumps([hub_username(ws), *NAMESPACE_CLEANERS])})"}],
            "validations": [{
                "expression": "(request.operation == 'DELETE' ? oldObject : object).metadata.name != "
                              f"{_q(WORKSPACE_CONFIGMAP)}",
                "message": f"the {WORKSPACE_CONFIGMAP} ConfigMap is the admin's; only the hub writes it"}],
        }),
        _binding(workspace_cm),
        _policy(services, ["services"], ["CREATE", "UPDATE"], {"validations": service_validations()}),
        _binding(services),
    ]
    if ws.queues and ws.queue_system in ("volcano", "kueue"):
        from ..engines import all_engines

        queue = f"{ws.name}-user-job-queues"
        rules = [{"apiGroups": [e.group], "apiVersions": [e.version], "operations": ["CREATE"],
                  "resources": [e.plural]} for e in all_engines()]
        policy = _policy(queue, [], ["CREATE"], {
            # Users' own requests (their notebook's account); controllers make jobs of their own (JobSet's).
            "matchConditions": [{"name": "a-user", "expression":
                                 "request.userInfo.username.startsWith('system:serviceaccount:' + "
                                 "request.namespace + ':')"}],
            "validations": job_queue_validations(ws)})
        policy["spec"]["matchConstraints"]["resourceRules"] = rules
        out += [policy, _binding(queue)]
    return out + hub_policy(ws)
