"""``%dlw train`` in a kernel that a real jupyter_server started for a notebook session.

This is how JupyterLab runs the magic: the server starts the kernel in the notebook's folder with
JPY_SESSION_NAME in its environment, and the magic finds the notebook from that alone.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client import BlockingKernelClient

from dlw_magic import core
from dlw_magic.backends import JobState

pytest_plugins = ["pytest_jupyter.jupyter_server"]  # a real Jupyter server per test

pytest_plugins = ["pytest_jupyter.jupyter_server"]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def open_session(jp_fetch: Any, jp_asyncio_loop: Any, jp_serverapp: Any, dlw_home: Path,
                 monkeypatch: pytest.MonkeyPatch) -> Any:
    """POST /api/sessions as a frontend does; returns a client of the session's kernel."""
    # kernels inherit the server's environment: the package (not installed in CI) and DLW_HOME
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    clients: list[BlockingKernelClient] = []

    def start(path: str, name: str | None) -> BlockingKernelClient:
        body: dict[str, Any] = {"path": path, "type": "notebook", "kernel": {"name": "python3"}}
        if name is not None:
            body["name"] = name
        reply = jp_asyncio_loop.run_until_complete(
            jp_fetch("api", "sessions", method="POST", body=json.dumps(body)))
        kernel_id = json.loads(reply.body)["kernel"]["id"]
        km = jp_serverapp.kernel_manager.get_kernel(kernel_id)
        kc = BlockingKernelClient(connection_file=km.connection_file)
        kc.load_connection_file()
        kc.start_channels(hb=False)  # a 1 s heartbeat reads a busy CI machine as a dead kernel
        kc.wait_for_ready(timeout=60)
        clients.append(kc)
        return kc

    yield start
    for kc in clients:
        kc.stop_channels()


def write_notebook(path: Path, cells: list[str | tuple[str, list[str]]]) -> Path:
    """A notebook of code cells; a (source, tags) pair tags its cell."""
    nb = nbformat.v4.new_notebook()
    for cell in cells:
        source, tags = (cell, []) if isinstance(cell, str) else cell
        nb.cells.append(nbformat.v4.new_code_cell(source, metadata={"tags": tags} if tags else {}))
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def run(kc: BlockingKernelClient, code: str) -> tuple[str, str]:
    out: dict[str, list[str]] = {"stdout": [], "stderr": []}

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream":
            out[msg["content"]["name"]].append(msg["content"]["text"])

    kc.execute_interactive(code, timeout=120, output_hook=hook)
    return "".join(out["stdout"]), "".join(out["stderr"])


@pytest.mark.slow
def test_train_finds_the_notebook_of_a_lab_session(open_session: Any, jp_root_dir: Path) -> None:
    nb = write_notebook(jp_root_dir / "project" / "exp.ipynb", [
        ("epochs = 5", ["parameters"]),
        "for i in range(epochs):\n    print(f'step {i}')",
    ])
    # JupyterLab and Notebook 7 name the session after the file: JPY_SESSION_NAME is absolute
    kc = open_session("project/exp.ipynb", "exp.ipynb")
    out, err = run(kc, "%load_ext dlw_magic\n%dlw train --name from-lab --param epochs=2 --wait")
    assert err.strip() == ""
    assert re.search(r"Submitted from-lab: a snapshot of exp\.ipynb as last saved at \d\d:\d\d", out)
    assert "from-lab: Succeeded" in out
    job = core.get_job("from-lab")
    assert job.state is JobState.SUCCEEDED
    assert Path(job.provenance["notebook"]) == nb.resolve()
    log = "".join(c.text for c in core.logs("from-lab", rank=0))
    assert log.split() == ["step", "0", "step", "1"]


@pytest.mark.slow
def test_a_session_without_a_name_gives_a_root_relative_path(open_session: Any, jp_root_dir: Path) -> None:
    write_notebook(jp_root_dir / "a" / "b" / "deep.ipynb", [("epochs = 5", ["parameters"]), "print(epochs)"])
    kc = open_session("a/b/deep.ipynb", None)
    out, _ = run(kc, "import os; print(os.environ['JPY_SESSION_NAME']); print(os.getcwd())")
    assert out.split() == ["a/b/deep.ipynb", str(jp_root_dir / "a" / "b")]
    out, err = run(kc, "%load_ext dlw_magic\n%dlw convert -p epochs=9")
    assert err.strip() == ""
    assert re.search(r"^epochs = 9$", out, re.M)
