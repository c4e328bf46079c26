"""``dlw admin ...`` and ``dlw hub``: the admin's face over ``dlw_magic.workspace`` and ``dlw_magic.hub``.

Registered by ``dlw_magic.cli`` via ``register(subparsers)``. Import-light on purpose (``dlw`` start-up
is benchmarked): every handler imports what it needs. Handlers return the exit code and raise DLWError
for anything a user can fix.

    dlw admin check [FILE] [--cluster]          every error with its field path; exit 1 if any
    dlw admin schema                            JSON Schema of workspace.yaml
    dlw admin render [FILE] --helm-values       values for the Zero to JupyterHub chart
    dlw admin render [FILE] --manifests [--namespace NS ...]   PriorityClasses, queues, RBAC, Blob PV/PVC
    dlw admin render [FILE] --blobfuse VOLUME   a blobfuse2 config file for a blob volume
    dlw admin render [FILE] --storage-class VOLUME   a Blob CSI StorageClass for a blob volume
    dlw admin render [FILE] --all --out DIR     the dlw-cluster Helm chart + jupyterhub-values.yaml into DIR
    dlw admin usage [--since 7d] [-o table|csv|json] [--cluster]   GPU-hours per user
    dlw usage [-o table|json]                   your GPU-hours this period against your budget
    dlw admin backup OUT [--workspace F] [--home DIR]           admin YAML, secret references, job records
    dlw admin restore IN [--home DIR] [--workspace-out PATH]    the same, back (idempotent)
    dlw hub [--port 8000] [--user NAME ...] [--group G=U1,U2 ...] [--gpu-indices 0,1] [--[no-]system-users]
                                                JupyterHub on 127.0.0.1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .errors import DLWError


def register(subparsers: Any) -> None:
    admin = subparsers.add_parser("admin", help="check and render the admin's workspace.yaml")
    asub = admin.add_subparsers(dest="admin_command", metavar="ACTION", required=True)

    p = asub.add_parser("check", help="validate workspace.yaml; print every error with its field path")
    p.add_argument("file", nargs="?", help="default: $DLW_WORKSPACE_CONFIG, else the shipped default")
    p.add_argument("--cluster", action="store_true",
                   help="also check the cluster ($DLW_KUBECONFIG or ~/.kube/config): CRDs, GPUs, storage, secrets")
    p.set_defaults(func=cmd_check)

    p = asub.add_parser("schema", help="print the JSON Schema of workspace.yaml")
    p.add_argument("--out", help="write to this file instead of stdout")
    p.set_defaults(func=cmd_schema)

    p = asub.add_parser("render", help="Helm values, cluster manifests or blobfuse2 config from workspace.yaml")
    p.add_argument("file", nargs="?", help="default: $DLW_WORKSPACE_CONFIG, else the shipped default")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--helm-values", action="store_true", help="values for the Zero to JupyterHub chart")
    what.add_argument("--manifests", action="store_true", help="PriorityClasses, queues, RBAC, Blob PV/PVC")
    what.add_argument("--blobfuse", metavar="VOLUME", help="blobfuse2 config for a blob volume")
    what.add_argument("--storage-class", metavar="VOLUME", help="Blob CSI StorageClass for a blob volume")
    what.add_argument("--all", action="store_true",
                      help="the dlw-cluster Helm chart and z2jh's jupyterhub-values.yaml (needs --out)")
    p.add_argument("--namespace", action="append", default=None, metavar="NS",
                   help="also set up this namespace (repeatable; default: the shared one, if any)")
    p.add_argument("--hub-image", help="hub image with dlw-magic[hub] installed (NAME:TAG)")
    p.add_argument("--out", help="file (or folder with --all) to write instead of stdout")
    p.set_defaults(func=cmd_render)

    p = asub.add_parser("usage", help="GPU-hours per user, from local job records or the cluster's pods")
    p.add_argument("--since", default="7d", help="window start: 7d, 12h, 30m or a date (default 7d)")
    p.add_argument("-o", "--output", choices=["table", "csv", "json"], default="table")
    p.add_argument("--cluster", action="store_true",
                   help="count the cluster's GPU pods (notebooks and jobs) instead of the local job records")
    p.add_argument("--home", help="local DLW data folder (default: $DLW_HOME or the usual one)")
    p.set_defaults(func=cmd_admin_usage)

    p = asub.add_parser("backup", help="one archive: admin YAML, secret references (never values), job records")
    p.add_argument("out", help="archive to write (.tar.gz)")
    p.add_argument("--workspace", help="admin YAML (default: $DLW_WORKSPACE_CONFIG, else the shipped default)")
    p.add_argument("--home", help="local DLW data folder whose job records to include (default: $DLW_HOME ...)")
    p.add_argument("--cluster", action="store_true",
                   help="also the cluster's DLW objects ($DLW_KUBECONFIG or ~/.kube/config); never Secrets")
    p.set_defaults(func=cmd_backup)

    p = asub.add_parser("restore", help="re-create what `dlw admin backup` saved (idempotent)")
    p.add_argument("archive", help="archive written by `dlw admin backup`")
    p.add_argument("--home", help="local DLW data folder to restore the job records into (default: $DLW_HOME ...)")
    p.add_argument("--workspace-out", help="write the admin YAML here (refused if a different one is there)")
    p.add_argument("--cluster", action="store_true",
                   help="also re-create the archive's cluster objects ($DLW_KUBECONFIG or ~/.kube/config)")
    p.set_defaults(func=cmd_restore)

    p = subparsers.add_parser("usage", help="your GPU-hours this budget period and the budget the admin set")
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    p.set_defaults(func=cmd_usage)

    p = subparsers.add_parser("hub", help="start a real JupyterHub on 127.0.0.1 with the workspace profiles")
    p.add_argument("--config", dest="workspace", help="workspace.yaml (default: $DLW_WORKSPACE_CONFIG or shipped)")
    p.add_argument("--port", type=int, default=8000, help="public port on 127.0.0.1 (default 8000)")
    p.add_argument("--user", action="append", default=None, metavar="NAME",
                   help="who may log in (repeatable; default: you)")
    p.add_argument("--group", action="append", default=[], metavar="GROUP=USER[,USER]",
                   help="group membership, for profiles limited to groups (repeatable)")
    p.add_argument("--gpu-indices", metavar="I,J,...",
                   help="GPUs the hub may hand out to notebooks (default: every GPU NVML reports)")
    p.add_argument("--data-dir", help="hub state folder (default: $DLW_HOME/hub)")
    p.add_argument("--system-users", action=argparse.BooleanOptionalAction, default=None,
                   help="as root: run each user's server as their own system account dlw-NAME (created on first "
                        "start), with a private home and DLW data folder (default: on for a root hub of several "
                        "users, off for one)")
    p.add_argument("--print-config", action="store_true", help="write the generated jupyterhub_config.py and exit")
    p.set_defaults(func=cmd_hub)


def _ws_file(args: argparse.Namespace) -> Path:
    from .workspace import workspace_path

    return workspace_path(getattr(args, "file", None))


def cmd_check(args: argparse.Namespace) -> int:
    from .workspace import check_workspace, load_workspace

    path = _ws_file(args)
    errors = check_workspace(path)
    if errors:
        for line in errors:
            sys.stderr.write(line + "\n")
        sys.stderr.write(f"{path}: {len(errors)} error{'s' if len(errors) > 1 else ''}\n")
        return 1
    ws = load_workspace(path)
    print(f"{path}: OK ({len(ws.profiles)} profiles, {len(ws.volumes)} volumes, {len(ws.queues)} queues, "
          f"{len(ws.priority_classes)} priority classes; namespaces {ws.namespaces.scheme})")
    if not args.cluster:
        return 0
    from .hub.cluster_check import api_get, check_cluster

    findings = check_cluster(ws, api_get())
    for finding in findings:
        print(finding.line())
    failed = [f for f in findings if f.required and not f.ok]
    if failed:
        sys.stderr.write(f"cluster: {len(failed)} prerequisite{'s' if len(failed) > 1 else ''} missing\n")
        return 1
    return 0


def _write(text: str, out: str | None) -> None:
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text, encoding="utf-8")
        print(f"wrote {out}")
    else:
        sys.stdout.write(text)


def cmd_schema(args: argparse.Namespace) -> int:
    from .workspace import workspace_json_schema

    _write(workspace_json_schema(), args.out)
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from .hub.deploy import chart_files, cluster_manifests, dump_yaml, dump_yaml_docs, helm_values
    from .spec.validation import read_text
    from .workspace import BlobVolume, load_workspace

    path = _ws_file(args)
    ws = load_workspace(path)
    text = read_text(path, "workspace config")
    if args.blobfuse or args.storage_class:
        name = args.blobfuse or args.storage_class
        vol = ws.volume(name)
        if not isinstance(vol, BlobVolume):
            raise DLWError(f"{path}: volume {name!r} is a {vol.type} volume, not a blob volume")
        from .workspace.blob import blob_storage_class, blobfuse2_config

        _write(blobfuse2_config(vol) if args.blobfuse else dump_yaml_docs([blob_storage_class(vol)]), args.out)
        return 0

    header = f"# Generated by `dlw admin render` from {path.name}; edit the workspace YAML, not this file.\n"
    if args.all:
        if not args.out:
            raise DLWError("render --all writes a chart folder: give --out DIR")
        for name, content in chart_files(ws, text, args.hub_image, args.namespace, header).items():
            _write(content, str(Path(args.out) / name))
    elif args.helm_values:
        _write(header + dump_yaml(helm_values(ws, text, args.hub_image)), args.out)
    else:
        _write(header + dump_yaml_docs(cluster_manifests(ws, text, args.namespace)), args.out)
    return 0


def cmd_hub(args: argparse.Namespace) -> int:
    from .hub.local import run_local_hub

    groups: dict[str, list[str]] = {}
    for item in args.group:
        name, sep, members = item.partition("=")
        if not sep or not name:
            raise DLWError(f"--group {item!r}: expected GROUP=USER[,USER]")
        groups[name] = [m for m in members.split(",") if m]
    return run_local_hub(
        workspace=args.workspace, port=args.port, users=args.user, groups=groups,
        data_dir=args.data_dir, print_config=args.print_config, gpu_indices=args.gpu_indices,
        system_users=args.system_users,
    )


def cmd_admin_usage(args: argparse.Namespace) -> int:
    import time

    from .usage import hours_by_user, local_uses, parse_since, pod_uses, render

    now = time.time()
    since = parse_since(args.since, now)
    if args.cluster:
        items = (_cluster(True).call("GET", "/api/v1/pods") or {}).get("items") or []
        uses = pod_uses(items)
    else:
        from .backends.local.backend import data_dir

        uses = local_uses(Path(args.home) if args.home else data_dir())
    sys.stdout.write(render(hours_by_user(uses, since, now), args.output))
    return 0


def cmd_usage(args: argparse.Namespace) -> int:
    import json
    import time

    from .backends import get_backend
    from .core import current_user
    from .usage import own_usage

    mine = own_usage(get_backend(), current_user(), time.time())
    print(json.dumps(mine, indent=2) if args.output == "json" else mine["line"])
    return 0


def _home(arg: str | None) -> Path:
    from .backends.local.backend import data_dir

    return Path(arg).expanduser() if arg else data_dir()


def _cluster(wanted: bool) -> Any:
    if not wanted:
        return None
    from .backends.kubernetes.api import Api, api_client

    return Api(api_client())


def cmd_backup(args: argparse.Namespace) -> int:
    from .backup import backup
    from .workspace import workspace_path

    manifest = backup(Path(args.out), workspace_path(args.workspace), _home(args.home), _cluster(args.cluster))
    local = manifest["local"]
    jobs = f"{local['jobs']} job records, {local['jobFolders']} job folders" if local else "no local job records"
    if manifest["cluster"]:
        jobs += f", {manifest['cluster']['objects']} cluster objects"
    print(f"wrote {args.out}: workspace {manifest['workspace']['name']}, {jobs}, "
          f"{manifest['secretReferences']} secret references (names only)")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from .backup import restore

    report = restore(Path(args.archive), _home(args.home), Path(args.workspace_out) if args.workspace_out else None,
                     _cluster(args.cluster))
    for line in report.lines():
        print(line)
    return 0
