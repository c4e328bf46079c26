"""The launcher runs a converted notebook as a job does (`python -m dlw_magic.launch main.py`, cwd = snapshot)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from dlw_magic.convert import convert_notebook

ROOT = Path(__file__).resolve().parents[1]
PARAMS = "epochs = 3\nlr = 0.1\n"


def code(source: str, *tags: str) -> dict[str, Any]:
    meta = {"tags": list(tags)} if tags else {}
    return {"cell_type": "code", "execution_count": None, "metadata": meta, "outputs": [], "source": source}


def markdown(source: str) -> dict[str, Any]:
    return {"cell_type": "markdown", "metadata": {}, "source": source}


def write_nb(folder: Path, cells: list[dict[str, Any]], name: str) -> Path:
    path = folder / name
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}))
    return path


def launch(folder: Path, cells: list[dict], params: dict | None = None, plain: bool = False,
           args: tuple[str, ...] = (), output_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Convert ``cells`` into ``folder/main.py`` and run it in a fresh interpreter, as a job would
    (as its rank 0, which writes the executed notebook, when ``output_dir`` is given)."""
    notebook = write_nb(folder, cells, name="train.ipynb")
    (folder / "main.py").write_text(convert_notebook(notebook, params or {}).script, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("DLW_OUTPUT_DIR", "RANK")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    if output_dir is not None:
        env.update(DLW_OUTPUT_DIR=str(output_dir), RANK="0")
    runner = [sys.executable] if plain else [sys.executable, "-m", "dlw_magic.launch"]
    return subprocess.run(
        [*runner, "main.py", *args], cwd=folder, env=env, capture_output=True, text=True, timeout=120
    )


def test_shell_commands_and_magics_run_and_print(tmp_path: Path) -> None:
    result = launch(tmp_path, [
        code(PARAMS, "parameters"),
        code("!echo hi from the shell\n"),
        code("%time total = sum(range(epochs))\nprint('total', total)\n"),
        code("lines = !printf 'a\\nb\\n'\nprint(len(lines), 'lines')\n"),
    ], params={"epochs": 5})
    assert result.returncode == 0, result.stderr
    assert "hi from the shell\n" in result.stdout
    assert "Wall time:" in result.stdout and "total 10\n" in result.stdout
    assert "2 lines\n" in result.stdout


def test_traceback_names_the_notebook_cell_and_its_source(tmp_path: Path) -> None:
    result = launch(tmp_path, [
        code("import math\n"),
        markdown("The next cell fails."),
        code("def load(n):\n    return math.sqrt(n)\n\nload(-1)  # negative on purpose\n"),
        code("print('never reached')\n"),
    ])
    assert result.returncode == 1
    assert 'File "train.ipynb, cell 3", line 4, in <module>\n    load(-1)  # negative on purpose\n' in result.stderr
    assert 'File "train.ipynb, cell 3", line 2, in load\n    return math.sqrt(n)\n' in result.stderr
    assert result.stderr.rstrip().endswith("ValueError: math domain error")
    assert "launch.py" not in result.stderr  # the launcher's own frames are not the user's business
    assert "never reached" not in result.stdout


def test_traceback_through_a_magic_cell(tmp_path: Path) -> None:
    result = launch(tmp_path, [code("!echo before\nraise RuntimeError('after the shell')\n")])
    assert result.returncode == 1
    assert "before" in result.stdout
    assert 'File "train.ipynb, cell 1", line 2, in <module>' in result.stderr
    assert "RuntimeError: after the shell" in result.stderr


def test_sys_exit_keeps_its_status(tmp_path: Path) -> None:
    result = launch(tmp_path, [code("import sys\nprint('bye')\nsys.exit(3)\n"), code("print('not here')\n")])
    assert result.returncode == 3
    assert result.stdout == "bye\n" and result.stderr == ""


def test_script_semantics_main_file_argv_and_inspect(tmp_path: Path) -> None:
    cells = [
        code("import inspect, sys, pickle\ndef square(x):\n    return x * x\n"),
        code(
            "if __name__ == '__main__':\n"
            "    print('argv', sys.argv)\n"
            "    print('file', __file__)\n"
            "    print('pickled', pickle.loads(pickle.dumps(square))(4))\n"
            "    print(inspect.getsource(square).splitlines()[0])\n"
        ),
    ]
    result = launch(tmp_path, cells, args=("--lr", "0.1"))
    assert result.returncode == 0, result.stderr
    assert "argv ['main.py', '--lr', '0.1']\n" in result.stdout
    assert f"file {tmp_path.resolve() / 'main.py'}\n" in result.stdout
    assert "pickled 16\n" in result.stdout
    assert "def square(x):\n" in result.stdout


def test_spawned_processes_find_functions_defined_in_cells(tmp_path: Path) -> None:
    # torch.multiprocessing.spawn / DataLoader workers with 'spawn' pickle functions by reference to __main__.
    result = launch(tmp_path, [
        code("import multiprocessing as mp\ndef work(x):\n    return x + 1\n"),
        code("if __name__ == '__main__':\n    with mp.get_context('spawn').Pool(1) as pool:\n"
             "        print('spawned', pool.map(work, [1, 2]))\n"),
    ])
    assert result.returncode == 0, result.stderr
    assert "spawned [2, 3]\n" in result.stdout


def test_top_level_await_runs_as_in_a_notebook(tmp_path: Path) -> None:
    result = launch(tmp_path, [code("import asyncio\n"), code("await asyncio.sleep(0)\nprint('awaited')\n")])
    assert result.returncode == 0, result.stderr
    assert result.stdout == "awaited\n"


def test_plain_python_runs_the_same_script(tmp_path: Path) -> None:
    result = launch(tmp_path, [
        code(PARAMS, "parameters"),
        code("%dlw train\n!echo shell ok\nprint('epochs', epochs)\n"),
        code("display('shown')\n"),
    ], params={"epochs": 2}, plain=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["shell ok", "epochs 2", "'shown'"]


def test_launcher_usage_errors(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    missing = subprocess.run([sys.executable, "-m", "dlw_magic.launch", "nope.py"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "nope.py: cannot read" in missing.stderr
    bare = subprocess.run([sys.executable, "-m", "dlw_magic.launch"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert bare.returncode == 2 and bare.stderr.startswith("usage:")


def test_future_imports_apply_from_the_top_in_both_runners(tmp_path: Path) -> None:
    cells = [
        code("import os\n"),
        code("from __future__ import annotations  # lazy annotations\ndef f(x: Undefined) -> None:\n    pass\n"),
        code("def g(y: AlsoUndefined):\n    pass\nprint(f.__annotations__['x'], g.__annotations__['y'])\n"),
    ]
    for plain in (False, True):
        result = launch(tmp_path, cells, plain=plain)
        assert result.returncode == 0, result.stderr
        assert result.stdout == "Undefined AlsoUndefined\n"


def test_globals_are_released_after_the_notebooks_exit_handlers(tmp_path: Path) -> None:
    # The notebook's atexit handlers still see its globals; afterwards its objects are finalized (and a
    # file it never closed is flushed) while the interpreter is whole, not during its teardown.
    cells = [
        code("import atexit, sys\nclass Resource:\n    def __del__(self):\n"
             "        print('released while finalizing:', sys.is_finalizing(), flush=True)\n"),
        code("res = Resource()\nlog = open('unclosed.txt', 'w')\nlog.write('kept')\n"),
        code("atexit.register(lambda: print('exit handler sees', type(res).__name__, flush=True))\n"),
    ]
    result = launch(tmp_path, cells)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-2:] == ["exit handler sees Resource", "released while finalizing: False"]
    assert (tmp_path / "unclosed.txt").read_text() == "kept"


def test_a_missing_relative_file_hints_at_shipping_the_folder(tmp_path: Path) -> None:
    result = launch(tmp_path, [code("open('data/train.csv')\n")])
    assert result.returncode == 1
    assert "FileNotFoundError" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("dlw: 'data/train.csv' is not in the job's copy")
    assert "Ship the notebook's folder" in result.stderr


def test_a_missing_absolute_file_gets_no_folder_hint(tmp_path: Path) -> None:
    result = launch(tmp_path, [code(f"open({str(tmp_path / 'nope.csv')!r})\n")])
    assert result.returncode == 1 and "FileNotFoundError" in result.stderr
    assert "Ship the notebook's folder" not in result.stderr


def test_rank_0_recording_the_notebook_logs_what_the_other_ranks_log(tmp_path: Path) -> None:
    # The executed notebook is extra: the log of the rank writing it is the one it would have without.
    cells = [
        code(PARAMS, "parameters"),
        code("import sys\nprint('epochs', epochs)\nprint('to stderr', file=sys.stderr)\n"),
        code("display({'lr': lr})\nlr * 2\n"),
        code("!echo shell\n%env MODE=fast\nx = 1\n"),
        code("x + undefined_name\n"),
    ]
    without = launch(tmp_path, cells, params={"epochs": 2})
    recorded = launch(tmp_path, cells, params={"epochs": 2}, output_dir=tmp_path / "out")
    assert (tmp_path / "out" / "executed.ipynb").is_file()
    assert recorded.returncode == without.returncode == 1
    assert recorded.stdout == without.stdout and "env: MODE=fast\n" in recorded.stdout
    assert "{'lr': 0.1}\n" in recorded.stdout and "0.2" not in recorded.stdout  # a result stays out of the log
    assert recorded.stderr == without.stderr and "NameError" in recorded.stderr
