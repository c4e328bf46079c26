"""Inputs that used to crash (a traceback in the CLI, a 500 over REST), each now a one-line answer, and the
local runner's limits that apply to a job as a whole (its log cap across retries, its number of ranks)."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest

from dlw_magic import cli, core
from dlw_magic.backends import JobState

pytestmark = pytest.mark.timeout(180)


def dlw(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        rc = cli.main(list(args))
    return rc, out.getvalue(), err.getvalue()


def one_line_error(rc: int, err: str, *fragments: str) -> None:
    assert rc == 1 and re.match(r"dlw [a-z]+: ", err) and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, err


def params_notebook(folder: Path, params: str) -> Path:
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": params, "outputs": [],
         "execution_count": None},
        {"cell_type": "code", "metadata": {}, "source": "print(sorted(s), b, c, e)", "outputs": [],
         "execution_count": None}]}
    path = folder / "p.ipynb"
    path.write_text(json.dumps(nb))
    return path


def test_defaults_json_cannot_hold_still_submit_and_overrides_are_checked(dlw_home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    nb = params_notebook(tmp_path, "s = {3, 1}\nb = b'x'\nc = 1j\ne = ...\nf = 0.5\n")
    rc, out, err = dlw("train", str(nb), "--name", "odd-defaults", "--wait")
    assert rc == 0, err
    job = core.get_job("odd-defaults")
    assert job.state is JobState.SUCCEEDED
    assert job.provenance["parameters"] == {"s": [1, 3], "f": 0.5}  # set as a list; bytes, complex, ... left out
    rc, out, err = dlw("train", str(nb), "--name", "set-of-lists", "-p", "s=[[1],[2]]")
    one_line_error(rc, err, "parameter 's' expects set")
    rc, out, err = dlw("train", str(nb), "--name", "huge-float", "-p", "f=1" + "0" * 400)
    one_line_error(rc, err, "parameter 'f' expects float")
    rc, out, err = dlw("train", str(nb), "--name", "set-override", "-p", "s=[2, 2, 5]", "--wait")
    assert rc == 0, err
    assert "[2, 5]" in (Path(core.get_job("set-override").output_dir).parent / "logs" / "rank-0.log").read_text()


def test_a_priority_beyond_32_bits_is_refused(dlw_home, tmp_path):
    script = tmp_path / "t.py"
    script.write_text("pass\n")
    for value in ("9223372036854775808", "-9223372036854775809", "2147483648"):
        rc, _, err = dlw("train", str(script), "--priority", value)
        one_line_error(rc, err, "priority")


@pytest.mark.parametrize("content, fragment", [
    (b"dataDir: 5\n", "dataDir: expected a folder path, got 5"),
    (b"dataDir: relative/place\n", "is not an absolute path"),
    (b"\xff\xfe: x\n", "not a readable YAML file"),
    (b"dataDir: [\n", "not a readable YAML file"),
    (b"- 1\n", "expected a mapping"),
])
def test_a_bad_config_file_is_one_line_on_every_command(tmp_path, monkeypatch, content, fragment):
    monkeypatch.delenv("DLW_HOME", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("DLW_BACKEND", "local")
    (tmp_path / "cfg" / "dlw").mkdir(parents=True)
    (tmp_path / "cfg" / "dlw" / "config.yaml").write_bytes(content)
    from dlw_magic import backends

    backends._cache.clear()
    try:
        rc, _, err = dlw("jobs")
    finally:
        backends._cache.clear()
    one_line_error(rc, err, "config.yaml", fragment)


def test_out_into_a_missing_folder_or_onto_a_folder_is_one_line(tmp_path):
    script = tmp_path / "t.py"
    script.write_text("pass\n")
    nb = params_notebook(tmp_path, "s = {1}\nb = 1\nc = 1\ne = 1\n")
    for target in (tmp_path / "missing" / "x.py", tmp_path):
        for command, source in (("convert", nb), ("render", script)):
            rc, _, err = dlw(command, str(source), "-o", str(target))
            one_line_error(rc, err, "-o/--out", str(target))


def test_rerun_after_the_snapshot_is_gone(dlw_home, tmp_path):
    import shutil

    script = tmp_path / "t.py"
    script.write_text("pass\n")
    rc, _, err = dlw("train", str(script), "--name", "first", "--wait")
    assert rc == 0, err
    shutil.rmtree(Path(core.get_job("first").output_dir).parent / "snapshot")
    rc, _, err = dlw("rerun", "first")
    one_line_error(rc, err, "snapshot", "is gone")


def test_a_sparse_file_over_the_limit_is_refused_before_it_is_copied(dlw_home, tmp_path):
    script = tmp_path / "t.py"
    script.write_text("pass\n")
    with open(tmp_path / "sparse.bin", "wb") as f:
        f.truncate(600 << 20)  # 600 MiB that take no disk
    rc, _, err = dlw("train", str(script), "--file", "sparse.bin", "--name", "sparse")
    one_line_error(rc, err, "sparse.bin", "512 MiB")
    staged = [p for p in (dlw_home / "jobs").rglob("sparse.bin")] if (dlw_home / "jobs").exists() else []
    assert staged == []


def test_the_log_cap_holds_for_the_job_not_each_attempt(dlw_home, tmp_path, monkeypatch):
    monkeypatch.setenv("DLW_LOG_MAX_BYTES", "10000")
    script = tmp_path / "retry.py"
    script.write_text("for i in range(2000):\n    print(f'line {i:05d}')\nraise SystemExit(3)\n")
    name = core.submit(core.build_spec(script, name="retried", retries=2)).name
    job = core.wait(name, timeout=120)
    assert job.state is JobState.FAILED and job.attempt == 2
    log = Path(job.output_dir).parent / "logs" / "rank-0.log"
    assert log.stat().st_size < 10000 + 1500  # three attempts, one cap (notes about the cut included)


def test_a_thousand_ranks_are_refused_up_front(dlw_home, tmp_path):
    script = tmp_path / "t.py"
    script.write_text("pass\n")
    rc, _, err = dlw("train", str(script), "--workers", "1024", "--procs-per-worker", "10")
    one_line_error(rc, err, "10240 ranks", "at most")
    assert not (dlw_home / "jobs").exists() or list((dlw_home / "jobs").iterdir()) == []
