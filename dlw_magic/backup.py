"""``dlw admin backup OUT`` / ``dlw admin restore IN``: the admin YAML, the secret references and the local
job records in one archive, and back.

The archive (``.tar.gz``) holds ``manifest.json`` (format version, DLW version, where it came from, what
is inside), ``workspace.yaml`` (the admin YAML as written), ``secret-references.json`` (the Secrets the
YAML names, with their keys: never a value, which DLW does not read), ``local/jobs.db`` (a consistent
copy made with SQLite's online backup while jobs may be running) and ``local/jobs/<id>/`` (each job's
folder: spec, snapshot, logs, outputs).

Restore is idempotent: a job already in the target home (same id) is left as it is, so restoring twice
changes nothing the second time; the admin YAML is written only where none is, or the same one is. An
archive whose format is newer than this DLW reads is refused before anything is written.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from . import __version__
from .errors import DLWError

FORMAT = 1


def secret_references(ws: Any) -> list[dict[str, Any]]:
    """Every Secret the admin YAML names: (name, keys, what uses it). Names only; values stay in the cluster."""
    from .workspace import BlobVolume

    refs: list[dict[str, Any]] = []
    if ws.auth.client_secret is not None:
        refs.append({"secret": ws.auth.client_secret.secret, "keys": [ws.auth.client_secret.key],
                     "namespace": ws.namespaces.hub, "usedBy": f"auth ({ws.auth.kind} client secret)"})
    for vol in ws.volumes:
        if isinstance(vol, BlobVolume) and vol.auth is not None and vol.auth.secret:
            refs.append({"secret": vol.auth.secret, "namespace": ws.namespaces.hub,
                         "usedBy": f"volume {vol.name} (blob, auth.mode {vol.auth.mode})"})
    if ws.images.pull_secret:
        refs.append({"secret": ws.images.pull_secret, "keys": [".dockerconfigjson"],
                     "namespace": ws.namespaces.hub, "usedBy": "images.pullSecret"})
    return refs


def job_secret_references(db: Path) -> list[dict[str, Any]]:
    """The Secrets local jobs' specs name (``secrets: [{env, secret, key}]``); their values stay in
    ``$DLW_HOME/secrets``, which a backup leaves out."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT spec FROM jobs").fetchall()
    finally:
        conn.close()
    by_secret: dict[str, dict[str, Any]] = {}
    for (spec,) in rows:
        for ref in json.loads(spec).get("secrets") or []:
            entry = by_secret.setdefault(ref["secret"], {"secret": ref["secret"], "keys": [], "namespace": "local",
                                                         "usedBy": "local jobs"})
            if ref["key"] not in entry["keys"]:
                entry["keys"].append(ref["key"])
    return list(by_secret.values())


def _db_copy(home: Path, dest: Path) -> int:
    """SQLite's online backup of ``<home>/jobs.db`` into ``dest`` (consistent while writers run); job count."""
    src = sqlite3.connect(f"file:{home / 'jobs.db'}?mode=ro", uri=True, timeout=60)
    out = sqlite3.connect(dest)
    try:
        src.backup(out)
        return int(out.execute("SELECT count(*) FROM jobs").fetchone()[0])
    finally:
        out.close()
        src.close()


