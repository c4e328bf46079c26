"""A corpus of pathological inputs (tests/data/pathological): alias bombs, deep nesting, huge numbers,
NUL bytes, lone surrogates, YAML tags, unhashable keys, paths that leave the folder, broken notebooks.
Each one is refused by ``dlw train`` with one line naming the file or field, exit 1, nothing left behind."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from pathlib import Path

import pytest

from dlw_magic import cli

CORPUS = Path(__file__).parent / "data" / "pathological"
HELPERS = {"train.py", "nb.ipynb"}  # what the corpus specs point at
# Too big to keep in the repository as files: made here.
GENERATED = {
    "huge_string.yaml": "name: " + "a" * 200_000 + "\nsource: {script: train.py}\n",
    "nb_deep.ipynb": "[" * 100_000 + "]" * 100_000,
    "huge_file.yaml": "name: x\n" + "# padding\n" * 500_000,
    "nb_deep_expression.ipynb": json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
         "source": "x = " + "-" * 100_000 + "1\n"}]}),
    "nb_deep_brackets.ipynb": json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
         "source": "x = " + "(" * 100_000 + "1" + ")" * 100_000 + "\n"}]}),
}
CASES = sorted([p.name for p in CORPUS.iterdir() if p.name not in HELPERS] + list(GENERATED))


@pytest.fixture
def corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dlw_home: Path) -> Path:
    work = tmp_path / "corpus"
    shutil.copytree(CORPUS, work)
    for name, text in GENERATED.items():
        (work / name).write_text(text)
    os.mkfifo(work / "pipe")  # files_fifo*.yaml: a pipe would be read forever
    (work / "loop-a").symlink_to("loop-b")  # files_symlink_loop.yaml
    (work / "loop-b").symlink_to("loop-a")
    monkeypatch.chdir(work)
    return work


def dlw(*args: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main(list(args))
    return rc, err.getvalue()


@pytest.mark.parametrize("name", CASES)
def test_pathological_input_is_refused_in_one_line(name, corpus, dlw_home):
    rc, err = dlw("train", name)
    assert rc == 1, f"{name} was accepted"
    assert err.startswith("dlw train: ") and err.count("\n") == 1, err
    named = name in err or any(field in err for field in ("source.", "secrets[", "parameters", "name:", "priority",
                                                          "workers"))
    assert named, f"{name}: the error names neither the file nor a field: {err}"
    assert not (dlw_home / "jobs").exists() or list((dlw_home / "jobs").iterdir()) == [], "a job folder was left"
    if name.endswith(".ipynb"):
        rc, err = dlw("convert", name)
        assert rc == 1 and err.count("\n") == 1 and name in err, err


def test_the_corpus_covers_the_reported_classes():
    """The kinds of input the issue reported, each present at least once."""
    names = " ".join(CASES)
    for kind in ("alias_bomb", "deep", "huge_int", "nul", "surrogate", "tag_set", "tag_binary", "tag_python",
                 "unhashable", "secret_path", "files_escape", "files_fifo", "files_symlink_loop", "priority_2_63",
                 "nb_deep_expression", "ranks_too_many"):
        assert kind in names, kind
    assert json.loads((CORPUS / "nb.ipynb").read_text())["nbformat"] == 4
