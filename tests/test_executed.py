"""Rank 0 of a notebook job writes ``executed.ipynb`` into DLW_OUTPUT_DIR: the outputs Jupyter would show."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest

from dlw_magic.convert import convert_notebook
from dlw_magic.executed import executed_notebook_path

ROOT = Path(__file__).resolve().parents[1]


def code(source: str, *tags: str) -> dict[str, Any]:
    stale = [{"output_type": "stream", "name": "stdout", "text": "from the last interactive run\n"}]
    return {"cell_type": "code", "execution_count": 9, "id": f"c{abs(hash(source))}", "metadata": {"tags": list(tags)},
            "outputs": stale, "source": source}


def prepare(folder: Path, cells: list[dict[str, Any]], params: dict[str, Any] | None = None) -> list[str]:
    """A snapshot as a job has it (the notebook and its main.py); the launcher's command line."""
    notebook = folder / "train.ipynb"
    notebook.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}))
    (folder / "main.py").write_text(convert_notebook(notebook, params or {}).script, encoding="utf-8")
    return [sys.executable, "-m", "dlw_magic.launch", "main.py"]


def job_env(out: Path, rank: str = "0") -> dict[str, str]:
    # PYTHONUNBUFFERED as both runners set it for ranks (without it a fresh shell buffers what a cell prints).
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "DLW_OUTPUT_DIR": str(out), "RANK": rank, "DLW_JOB_NAME": "train-x1", "DLW_ATTEMPT": "0",
            "PYTHONUNBUFFERED": "1"}


def run_job(folder: Path, cells: list[dict[str, Any]], params: dict[str, Any] | None = None,
            rank: str = "0") -> tuple[subprocess.CompletedProcess[str], Path]:
    argv = prepare(folder, cells, params)
    out = folder / "out"
    result = subprocess.run(argv, cwd=folder, env=job_env(out, rank), capture_output=True, text=True, timeout=300)
    return result, out


def read(out: Path) -> nbformat.NotebookNode:
    path = executed_notebook_path(out)
    assert path is not None, f"no executed notebook in {out}"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    return nb


def outputs(cell: nbformat.NotebookNode) -> list[tuple[str, Any]]:
    """(output_type, what it shows) per output, compact enough to compare."""
    shown = []
    for out in cell.outputs:
        if out.output_type == "stream":
            shown.append((f"stream:{out.name}", out.text))
        elif out.output_type == "error":
            shown.append(("error", f"{out.ename}: {out.evalue}"))
        else:
            shown.append((out.output_type, sorted(out.data)))
    return shown


def test_outputs_as_jupyter_shows_them(tmp_path: Path) -> None:
    cells = [
        {"cell_type": "markdown", "id": "intro", "metadata": {}, "source": "# Training"},
        code("epochs = 1\n", "parameters"),
        code("import sys\nprint('epochs', epochs)\nprint('careful', file=sys.stderr)\n"
             "for i in range(3):\n    print(f'{i * 50}%', end='\\r')\nprint('100%')\n"),
        code("import pandas as pd\ntable = pd.DataFrame({'loss': [0.5, 0.25]})\ndisplay(table)\n6 * 7\n"),
        code("import matplotlib.pyplot as plt\nplt.plot([3, 1, 2])\nplt.title('loss')\nplt.show()\n"
             "print('after the figure')\nplt.figure()\nplt.plot([1, 2]);\n"),
        code("table;\n"),
        code("table\n"),
    ]
    result, out = run_job(tmp_path, cells, params={"epochs": 3})
    assert result.returncode == 0, result.stderr
    assert "epochs 3\n" in result.stdout and "careful" in result.stderr  # the log still gets everything
    nb = read(out)
    assert nb.metadata.dlw.status == "completed" and nb.metadata.dlw.job == "train-x1"
    assert [c.cell_type for c in nb.cells] == ["markdown", "code", "code", "code", "code", "code", "code", "code"]
    params, injected, printing, table, figure, quiet, last = nb.cells[1:]
    assert [c.execution_count for c in nb.cells[1:]] == [1, 2, 3, 4, 5, 6, 7]
    assert injected.metadata.tags == ["injected-parameters"] and "epochs = 3\n" in injected.source
    assert params.outputs == [] and injected.outputs == []  # the stale outputs are gone
    assert outputs(printing) == [("stream:stdout", "epochs 3\n"), ("stream:stderr", "careful\n"),
                                 ("stream:stdout", "100%\n")]  # \r progress overwritten, as Jupyter shows it
    assert outputs(table) == [("display_data", ["text/html", "text/plain"]),
                              ("execute_result", ["text/plain"])]
    assert "<table" in table.outputs[0].data["text/html"] and table.outputs[1].data["text/plain"] == "42"
    assert outputs(figure) == [("display_data", ["image/png", "text/plain"]), ("stream:stdout", "after the figure\n"),
                               ("display_data", ["image/png", "text/plain"])]  # shown where plt.show() was called
    import base64

    assert base64.b64decode(figure.outputs[0].data["image/png"]).startswith(b"\x89PNG")
    assert quiet.outputs == []  # a trailing ; hides the value, as in Jupyter
    assert outputs(last) == [("execute_result", ["text/html", "text/plain"])]
    assert last.outputs[0].execution_count == 7
    assert "shell.execute_reply" in last.metadata.execution