def backup(out: Path, workspace_file: Path, home: Path | None, cluster: Any = None) -> dict[str, Any]:
    """Write the archive; returns its manifest. ``cluster``: a ``backends.kubernetes.api.Api`` whose DLW
    objects to include (``hub.cluster_backup``), or None."""
    from .spec.validation import load_yaml, read_text
    from .workspace import parse_workspace

    text = read_text(workspace_file, "workspace config")
    ws = parse_workspace(load_yaml(text, str(workspace_file)), str(workspace_file))
    manifest: dict[str, Any] = {
        "format": FORMAT, "dlwVersion": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "workspace": {"name": ws.name, "source": str(workspace_file)}, "local": None, "cluster": None,
    }
    with tempfile.TemporaryDirectory(prefix="dlw-backup-") as tmp:
        stage = Path(tmp)
        (stage / "workspace.yaml").write_text(text, encoding="utf-8")
        refs = secret_references(ws)
        if home is not None and (home / "jobs.db").is_file():
            (stage / "local").mkdir()
            jobs = _db_copy(home, stage / "local" / "jobs.db")
            refs += job_secret_references(stage / "local" / "jobs.db")
            copied = 0
            if (home / "jobs").is_dir():
                for job_dir in sorted((home / "jobs").iterdir()):
                    if job_dir.is_dir():
                        shutil.copytree(job_dir, stage / "local" / "jobs" / job_dir.name, symlinks=True)
                        copied += 1
            manifest["local"] = {"home": str(home), "jobs": jobs, "jobFolders": copied}
        if cluster is not None:
            from .hub.cluster_backup import export_objects

            objects, skipped = export_objects(cluster)
            (stage / "cluster").mkdir()
            (stage / "cluster" / "objects.json").write_text(json.dumps(objects, indent=1) + "\n", encoding="utf-8")
            manifest["cluster"] = {"objects": len(objects), "kindsNotServed": skipped}
        (stage / "secret-references.json").write_text(json.dumps(refs, indent=2) + "\n", encoding="utf-8")
        manifest["secretReferences"] = len(refs)
        (stage / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")
        with tarfile.open(partial, "w:gz") as tar:
            for item in ("manifest.json", "workspace.yaml", "secret-references.json", "local", "cluster"):
                if (stage / item).exists():
                    tar.add(stage / item, arcname=item)
        os.replace(partial, out)  # never a half-written archive under the asked-for name
    return manifest


@dataclass
class RestoreReport:
    jobs_added: list[str] = field(default_factory=list)
    jobs_kept: list[str] = field(default_factory=list)
    workspace: str = ""
    secrets: list[dict[str, Any]] = field(default_factory=list)
    cluster: str = ""

    def lines(self) -> list[str]:
        out = [f"jobs: {len(self.jobs_added)} restored, {len(self.jobs_kept)} already there",
               f"workspace: {self.workspace}"]
        if self.cluster:
            out.append(self.cluster)
        for ref in self.secrets:
            keys = ", ".join(ref.get("keys") or []) or "its keys"
            out.append(f"secret to create again: {ref['secret']} ({keys}) in {ref['namespace']}, for {ref['usedBy']}")
        return out


def _safe_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    members = []
    for m in tar.getmembers():
        path = PurePosixPath(m.name)
        if path.is_absolute() or ".." in path.parts or m.isdev():
            raise DLWError(f"archive member {m.name!r} would land outside the restore folder")
        members.append(m)
    return members


def read_manifest(archive: Path) -> dict[str, Any]:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            f = tar.extractfile("manifest.json")
            manifest = json.loads(f.read()) if f else None
    except (OSError, tarfile.TarError, KeyError, ValueError) as err:
        raise DLWError(f"{archive}: not a DLW backup ({err})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("format"), int):
        raise DLWError(f"{archive}: not a DLW backup (manifest.json has no format)")
    if manifest["format"] > FORMAT:
        raise DLWError(f"{archive}: written by DLW {manifest.get('dlwVersion', '?')} in backup format "
                       f"{manifest['format']}; this DLW ({__version__}) reads format {FORMAT} and older: upgrade DLW")
    return manifest


def restore(archive: Path, home: Path | None, workspace_out: Path | None, cluster: Any = None) -> RestoreReport:
    """``cluster``: a ``backends.kubernetes.api.Api`` to re-create the archive's cluster objects in, or None."""
    manifest = read_manifest(archive)
    report = RestoreReport()
    with tempfile.TemporaryDirectory(prefix="dlw-restore-") as tmp:
        stage = Path(tmp)
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(stage, members=_safe_members(tar), filter="data")
        report.secrets = json.loads((stage / "secret-references.json").read_text(encoding="utf-8"))
        text = (stage / "workspace.yaml").read_text(encoding="utf-8")
        if workspace_out is None:
            report.workspace = "not written (give --workspace-out PATH)"
        elif workspace_out.is_file() and workspace_out.read_text(encoding="utf-8") != text:
            raise DLWError(f"{workspace_out}: a different admin YAML is there; move it away or choose another "
                           "--workspace-out")
        else:
            workspace_out.parent.mkdir(parents=True, exist_ok=True)
            workspace_out.write_text(text, encoding="utf-8")
            report.workspace = f"written to {workspace_out}"
        if manifest.get("local") and home is not None:
            _restore_jobs(stage / "local", home, report)
        saved = stage / "cluster" / "objects.json"
        if saved.is_file():
            objects = json.loads(saved.read_text(encoding="utf-8"))
            if cluster is None:
                report.cluster = f"cluster: {len(objects)} objects in the archive, not restored (give --cluster)"
            else:
                from .hub.cluster_backup import restore_objects

                report.cluster = restore_objects(cluster, objects).line()
    return report


def _restore_jobs(src: Path, home: Path, report: RestoreReport) -> None:
    from .backends.local.store import Store

    store = Store(home)  # creates the home, the schema and its modes as the local backend does
    db = store.db
    have_columns = [r[1] for r in db.execute("PRAGMA table_info(jobs)")]
    old = sqlite3.connect(f"file:{src / 'jobs.db'}?mode=ro", uri=True)
    old.row_factory = sqlite3.Row
    try:
        rows = old.execute("SELECT * FROM jobs ORDER BY created").fetchall()
    finally:
        old.close()
    jobs_dir = home / "jobs"
    jobs_dir.mkdir(mode=0o700, exist_ok=True)
    for row in rows:
        record = {k: v for k, v in zip(row.keys(), row, strict=True) if k in have_columns}  # Row iterates values
        known = db.execute("SELECT 1 FROM jobs WHERE id = ? OR (user = ? AND name = ?)",
                           (record["id"], record["user"], record["name"])).fetchone()
        if known:
            report.jobs_kept.append(record["name"])
            continue
        record["job_dir"] = str(jobs_dir / record["id"])
        if record.get("state") in ("Queued", "Running"):
            # Nothing runs it here: the supervisor was on the machine backed up.
            record.update(state="Failed", reason="Restored", supervisor_pid=None, pgid=None, assigned_gpus=None,
                          message="restored from a backup taken while the job was active; rerun it with dlw rerun",
                          finished=record.get("finished") or time.time())
        folder = src / "jobs" / record["id"]
        if folder.is_dir() and not (jobs_dir / record["id"]).exists():
            shutil.copytree(folder, jobs_dir / record["id"], symlinks=True)
        store.insert(record)
        report.jobs_added.append(record["name"])
