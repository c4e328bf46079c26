"""Blob catalogue volumes -> blobfuse2 config and Blob CSI driver objects (plain dicts / YAML text).

* ``blobfuse2_config(vol)``: the file ``blobfuse2 mount --config-file`` reads (components libfuse,
  file_cache or block_cache, attr_cache, azstorage). Credentials never appear in it: blobfuse2 reads
  them from the environment (``AZURE_STORAGE_ACCESS_KEY``, ``AZURE_STORAGE_SAS_TOKEN``,
  ``AZURE_STORAGE_SPN_CLIENT_SECRET``), filled from the Secret the catalogue names.
* ``blob_pv(vol, namespace, secret_namespace)`` + ``blob_pvc(vol, namespace)``: a static PersistentVolume
  bound to the PVC ``vol.pvc_name`` in ``namespace`` (a PV binds one claim, so one PV per namespace). Pods
  mount the PVC, as ``workspace.pod_volume`` says, so notebooks and jobs use the same claim. The credential
  Secret stays in one admin namespace (the hub's): the CSI node plugin reads it there, users never can.
  Each PV caches in its own folder under ``cache.path`` (one shared blobfuse2 cache would mix volumes).
* ``blob_storage_class(vol)``: a StorageClass for admins who prefer dynamic claims on that container.
"""

from __future__ import annotations

from typing import Any

import yaml

from .model import BlobVolume

DRIVER = "blob.csi.azure.com"
SECRET_ENV = {
    "key": "AZURE_STORAGE_ACCESS_KEY", "sas": "AZURE_STORAGE_SAS_TOKEN", "spn": "AZURE_STORAGE_SPN_CLIENT_SECRET",
}
# Keys the Blob CSI driver expects in the Secret for each mode.
SECRET_KEYS = {
    "key": ["azurestorageaccountname", "azurestorageaccountkey"],
    "sas": ["azurestorageaccountname", "azurestorageaccountsastoken"],
    "spn": ["azurestoragespnclientsecret"],
}
_LABELS = {"app.kubernetes.io/part-of": "dlw"}


def blobfuse2_config(vol: BlobVolume) -> str:
    auth = vol.auth
    assert auth is not None  # the model refuses blob volumes without auth
    cache = vol.cache
    cache_path = f"{cache.path.rstrip('/')}/{vol.name}"  # one folder per volume, as mount_options
    libfuse = {
        "attribute-expiration-sec": cache.timeout_sec,
        "entry-expiration-sec": cache.timeout_sec,
        "negative-entry-expiration-sec": cache.timeout_sec,
    }
    if cache.kind == "file":
        cache_name = "file_cache"
        cache_cfg: dict[str, Any] = {"path": cache_path, "timeout-sec": cache.timeout_sec, "max-size-mb": cache.size_mb}
    else:
        cache_name = "block_cache"
        cache_cfg = {"block-size-mb": 16, "mem-size-mb": cache.size_mb, "path": cache_path,
                     "disk-timeout-sec": cache.timeout_sec}
    az: dict[str, Any] = {"type": "block", "account-name": vol.storage_account, "container": vol.container,
                          "mode": auth.mode}
    if auth.mode == "msi":
        for key, value in (("appid", auth.client_id), ("objid", auth.object_id), ("resid", auth.resource_id)):
            if value:
                az[key] = value
    elif auth.mode == "spn":
        az.update({"clientid": auth.client_id, "tenantid": auth.tenant_id})
    config = {
        "allow-other": True,
        "read-only": vol.read_only,
        "logging": {"type": "syslog", "level": "log_warning"},
        "components": ["libfuse", cache_name, "attr_cache", "azstorage"],
        "libfuse": libfuse,
        cache_name: cache_cfg,
        "attr_cache": {"timeout-sec": cache.timeout_sec},
        "azstorage": az,
    }
    header = f"# blobfuse2 config for DLW volume {vol.name!r} (generated; credentials come from the environment"
    env = SECRET_ENV.get(auth.mode)
    header += f": {env}, from Secret {auth.secret})\n" if env else ": managed identity)\n"
    return header + yaml.safe_dump(config, sort_keys=False)