def test_a_failing_cell_shows_its_error_and_the_cells_after_it_did_not_run(tmp_path: Path) -> None:
    cells = [
        code("print('loading')\n"),
        code("def step(n):\n    return 1 / n\n\nstep(0)\n"),
        code("print('never')\n"),
    ]
    result, out = run_job(tmp_path, cells)
    assert result.returncode == 1
    assert 'File "train.ipynb, cell 2", line 4' in result.stderr  # the log's traceback is unchanged
    nb = read(out)
    assert nb.metadata.dlw.status == "failed"
    loading, failing, never = nb.cells
    assert outputs(loading) == [("stream:stdout", "loading\n")]
    assert outputs(failing) == [("error", "ZeroDivisionError: division by zero")]
    trace = "\n".join(failing.outputs[0].traceback)
    assert 'File "train.ipynb, cell 2", line 2, in step' in trace and "launch.py" not in trace
    assert never.execution_count is None and never.outputs == []


def test_a_syntax_error_lands_on_its_cell(tmp_path: Path) -> None:
    result, out = run_job(tmp_path, [code("x = 1\n"), code("return 1  # only the compiler refuses it\n")])
    assert result.returncode == 1 and "SyntaxError" in result.stderr
    nb = read(out)
    assert nb.metadata.dlw.status == "failed" and nb.cells[0].outputs == []
    assert outputs(nb.cells[1])[0][0] == "error" and nb.cells[1].outputs[0].ename == "SyntaxError"


def test_ipython_display_magics_and_shell_commands_are_recorded(tmp_path: Path) -> None:
    cells = [
        code("!echo from the shell\n"),
        code("from IPython.display import HTML, display\ndisplay(HTML('<b>bold</b>'))\n%time y = 2\ny\n"),
        code("import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.plot([1, 2])\nfig\n"),
    ]
    result, out = run_job(tmp_path, cells)
    assert result.returncode == 0, result.stderr
    assert "from the shell" in result.stdout
    shell, html, figure = read(out).cells
    assert outputs(shell) == [("stream:stdout", "from the shell\n")]
    assert html.outputs[0].data["text/html"] == "<b>bold</b>"
    assert html.outputs[1].output_type == "stream" and "Wall time" in html.outputs[1].text
    assert html.outputs[2].data == {"text/plain": "2"}
    assert outputs(figure) == [("execute_result", ["image/png", "text/plain"])]  # shown once, not twice


def test_a_broken_repr_does_not_fail_the_job(tmp_path: Path) -> None:
    cells = [code("class Odd:\n    def _repr_html_(self):\n        raise ValueError('no html')\n"
                  "    def __repr__(self):\n        return 'Odd()'\n\nOdd()\n"),
             code("class Worse:\n    def __repr__(self):\n        raise RuntimeError('no repr')\n\nWorse()\n"),
             code("print('still running')\n")]
    result, out = run_job(tmp_path, cells)
    assert result.returncode == 0, result.stderr
    odd, worse, last = read(out).cells
    assert odd.outputs[0].data == {"text/plain": "Odd()"}
    assert "cannot be shown: RuntimeError('no repr')" in worse.outputs[0].data["text/plain"]
    assert outputs(last) == [("stream:stdout", "still running\n")]


def test_forked_workers_print_to_the_log_only(tmp_path: Path) -> None:
    cells = [code("import multiprocessing as mp, sys\n"
                  "def work(x):\n    sys.stdout.write(f'worker {x}\\n')\n    sys.stdout.flush()\n    return x * 10\n"),
             code("with mp.get_context('fork').Pool(2) as pool:\n    print(pool.map(work, [1, 2]))\n")]
    result, out = run_job(tmp_path, cells)
    assert result.returncode == 0, result.stderr
    assert "worker 1\n" in result.stdout and "worker 2\n" in result.stdout
    nb = read(out)
    assert nb.metadata.dlw.status == "completed"
    assert outputs(nb.cells[1]) == [("stream:stdout", "[10, 20]\n")]


def test_only_rank_0_writes_it(tmp_path: Path) -> None:
    result, out = run_job(tmp_path, [code("print('hi')\n")], rank="1")
    assert result.returncode == 0 and result.stdout == "hi\n"
    assert executed_notebook_path(out) is None


def test_a_cancelled_job_leaves_what_ran(tmp_path: Path) -> None:
    argv = prepare(tmp_path, [code("print('epoch 1', flush=True)\n"),
                              code("import time\nprint('training')\ntime.sleep(120)\n"),
                              code("print('never')\n")])
    out = tmp_path / "out"
    proc = subprocess.Popen(argv, cwd=tmp_path, env=job_env(out), stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "epoch 1\n"
    assert proc.stdout.readline() == "training\n"  # the sleeping cell has started
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == -signal.SIGTERM  # still dies of the signal
    nb = read(out)
    assert nb.metadata.dlw.status == "terminated"
    assert outputs(nb.cells[0]) == [("stream:stdout", "epoch 1\n")]
    assert outputs(nb.cells[1]) == [("stream:stdout", "training\n")]
    assert nb.cells[2].execution_count is None


@pytest.mark.parametrize("bad", ["not json", None])
def test_an_unreadable_notebook_does_not_fail_the_job(tmp_path: Path, bad: str | None) -> None:
    argv = prepare(tmp_path, [code("print('ran')\n")])
    notebook = tmp_path / "train.ipynb"
    if bad is None:
        notebook.unlink()
    else:
        notebook.write_text(bad)
    result = subprocess.run(argv, cwd=tmp_path, env=job_env(tmp_path / "out"), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and result.stdout == "ran\n"
    assert result.stderr.startswith("dlw: no executed notebook: ") and "train.ipynb" in result.stderr
