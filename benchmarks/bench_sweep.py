"""A 50-trial grid with ``dlw sweep --parallel 2 --wait`` vs the same 50 jobs from a shell loop at the same
parallelism (``xargs -P 2 dlw train --wait``), same notebook, same run. Goal: the sweep within 1.2x.

The notebook is a tiny one (it logs a metric and sleeps 0.5 s): on a shared 2-core machine the digits
example takes minutes per trial and would measure the machine, not DLW. ``--notebook`` runs another one
(e.g. examples/digits_ddp.ipynb; its parameters cell needs a parameter named in ``--param``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ensure_bytecode, report

DLW = shutil.which("dlw") or "dlw"
TINY = [
    ("x = 0\n", ["parameters"]),
    ("import time\nfrom dlw_magic import log_metrics\nlog_metrics(step=1, score=x)\ntime.sleep(0.5)\n", []),
]


def write_tiny(path: Path) -> None:
    cells = [{"cell_type": "code", "metadata": {"tags": tags}, "outputs": [], "execution_count": None, "source": src}
             for src, tags in TINY]
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--notebook", help="default: a tiny notebook (0.5 s per trial)")
    parser.add_argument("--param", default="x", help="the notebook parameter the grid sets")
    args = parser.parse_args()
    ensure_bytecode()
    values = [str(i) for i in range(args.trials)]
    with tempfile.TemporaryDirectory(prefix="dlw-bench-sweep-") as tmp:
        work = Path(tmp)
        nb = work / "tiny.ipynb"
        if args.notebook:
            shutil.copy(args.notebook, nb)
        else:
            write_tiny(nb)

        def env(home: str) -> dict[str, str]:
            return {**os.environ, "DLW_HOME": str(work / home), "DLW_BACKEND": "local"}

        start = time.perf_counter()
        subprocess.run(
            ["xargs", "-P", str(args.parallel), "-I{}", DLW, "train", nb.name, "-p", f"{args.param}={{}}", "--wait"],
            input="\n".join(values) + "\n", text=True, cwd=work, env=env("loop"), check=True,
            stdout=subprocess.DEVNULL,
        )
        loop = time.perf_counter() - start
        start = time.perf_counter()
        subprocess.run(
            [DLW, "sweep", nb.name, "-p", f"{args.param}={','.join(values)}", "--parallel", str(args.parallel),
             "--name", "bench", "--wait"],
            cwd=work, env=env("sweep"), check=True, stdout=subprocess.DEVNULL,
        )
        sweep = time.perf_counter() - start
    report("sweep_grid_vs_shell_loop", trials=args.trials, parallel=args.parallel, sweep_s=sweep,
           shell_loop_s=loop, ratio=sweep / loop, goal="ratio <= 1.2", met=sweep / loop <= 1.2,
           notebook=args.notebook or "tiny (0.5 s per trial)")


if __name__ == "__main__":
    sys.exit(main())
