"""``dlw_magic.checkpoint``: every attempt of a job sees the same folder; a retried job continues."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dlw_magic import checkpoint
from dlw_magic.convert import convert_notebook

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Rank 0 of a job whose output folder is ``tmp_path/out``."""
    monkeypatch.delenv("DLW_CHECKPOINT_DIR", raising=False)
    monkeypatch.setenv("DLW_OUTPUT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("RANK", "0")
    return tmp_path / "out"


def test_save_and_load_a_plain_state(job: Path) -> None:
    assert checkpoint.load() is None  # the first attempt starts fresh
    written = checkpoint.save({"epoch": 3, "history": [0.5, 0.25]})
    assert written == job / "checkpoints" / "last.pt"
    assert checkpoint.load() == {"epoch": 3, "history": [0.5, 0.25]}
    checkpoint.save({"epoch": 4}, name="best.pt")
    assert checkpoint.load("best.pt") == {"epoch": 4} and checkpoint.load()["epoch"] == 3
    assert sorted(p.name for p in written.parent.iterdir()) == ["best.pt", "last.pt"]  # no temporary left


def test_torch_state_dicts_go_through_torch_save(job: Path) -> None:
    torch = pytest.importorskip("torch")
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(torch.ones(1, 3)).sum().backward()
    opt.step()
    checkpoint.save({"epoch": 2, "model": net.state_dict(), "optimizer": opt.state_dict()})
    state = checkpoint.load(map_location="cpu")
    assert torch.equal(state["model"]["weight"], net.weight) and state["epoch"] == 2
    assert state["optimizer"]["state"][0]["momentum_buffer"].shape == (2, 3)


def test_only_rank_0_writes_and_every_rank_reads(job: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checkpoint.save({"epoch": 1})
    monkeypatch.setenv("RANK", "1")
    assert checkpoint.save({"epoch": 99}) is None
    assert checkpoint.load() == {"epoch": 1}


def test_the_backends_folder_wins_and_outside_a_job_nothing_happens(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DLW_OUTPUT_DIR", raising=False)
    monkeypatch.delenv("DLW_CHECKPOINT_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert checkpoint.save({"epoch": 1}) is None and checkpoint.load() is None
    assert list(tmp_path.iterdir()) == []  # a notebook run by hand never resumes a stale run
    monkeypatch.setenv("DLW_OUTPUT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("DLW_CHECKPOINT_DIR", str(tmp_path / "ckpt"))
    assert checkpoint.save({"epoch": 1}) == tmp_path / "ckpt" / "last.pt"


@pytest.mark.parametrize("name", ["../x.pt", "a/b.pt", "", ".hidden"])
def test_a_name_must_be_a_plain_file_name(job: Path, name: str) -> None:
    with pytest.raises(ValueError, match="checkpoint name"):
        checkpoint.save({}, name=name)


def test_a_retried_notebook_job_continues_where_it_stopped(tmp_path: Path) -> None:
    notebook = tmp_path / "train.ipynb"
    source = ("from dlw_magic import checkpoint\nimport os\n"
              "state = checkpoint.load()\nstart = state['epoch'] + 1 if state else 1\n"
              "for epoch in range(start, 5):\n"
              "    print('epoch', epoch, flush=True)\n"
              "    checkpoint.save({'epoch': epoch})\n"
              "    if epoch == 2 and os.environ['DLW_ATTEMPT'] == '0':\n"
              "        os._exit(137)  # preempted\n")
    cell = {"cell_type": "code", "id": "a", "metadata": {}, "outputs": [], "execution_count": None, "source": source}
    notebook.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [cell]}))
    (tmp_path / "main.py").write_text(convert_notebook(notebook, {}).script)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DLW_OUTPUT_DIR": str(tmp_path / "out"), "RANK": "0"}
    env.pop("DLW_CHECKPOINT_DIR", None)
    runs = [subprocess.run([sys.executable, "-m", "dlw_magic.launch", "main.py"], cwd=tmp_path, capture_output=True,
                           text=True, env={**env, "DLW_ATTEMPT": str(attempt)}, timeout=120) for attempt in (0, 1)]
    assert runs[0].returncode == 137 and runs[0].stdout == "epoch 1\nepoch 2\n"
    assert runs[1].returncode == 0 and runs[1].stdout == "epoch 3\nepoch 4\n"
