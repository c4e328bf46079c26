"""`dlw diff A B`, `dlw diff NAME` and rerun's one-line note, on real local jobs that differ in each way.

Jobs run on the local backend. What one environment cannot vary in one test run (the Python version, a
package's version) is set on the earlier job's record, as a job run before an upgrade has it.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml

from dlw_magic import cli, core
from dlw_magic.backends import get_backend


def _submit(path: Path, name: str, **options: object) -> None:
    core.submit(core.build_spec(path, name=name, **options))


def _run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _set_record(home: Path, name: str, **provenance: object) -> None:
    """Give a finished job's record what an older environment would have recorded."""
    db = sqlite3.connect(home / "jobs.db")
    row = db.execute("SELECT provenance FROM jobs WHERE name = ?", (name,)).fetchone()
    prov = {**json.loads(row[0]), **{k: v for k, v in provenance.items() if k != "pip_freeze"}}
    db.execute("UPDATE jobs SET provenance = ? WHERE name = ?", (json.dumps(prov), name))
    if "pip_freeze" in provenance:
        db.execute("UPDATE jobs SET pip_freeze = ? WHERE name = ?", ("\n".join(provenance["pip_freeze"]), name))  # type: ignore[arg-type]
    db.commit()
    db.close()


def _cells(path: Path, sources: list[str], params: str = "lr = 0.1\nepochs = 1") -> Path:
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {"name": "python3", "display_name": "P"}},
          "cells": [{"cell_type": "code", "execution_count": None, "outputs": [], "source": params,
                     "metadata": {"tags": ["parameters"]}}]
          + [{"cell_type": "code", "execution_count": None, "outputs": [], "source": s, "metadata": {}}
             for s in sources]}
    path.write_text(json.dumps(nb))
    return path


def test_diff_of_two_jobs_names_each_change(dlw_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    nb = _cells(tmp_path / "train.ipynb", ["print('a', lr)", "x = 1"])
    _submit(nb, "first")
    _cells(nb, ["print('b', lr)", "x = 1", "y = 2"])
    spec = tmp_path / "job.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "second", "source": {"notebook": "train.ipynb"}, "parameters": {"lr": 0.5}, "workers": 2,
        "image": "python:3.12-slim", "resources": {"cpu": "2"},
        "env": {"WANDB_API_KEY": "hunter2-secret"}, "secrets": [{"env": "HF_TOKEN", "secret": "hf", "key": "token"}],
    }))
    (dlw_home / "secrets" / "hf").mkdir(parents=True)
    (dlw_home / "secrets" / "hf" / "token").write_text("xyz")
    core.submit(core.build_spec(spec))
    code, out, _ = _run_cli(["diff", "first", "second"], capsys)
    assert code == 0
    assert "~ lr: 0.1 -> 0.5" in out
    assert "-print('a', lr)" in out and "+print('b', lr)" in out
    assert "cell 4 (added)" in out and "+y = 2" in out
    assert "snapshot hash" in out
    assert "python:3.12-slim" in out
    assert "~ workers: 1 -> 2" in out and "+ resources.cpu: 2" in out
    assert "+ WANDB_API_KEY" in out and "+ HF_TOKEN" in out
    assert "hunter2" not in out and "xyz" not in out  # names, never values
    code, out, _ = _run_cli(["diff", "first", "second", "-o", "json"], capsys)
    data = json.loads(out)
    assert data["same"] is False
    assert {c["what"] for c in data["sections"]["env"]} == {"WANDB_API_KEY", "HF_TOKEN"}
    assert "hunter2" not in out


def test_env_value_change_is_shown_by_name_only(dlw_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    _cells(tmp_path / "nb.ipynb", ["pass"])
    for name, token in (("env-a", "old-token-1"), ("env-b", "new-token-2")):
        spec = tmp_path / f"{name}.yaml"
        spec.write_text(yaml.safe_dump({"name": name, "source": {"notebook": "nb.ipynb"}, "env": {"TOKEN": token}}))
        core.submit(core.build_spec(spec))
    code, out, _ = _run_cli(["diff", "env-a", "env-b"], capsys)
    assert "~ TOKEN: value changed" in out
    assert "token-1" not in out and "token-2" not in out


def test_python_and_package_versions(dlw_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    nb = _cells(tmp_path / "nb.ipynb", ["pass"])
    _submit(nb, "old-env")
    _submit(nb, "new-env")
    core.wait("old-env", timeout=120)
    core.wait("new-env", timeout=120)
    freeze = get_backend().get("new-env").provenance.get("pip_freeze") or []
    assert any(line.lower().startswith("pyyaml==") for line in freeze)  # the runner recorded the real list
    older = [line for line in freeze if not line.lower().startswith(("pyyaml==", "croniter=="))]
    _set_record(dlw_home, "old-env", python="3.9.1", pip_freeze=[*older, "PyYAML==5.1", "left-pad==1.0"])
    code, out, _ = _run_cli(["diff", "old-env", "new-env"], capsys)
    assert "~ python: 3.9.1 -> " in out
    assert "~ pyyaml: 5.1 -> " in out
    assert "+ croniter: " in out
    assert "- left-pad: 1.0" in out
    assert "Code:" not in out  # same notebook, same snapshot


def test_diff_against_now_and_the_one_line_rerun_note(dlw_home: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]):
    nb = _cells(tmp_path / "nb.ipynb", ["print(1)"])
    _submit(nb, "base")
    core.wait("base", timeout=120)
    code, out, _ = _run_cli(["diff", "base"], capsys)
    assert "no differences" in out  # nothing changed since
    _cells(nb, ["print(2)"], params="lr = 0.3\nepochs = 1")
    code, out, _ = _run_cli(["diff", "base"], capsys)
    assert "base -> now" in out and "~ lr: 0.1 -> 0.3" in out and "+print(2)" in out

    code, out, _ = _run_cli(["rerun", "base", "--as", "base-again"], capsys)
    assert code == 0 and "note:" not in out  # same environment: nothing to say
    freeze = get_backend().get("base").provenance["pip_freeze"]
    _set_record(dlw_home, "base", pip_freeze=[f"{line.split('==')[0]}==0.0.1" if line.lower().startswith("pyyaml==")
                                              else line for line in freeze])
    code, out, _ = _run_cli(["rerun", "base", "--as", "base-third"], capsys)
    notes = [line for line in out.splitlines() if line.startswith("note:")]
    assert len(notes) == 1
    assert "environment differs from base's" in notes[0] and "pyyaml 0.0.1 ->" in notes[0]
    assert "dlw diff base" in notes[0]


def test_diff_of_an_unknown_job_is_one_line(dlw_home: Path, capsys: pytest.CaptureFixture[str]):
    code, out, err = _run_cli(["diff", "nope"], capsys)
    assert code == 1 and err.count("\n") == 1 and "nope" in err


def test_diff_now_when_the_notebook_was_deleted(dlw_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    nb = _cells(tmp_path / "gone.ipynb", ["pass"])
    _submit(nb, "orphan")
    nb.unlink()
    code, out, _ = _run_cli(["diff", "orphan"], capsys)
    assert code == 0 and "is gone" in out
