"""``dlw admin backup`` / ``restore``: real local jobs (one with a secret) round-trip into an empty home,
twice (idempotent); a newer archive is refused before anything is written; no secret value is ever in an
archive, the restored home, a rendered values file or a log."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
import yaml

from dlw_magic import backends, core
from dlw_magic.cli import main

ROOT = Path(__file__).resolve().parents[1]
CLIENT_SECRET = "backup-client-secret-91e2"
JOB_SECRET = "backup-job-secret-44c0"


def admin_yaml(tmp_path: Path) -> Path:
    data = yaml.safe_load((ROOT / "hub_config" / "workspace.yaml").read_text())
    data["auth"] = {"kind": "github", "clientId": "Iv1.lab", "clientSecret": {"secret": "dlw-github"},
                    "allowedGroups": ["mylab"]}
    data["budgets"] = {"period": "month", "groups": {"mylab": 500}}
    path = tmp_path / "admin" / "workspace.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(data))
    return path


def switch_home(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    monkeypatch.setenv("DLW_HOME", str(home))
    backends._cache.clear()


def every_byte(archive: Path) -> bytes:
    """The archive's decompressed stream and each member's content."""
    with tarfile.open(archive, "r:gz") as tar:
        parts = [f.read() for m in tar.getmembers() if m.isfile() and (f := tar.extractfile(m))]
    import gzip

    return gzip.decompress(archive.read_bytes()) + b"".join(parts)


def test_round_trip_into_an_empty_home(dlw_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OAUTH_CLIENT_SECRET", CLIENT_SECRET)  # in the admin's environment, never in the archive
    ws = admin_yaml(tmp_path)
    (dlw_home / "secrets" / "wandb").mkdir(parents=True)
    (dlw_home / "secrets" / "wandb" / "api-key").write_text(JOB_SECRET)
    script = tmp_path / "train.py"
    script.write_text("import os, pathlib\nprint('key length', len(os.environ['WANDB_KEY']))\n"
                      "pathlib.Path(os.environ['DLW_OUTPUT_DIR'], 'model.txt').write_text('weights')\n")
    spec = core.build_spec(spec_text=json.dumps({"name": "with-secret", "source": {"script": "train.py"},
                                                 "secrets": [{"env": "WANDB_KEY", "secret": "wandb",
                                                              "key": "api-key"}]}), base_dir=tmp_path)
    core.submit(spec)
    script.with_name("plain.py").write_text("print('plain')\n")
    assert main(["train", str(script.with_name("plain.py")), "--name", "plain", "--wait"]) == 0
    core.wait("with-secret", timeout=120)
    before = {j.name: j.state for j in core.list_jobs()}
    assert before["with-secret"].value == "Succeeded"

    archive = tmp_path / "out" / "dlw-backup.tar.gz"
    capsys.readouterr()
    assert main(["admin", "backup", str(archive), "--workspace", str(ws)]) == 0
    assert "2 job records, 2 job folders, 3 secret references (names only)" in capsys.readouterr().out
    blob = every_byte(archive)
    assert CLIENT_SECRET.encode() not in blob and JOB_SECRET.encode() not in blob
    with tarfile.open(archive) as tar:
        refs = json.loads(tar.extractfile("secret-references.json").read())  # type: ignore[union-attr]
    assert {(r["secret"], tuple(r.get("keys") or ())) for r in refs} == {("dlw-github", ("client-secret",)),
                                                                       ("dlw-datasets-sas", ()),
                                                                       ("wandb", ("api-key",))}

    new_home = tmp_path / "new-home"
    switch_home(monkeypatch, new_home)
    out_ws = tmp_path / "restored" / "workspace.yaml"
    assert main(["admin", "restore", str(archive), "--workspace-out", str(out_ws)]) == 0
    out = capsys.readouterr().out
    assert "jobs: 2 restored, 0 already there" in out
    assert "secret to create again: dlw-github (client-secret) in dlw" in out
    assert "secret to create again: wandb (api-key) in local" in out
    assert out_ws.read_text() == ws.read_text()
    after = {j.name: j.state for j in core.list_jobs()}
    assert after == before
    capsys.readouterr()
    assert main(["logs", "with-secret"]) == 0
    assert "key length 22" in capsys.readouterr().out
    assert (new_home / "jobs" / core.get_job("with-secret").id).is_dir()  # the job's own folder, outputs in it
    assert list((new_home / "jobs").rglob("model.txt"))[0].read_text() == "weights"
    assert (new_home / "jobs").is_dir() and not (new_home / "secrets").exists()
    assert not [p for p in new_home.rglob("*") if p.is_file() and JOB_SECRET.encode() in p.read_bytes()]

    # Again: nothing changes, nothing is duplicated.
    assert main(["admin", "restore", str(archive), "--workspace-out", str(out_ws)]) == 0
    assert "jobs: 0 restored, 2 already there" in capsys.readouterr().out
    assert {j.name: j.state for j in core.list_jobs()} == before

    # The z2jh values rendered from the restored admin YAML name the Secret, never its value.
    values = tmp_path / "values.yaml"
    assert main(["admin", "render", str(out_ws), "--helm-values", "--out", str(values)]) == 0
    assert "dlw-github" in values.read_text() and CLIENT_SECRET not in values.read_text()


def test_an_archive_from_a_newer_dlw_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "future.tar.gz"
    manifest = json.dumps({"format": 99, "dlwVersion": "9.0.0"}).encode()
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
    home = tmp_path / "home"
    switch_home(monkeypatch, home)
    assert main(["admin", "restore", str(archive), "--workspace-out", str(tmp_path / "ws.yaml")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.endswith("written by DLW 9.0.0 in backup format 99; this DLW (0.1.0) reads format 1 and older: "
                        "upgrade DLW")
    assert len(err.splitlines()) == 1
    assert not home.exists() and not (tmp_path / "ws.yaml").exists()