def mount_options(vol: BlobVolume, cache_dir: str | None = None) -> list[str]:
    """blobfuse2 flags for the CSI driver, from the catalogue's cache settings; ``cache_dir``: this PV's
    own folder under ``cache.path`` (default: the volume's name)."""
    cache = vol.cache
    tmp = f"{cache.path.rstrip('/')}/{cache_dir or vol.name}"
    opts = ["-o allow_other", f"-o attr_timeout={cache.timeout_sec}", f"-o entry_timeout={cache.timeout_sec}",
            f"-o negative_timeout={cache.timeout_sec}", "--use-attr-cache=true"]
    if cache.kind == "file":
        opts += [f"--file-cache-timeout-in-seconds={cache.timeout_sec}", f"--cache-size-mb={cache.size_mb}",
                 f"--tmp-path={tmp}"]
    else:
        opts += ["--block-cache", f"--block-cache-pool-size={cache.size_mb}", f"--block-cache-path={tmp}"]
    if vol.read_only:
        opts.append("-o ro")
    return opts + list(vol.mount_options)


def _csi(vol: BlobVolume, namespace: str, secret_namespace: str) -> dict[str, Any]:
    auth = vol.auth
    assert auth is not None
    attrs: dict[str, str] = {"containerName": vol.container, "storageAccount": vol.storage_account, "protocol": "fuse2"}
    if vol.resource_group:
        attrs["resourceGroup"] = vol.resource_group
    if auth.mode == "msi":
        attrs["AzureStorageAuthType"] = "MSI"
        for key, value in (("AzureStorageIdentityClientID", auth.client_id),
                           ("AzureStorageIdentityObjectID", auth.object_id),
                           ("AzureStorageIdentityResourceID", auth.resource_id)):
            if value:
                attrs[key] = value
    elif auth.mode == "spn":
        attrs.update({"AzureStorageAuthType": "SPN", "AzureStorageSPNClientID": auth.client_id or "",
                      "AzureStorageSPNTenantID": auth.tenant_id or ""})
    csi: dict[str, Any] = {
        "driver": DRIVER,
        # Unique per PV: the driver keys its mounts on it.
        "volumeHandle": f"{vol.resource_group or '-'}#{vol.storage_account}#{vol.container}#{namespace}",
        "volumeAttributes": attrs,
        "readOnly": vol.read_only,
    }
    if auth.secret:
        csi["nodeStageSecretRef"] = {"name": auth.secret, "namespace": secret_namespace}
    return csi


def pv_name(vol: BlobVolume, namespace: str) -> str:
    return f"{vol.pvc_name}-{namespace}"[:253]


def _access(vol: BlobVolume) -> list[str]:
    return ["ReadOnlyMany"] if vol.read_only else ["ReadWriteMany"]


def blob_pv(vol: BlobVolume, namespace: str, secret_namespace: str) -> dict[str, Any]:
    """The PV for ``namespace``'s claim; ``secret_namespace`` holds the credential Secret (the hub's)."""
    name = pv_name(vol, namespace)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": {**_LABELS, "dlw.dev/volume": vol.name},
                     "annotations": {"pv.kubernetes.io/provisioned-by": DRIVER}},
        "spec": {
            "capacity": {"storage": vol.size},
            "accessModes": _access(vol),
            "persistentVolumeReclaimPolicy": "Retain",  # never delete the admin's data with the claim
            "storageClassName": "",
            "claimRef": {"namespace": namespace, "name": vol.pvc_name},
            "mountOptions": mount_options(vol, name),
            "csi": _csi(vol, namespace, secret_namespace),
        },
    }


def blob_pvc(vol: BlobVolume, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": vol.pvc_name, "namespace": namespace,
                     "labels": {**_LABELS, "dlw.dev/volume": vol.name}},
        "spec": {
            "accessModes": _access(vol),
            "storageClassName": "",
            "volumeName": pv_name(vol, namespace),
            "resources": {"requests": {"storage": vol.size}},
        },
    }


def blob_storage_class(vol: BlobVolume) -> dict[str, Any]:
    auth = vol.auth
    assert auth is not None
    params: dict[str, str] = {"containerName": vol.container, "storageAccount": vol.storage_account,
                              "protocol": "fuse2"}
    if vol.resource_group:
        params["resourceGroup"] = vol.resource_group
    if auth.secret:
        params["csi.storage.k8s.io/node-stage-secret-name"] = auth.secret
        params["csi.storage.k8s.io/node-stage-secret-namespace"] = "${pvc.namespace}"
    if auth.mode == "msi":
        params["AzureStorageAuthType"] = "MSI"
        if auth.client_id:
            params["AzureStorageIdentityClientID"] = auth.client_id
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": f"dlw-blob-{vol.name}", "labels": dict(_LABELS)},
        "provisioner": DRIVER,
        "parameters": params,
        "reclaimPolicy": "Retain",
        "volumeBindingMode": "Immediate",
        "mountOptions": mount_options(vol),
    }
