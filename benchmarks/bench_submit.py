"""(b) A trivial notebook from `dlw train --wait` to Succeeded vs `python script.py`. Goal: at most +0.5 s."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from _common import ensure_bytecode, report, run_cmd, timed

DLW = shutil.which("dlw") or "dlw"


def main() -> None:
    ensure_bytecode()
    with tempfile.TemporaryDirectory(prefix="dlw-bench-") as tmp:
        work = Path(tmp)
        nb = {
            "nbformat": 4, "nbformat_minor": 5, "metadata": {},
            "cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                       "source": "print(sum(range(1000)))\n"}],
        }
        (work / "trivial.ipynb").write_text(json.dumps(nb))
        (work / "script.py").write_text("print(sum(range(1000)))\n")
        env = {**os.environ, "DLW_HOME": str(work / "home"), "DLW_BACKEND": "local"}
        baseline = timed(run_cmd([sys.executable, "script.py"], cwd=work, env=env))
        dlw = timed(run_cmd([DLW, "train", "trivial.ipynb", "--wait"], cwd=work, env=env))
        report("submit_to_succeeded", dlw_s=dlw, baseline_python_s=baseline, overhead_s=dlw - baseline,
               goal="overhead <= 0.5 s", met=dlw - baseline <= 0.5)


if __name__ == "__main__":
    main()
