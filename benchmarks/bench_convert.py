"""Notebook conversion speed: dlw's converter vs nbconvert's PythonExporter on the same notebook.

Generates a 2,000-cell notebook (code, markdown, a parameters cell, some magics and shell commands,
some skipped cells), converts it with both in this process and prints one JSON line. Each side is
timed warm (imports done, best of several runs); the cold figures include importing the converter.

    PYTHONPATH=. python benchmarks/bench_convert.py [--cells 2000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL = 5.0


def code_cell(source: str, tags: list[str] | None = None) -> dict:
    meta = {"tags": tags} if tags else {}
    return {"cell_type": "code", "execution_count": None, "metadata": meta, "outputs": [], "source": source}


def markdown_cell(source: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": source}


def make_notebook(n_cells: int) -> dict:
    cells = [
        markdown_cell("# Benchmark notebook\nGenerated for `bench_convert.py`."),
        code_cell("epochs = 3  # passes over the data\nlr = 0.01\nname = 'bench'\n", ["parameters"]),
    ]
    i = 0
    while len(cells) < n_cells:
        i += 1
        kind = i % 10
        if kind in (0, 1, 2):
            cells.append(markdown_cell(f"## Step {i}\nSome explanation of step {i}, with a list:\n- a\n- b\n"))
        elif kind == 3:
            cells.append(code_cell(f"%time total_{i} = sum(range({i}))\n!echo step {i}\n"))
        elif kind == 4:
            cells.append(code_cell(f"print('debug {i}')\n", ["skip"]))
        else:
            cells.append(code_cell(
                f"def step_{i}(x):\n    \"\"\"Step {i}.\"\"\"\n    y = [v * {i} for v in range(x)]\n"
                f"    return sum(y) / max(len(y), 1)\n\nresult_{i} = step_{i}(epochs)\n"
                f"print(f'step {i}: {{result_{i}:.3f}}')\n"
            ))
    cells.insert(5, code_cell("%matplotlib inline\nimport os\n"))
    cells = cells[:n_cells]
    for number, cell in enumerate(cells):
        cell["id"] = f"cell-{number}"  # nbformat 4.5 wants ids; nbconvert warns without them
    kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": kernelspec}, "cells": cells}


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def cold_seconds(code: str) -> float:
    """Wall time of a fresh interpreter doing ``code`` minus one doing nothing (imports included)."""
    def run(snippet: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", snippet], check=True)
        return time.perf_counter() - start

    return max(run(code) - run("pass"), 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from nbconvert import PythonExporter

    from dlw_magic.convert import convert_notebook

    with tempfile.TemporaryDirectory(prefix="dlw-bench-") as tmp:
        path = Path(tmp) / "bench.ipynb"
        path.write_text(json.dumps(make_notebook(args.cells), indent=1), encoding="utf-8")
        exporter = PythonExporter()
        convert_notebook(path, {"epochs": 5})  # warm both: imports, IPython's transformer, templates
        exporter.from_filename(str(path))
        dlw_s = best_of(args.repeat, lambda: convert_notebook(path, {"epochs": 5}))
        baseline_s = best_of(args.repeat, lambda: exporter.from_filename(str(path)))
        cold_dlw = cold_seconds(
            f"from pathlib import Path; from dlw_magic.convert import convert_notebook; "
            f"convert_notebook(Path({str(path)!r}), {{'epochs': 5}})"
        )
        cold_baseline = cold_seconds(
            f"from nbconvert import PythonExporter; PythonExporter().from_filename({str(path)!r})"
        )
    speedup = baseline_s / dlw_s
    print(json.dumps({
        "name": f"convert {args.cells}-cell notebook (warm, best of {args.repeat}) vs nbconvert PythonExporter",
        "dlw_s": round(dlw_s, 4),
        "baseline_s": round(baseline_s, 4),
        "speedup": round(speedup, 1),
        "goal": f">={GOAL:g}x",
        "met": speedup >= GOAL,
        "cold_dlw_s": round(cold_dlw, 3),
        "cold_baseline_s": round(cold_baseline, 3),
        "cold_speedup": round(cold_baseline / cold_dlw, 1) if cold_dlw else None,
    }))


if __name__ == "__main__":
    main()
