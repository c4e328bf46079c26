"""(#12) The executed notebook: rank 0 records every cell's outputs. Goal: within +0.5 s of the plain script.

Two notebooks, each converted once: one with a pandas table and a matplotlib figure, one trivial. Timed:
``python main.py`` (the converted script, no outputs kept: the floor), ``python -m dlw_magic.launch main.py``
as rank 0 of a job (writes executed.ipynb), the whole ``dlw train NB --wait`` (local backend), and
papermill (or, where it is not installed, ``jupyter nbconvert --execute``), which start a kernel to get
the same file. The goal is on ``dlw train --wait``.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import report, run_cmd, timed

ROOT = Path(__file__).resolve().parents[1]
TABLE_AND_FIGURE = [
    "epochs = 3\n",
    "import numpy as np\nimport pandas as pd\nimport matplotlib.pyplot as plt\n",
    "table = pd.DataFrame(np.random.default_rng(0).normal(size=(200, 4)), columns=list('abcd'))\n"
    "print('rows', len(table))\ntable.describe()\n",
    "plt.plot(table['a'].cumsum())\nplt.title('a')\nplt.show()\n",
]
TRIVIAL = ["print('hello')\n"]


def write_notebook(folder: Path, sources: list[str]) -> Path:
    cells = [{"cell_type": "code", "id": f"c{i}", "execution_count": None, "outputs": [], "source": src,
              "metadata": {"tags": ["parameters"]} if i == 0 and src.startswith("epochs") else {}}
             for i, src in enumerate(sources)]
    kernel = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "train.ipynb"
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": kernel},
                                "cells": cells}))
    from dlw_magic.convert import convert_notebook

    (folder / "main.py").write_text(convert_notebook(path, {}).script)
    return path


def kernel_runner(folder: Path) -> tuple[str, list[str]]:
    papermill = shutil.which("papermill")
    if papermill:
        return "papermill", [papermill, "-k", "python3", "train.ipynb", "papermill.ipynb"]
    jupyter = shutil.which("jupyter") or str(Path(sys.executable).with_name("jupyter"))
    return "nbconvert", [jupyter, "nbconvert", "--to", "notebook", "--execute", "train.ipynb",
                         "--output", "nbconvert.ipynb", "--log-level", "ERROR"]


def cpu_seconds(argv: list[str], repeat: int = 3, **kwargs: Any) -> float:
    """Median CPU time (user + system) of the command: steadier than wall time on a busy machine."""
    times = []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, **kwargs)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        times.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return statistics.median(times)


def measure(name: str, sources: list[str], with_kernel: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="dlw-bench-") as tmp:
        folder = Path(tmp)
        write_notebook(folder, sources)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
        env.pop("DLW_OUTPUT_DIR", None)
        job = {**env, "DLW_OUTPUT_DIR": str(folder / "out"), "RANK": "0"}
        plain = timed(run_cmd([sys.executable, "main.py"], cwd=folder, env=env), repeat=3)
        launch = timed(run_cmd([sys.executable, "-m", "dlw_magic.launch", "main.py"], cwd=folder, env=job), repeat=3)
        plain_cpu = cpu_seconds([sys.executable, "main.py"], cwd=folder, env=env)
        launch_cpu = cpu_seconds([sys.executable, "-m", "dlw_magic.launch", "main.py"], cwd=folder, env=job)
        written = json.loads((folder / "out" / "executed.ipynb").read_text())
        assert written["metadata"]["dlw"]["status"] == "completed", written["metadata"]
        local = {**env, "DLW_HOME": str(folder / "home"), "DLW_BACKEND": "local"}
        train = timed(run_cmd([sys.executable, "-m", "dlw_magic.cli", "train", "train.ipynb", "--wait"], cwd=folder,
                              env=local), repeat=3)
        fields = {"plain_python_s": plain, "launch_with_outputs_s": launch, "dlw_train_wait_s": train,
                  "launch_extra_s": launch - plain, "dlw_train_extra_s": train - plain,
                  "plain_python_cpu_s": plain_cpu, "launch_with_outputs_cpu_s": launch_cpu}
        if with_kernel:
            kind, argv = kernel_runner(folder)
            fields[f"{kind}_s"] = timed(run_cmd(argv, cwd=folder, env=env, stderr=-3), repeat=1)
        report(f"executed_notebook_{name}", **fields, goal="dlw train --wait < plain + 0.5 s", met=train - plain < 0.5)


def main() -> None:
    measure("table_and_figure", TABLE_AND_FIGURE, with_kernel=True)
    measure("trivial", TRIVIAL, with_kernel=False)


if __name__ == "__main__":
    main()
