"""``%dlw`` / ``%%dlw`` as a researcher meets them: in an IPython shell and in a real Jupyter kernel."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dlw_magic import core
from dlw_magic.backends import JobState
from dlw_magic.errors import DLWError
from dlw_magic.magics import current_notebook

ROOT = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;]*m")

# The notebook the tests promote: a typed parameter, one line per step, optional sleeps.
PARAMS = ("epochs = 3\npause = 0.0", ["parameters"])
BODY = (
    "import os, time\n"
    "print(f'epochs {epochs!r} rank {os.environ.get(\"RANK\")}', flush=True)\n"
    "for i in range(epochs):\n"
    "    print(f'step {i}', flush=True)\n"
    "    time.sleep(pause)\n"
    "print('done', flush=True)\n"
)


def lines(text: str) -> list[str]:
    return [ANSI.sub("", ln) for ln in text.splitlines() if ln.strip()]


def job_log(name: str) -> str:
    return "".join(chunk.text for chunk in core.logs(name, rank=0))


def job_log_or_empty(name: str) -> str:
    """The log while the job may not be registered yet (its kernel is still submitting it)."""
    try:
        return job_log(name)
    except DLWError:
        return ""


# ---------------------------------------------------------------- in-process IPython shell


@pytest.fixture
def shell(dlw_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An IPython shell with ``%load_ext dlw_magic``, started in tmp_path (as a kernel starts in the
    notebook's folder) and told by JPY_SESSION_NAME which notebook it runs."""
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.chdir(tmp_path)
    for key in ("JPY_SESSION_NAME",):
        monkeypatch.delenv(key, raising=False)
    sh = InteractiveShell.instance()
    sh.run_line_magic("load_ext", "dlw_magic")
    for key in ("__session__", "__vsc_ipynb_file__"):
        sh.user_ns.pop(key, None)
    yield sh
    for key in ("__session__", "__vsc_ipynb_file__"):
        sh.user_ns.pop(key, None)


def test_train_takes_tags_and_extra_parameters_with_a_notice(shell: Any, notebook: Any,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    nb = notebook("tags.ipynb", [PARAMS, "print('seed', seed)"])
    monkeypatch.setenv("JPY_SESSION_NAME", str(nb))
    shell.run_line_magic("dlw", "train --name magic-tagged --tag sweep --tag a.1 -p seed=11 --wait")
    out = capsys.readouterr().out
    assert "parameter 'seed' is not in the parameters cell: set as a new variable after it" in out
    assert [j.name for j in core.list_jobs(tag="sweep")] == ["magic-tagged"]
    assert core.job_tags(core.get_job("magic-tagged")) == ["sweep", "a.1"]
    assert "seed 11" in job_log("magic-tagged")


def test_train_promotes_the_current_notebook(shell: Any, notebook: Any, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    # the notebook holds the magic itself, as notebooks do: the job must not submit itself again
    nb = notebook("tiny.ipynb", [PARAMS, BODY, "%load_ext dlw_magic\n%dlw train --wait"])
    monkeypatch.setenv("JPY_SESSION_NAME", str(nb))

    shell.run_line_magic("dlw", "train --param epochs=1 --wait")
    out = capsys.readouterr()
    assert out.err == ""
    name = re.search(r"Submitted (\S+):", out.out).group(1)
    assert "a snapshot of tiny.ipynb as last saved at" in out.out
    assert "note:" not in out.out  # that the job leaves out %dlw itself goes without saying
    assert lines(out.out)[-1].startswith(f"{name}: Succeeded")
    job = core.get_job(name)
    assert job.state is JobState.SUCCEEDED
    log = job_log(name)
    assert "epochs 1 rank 0" in log  # the parameter reached the job with its type
    assert log.count("step ") == 1 and "done" in log

    shell.run_line_magic("dlw", "jobs")
    table = capsys.readouterr().out
    assert re.search(rf"^{name}\s+Succeeded\s+1\b", table, re.M)
    assert len(core.list_jobs()) == 1


def test_follow_streams_every_rank(shell: Any, notebook: Any, capsys: pytest.CaptureFixture[str]) -> None:
    nb = notebook("tiny.ipynb", [PARAMS, BODY])
    shell.run_line_magic("dlw", f"train {nb.name} --workers 2 --param epochs=2 --name two-ranks --follow")
    out = lines(capsys.readouterr().out)
    assert "[rank 0] epochs 2 rank 0" in out and "[rank 1] epochs 2 rank 1" in out
    assert out.count("[rank 1] step 1") == 1 and "[rank 0] done" in out
    assert out[-1].startswith("two-ranks: Succeeded")


def test_a_failed_job_says_why(shell: Any, notebook: Any, capsys: pytest.CaptureFixture[str]) -> None:
    notebook("broken.ipynb", ["x = 1", "raise ValueError('bad shard')"])
    shell.run_line_magic("dlw", "train broken.ipynb --name broken --wait")
    out = lines(capsys.readouterr().out)
    assert re.match(r"broken: Failed after \d:\d\d:\d\d \(1 worker\(s\), local\) - \w+: .*rank 0", out[-1]), out
    assert "ValueError: bad shard" in out[-1] and "see: %dlw logs broken --rank 0" in out[-1], out[-1]
    assert "ValueError: bad shard" in job_log("broken")


@pytest.mark.parametrize("options, message", [
    ("--workers two", "%dlw train: --workers: expected an integer, got 'two'$"),
    ("--engine volcan",
     r"%dlw train: --engine: invalid choice 'volcan' \(choose from job, volcano, pytorchjob, trainjob\)$"),
    ("--bogus", "%dlw train: unrecognized arguments: --bogus"),
    ("--param 1x=3", r"%dlw train: --param '1x=3': expected NAME=VALUE with NAME a Python identifier"),
    ("--name Not_A_Name", "%dlw train: /.*/tiny.ipynb: name: 'Not_A_Name' is not a valid job name"),
    ("missing.ipynb", "%dlw train: missing.ipynb: notebook not found"),
    ("--workers 0", "%dlw train: /.*/tiny.ipynb: workers: Input should be greater than or equal to 1"),
])
def test_bad_options_give_one_line_and_no_job(shell: Any, notebook: Any, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str], options: str,
                                              message: str) -> None:
    nb = notebook("tiny.ipynb", [PARAMS, BODY])
    monkeypatch.setenv("JPY_SESSION_NAME", str(nb))
    shell.run_line_magic("dlw", f"train {options}")
    out = capsys.readouterr()
    assert len(lines(out.err)) == 1, out.err
    assert re.match(message, lines(out.err)[0]), lines(out.err)[0]
    assert "Traceback" not in out.out + out.err
    assert core.list_jobs() == []


def test_no_known_notebook_asks_for_the_path(shell: Any, capsys: pytest.CaptureFixture[str]) -> None:
    shell.run_line_magic("dlw", "train --workers 2")
    assert lines(capsys.readouterr().err) == [
        "%dlw train: cannot tell which notebook this kernel runs; pass the path: %dlw train path/to/nb.ipynb"
    ]
    assert core.list_jobs() == []


def test_notebook_path_from_the_kernel_session(tmp_path: Path, notebook: Any) -> None:
    sub = tmp_path / "project"
    sub.mkdir()
    nb = sub / "exp.ipynb"
    nb.write_bytes(notebook("x.ipynb", [BODY]).read_bytes())
    other = notebook("other.ipynb", [BODY])
    # jupyter_server without a session name: the API path, relative to the server root (an ancestor of
    # the kernel's cwd, which is the notebook's folder)
    assert current_notebook({}, environ={"JPY_SESSION_NAME": "project/exp.ipynb"}, cwd=sub) == nb
    # JupyterLab / Notebook 7: the absolute path
    assert current_notebook({}, environ={"JPY_SESSION_NAME": str(nb)}, cwd=tmp_path) == nb
    # ipykernel's copy in the namespace; VS Code's variable wins over both
    assert current_notebook({"__session__": str(nb)}, environ={}, cwd=tmp_path) == nb
    assert current_notebook({"__vsc_ipynb_file__": str(other)}, environ={"JPY_SESSION_NAME": str(nb)},
                            cwd=sub) == other
    # consoles have sessions too, but no notebook
    with pytest.raises(Exception, match="cannot tell which notebook"):
        current_notebook({}, environ={"JPY_SESSION_NAME": "console-1-3f2a"}, cwd=sub)
    with pytest.raises(Exception, match=r"renamed\.ipynb, which is gone \(renamed or moved\?\)"):
        current_notebook({}, environ={"JPY_SESSION_NAME": str(sub / "renamed.ipynb")}, cwd=sub)


def test_inline_spec_without_source_runs_this_notebook(shell: Any, notebook: Any,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    nb = notebook("tiny.ipynb", [PARAMS, BODY])
    monkeypatch.setenv("JPY_SESSION_NAME", "tiny.ipynb")
    shell.run_cell_magic("dlw", "--wait", "name: inline-spec\nworkers: 2\nparameters:\n  epochs: 2\n")
    out = capsys.readouterr()
    assert out.err == ""
    assert "Submitted inline-spec: a snapshot of tiny.ipynb" in out.out
    job = core.get_job("inline-spec")
    assert job.state is JobState.SUCCEEDED and job.workers == 2
    assert job.provenance["notebook"] == str(nb)
    assert job_log("inline-spec").count("step ") == 2

    # options on the %%dlw line override the cell, as on the command line
    shell.run_cell_magic("dlw", "--name inline-override --wait", "name: ignored\n")
    assert core.get_job("inline-override").state is JobState.SUCCEEDED


def test_inline_spec_errors_name_the_field(shell: Any, notebook: Any, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    notebook("tiny.ipynb", [PARAMS, BODY])
    monkeypatch.setenv("JPY_SESSION_NAME", "tiny.ipynb")
    shell.run_cell_magic("dlw", "", "name: ok\nworkrs: 2\n")
    shell.run_cell_magic("dlw", "", "name: [unclosed\n")
    errors = lines(capsys.readouterr().err)
    assert errors == [
        "%%dlw: inline spec: workrs: unknown field",
        "%%dlw: cell: line 2, column 1: invalid YAML: expected ',' or ']', but got '<stream end>'",
    ]
    assert core.list_jobs() == []


def test_other_commands_are_the_cli_commands(shell: Any, notebook: Any, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    nb = notebook("tiny.ipynb", [PARAMS, BODY])
    monkeypatch.setenv("JPY_SESSION_NAME", str(nb))
    shell.run_line_magic("dlw", "train --name first --param epochs=2 --wait")
    shell.run_line_magic("dlw", "status first")
    shell.run_line_magic("dlw", "logs first --rank 0")
    capsys.readouterr()

    shell.run_line_magic("dlw", "status first")
    assert re.search(r"^State:\s+Succeeded$", capsys.readouterr().out, re.M)
    shell.run_line_magic("dlw", "logs first --rank 0")
    assert lines(capsys.readouterr().out) == ["epochs 2 rank 0", "step 0", "step 1", "done"]
    shell.run_line_magic("dlw", "rerun first --as second")
    assert "Submitted second" in capsys.readouterr().out
    assert core.wait("second", timeout=60).state is JobState.SUCCEEDED
    shell.run_line_magic("dlw", "cancel second")
    assert lines(capsys.readouterr().err) == [
        "%dlw cancel: job 'second' already finished (Succeeded); nothing to cancel"]
    shell.run_line_magic("dlw", "status nope")
    err = lines(capsys.readouterr().err)
    assert len(err) == 1 and err[0].startswith("%dlw status:") and "nope" in err[0]
    shell.run_line_magic("dlw", "convert --param epochs=7")  # no path: this notebook
    assert re.search(r"^epochs = 7$", capsys.readouterr().out, re.M)
    shell.run_line_magic("dlw", "gpus")
    assert capsys.readouterr().out.strip()


# ---------------------------------------------------------------- a real Jupyter kernel


class Kernel:
    """A python3 kernel started like jupyter_server starts one: in the notebook's folder, with
    JPY_SESSION_NAME naming the notebook."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        from jupyter_client import KernelManager

        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(cwd=str(cwd), env=env)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        self.messages: list[dict[str, Any]] = []  # every iopub message seen so far

    def run(self, code: str, timeout: float = 90) -> list[dict[str, Any]]:
        """Execute ``code``; return the iopub messages up to the kernel going idle for it."""
        return self.collect(self.kc.execute(code), timeout)

    def collect(self, msg_id: str, timeout: float = 90) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = self.kc.get_iopub_msg(timeout=1)
            except queue.Empty:
                continue
            got.append(msg)
            if (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status"
                    and msg["content"]["execution_state"] == "idle"):
                self.messages += got
                return got
        raise AssertionError(f"request {msg_id} did not finish in {timeout}s")

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                self.messages.append(self.kc.get_iopub_msg(timeout=0.2))

    def click(self, comm_id: str) -> None:
        """What a frontend sends when the user clicks an ipywidgets Button."""
        content = {"comm_id": comm_id, "data": {"method": "custom", "content": {"event": "click"}}}
        self.kc.shell_channel.send(self.kc.session.msg("comm_msg", content))

    def stop(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def text_of(messages: list[dict[str, Any]], stream: str = "stdout") -> str:
    return "".join(m["content"]["text"] for m in messages
                   if m["msg_type"] == "stream" and m["content"]["name"] == stream)


def widget_updates(messages: list[dict[str, Any]]) -> str:
    """Everything the kernel told the frontend's widget models (HTML values, button state)."""
    return "\n".join(str(m["content"]["data"].get("state", {})) for m in messages
                     if m["msg_type"] in ("comm_open", "comm_msg"))


@pytest.fixture
def kernel(dlw_home: Path, tmp_path: Path, notebook: Any) -> Iterator[Kernel]:
    nb = notebook("tiny.ipynb", [PARAMS, BODY])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "JPY_SESSION_NAME": str(nb)}
    k = Kernel(tmp_path, env)
    try:
        assert k.run("%load_ext dlw_magic")[-1]["content"]["execution_state"] == "idle"
        yield k
    finally:
        k.stop()


@pytest.mark.slow
def test_widget_shows_state_logs_and_cancels(kernel: Kernel) -> None:
    msgs = kernel.run("%dlw train --name watched --param epochs=2 --wait")
    assert "Traceback" not in text_of(msgs, "stderr")
    shown = [m for m in msgs if m["msg_type"] == "display_data"]
    assert shown and "application/vnd.jupyter.widget-view+json" in shown[0]["content"]["data"]
    # plain-text frontends get the state line instead of a widget
    assert shown[0]["content"]["data"]["text/plain"].startswith("watched: ")
    updates = widget_updates(msgs)
    assert "Succeeded" in updates and "step 1" in updates and "done" in updates
    assert re.search(r"watched: Succeeded after \d:\d\d:\d\d", text_of(msgs))

    # --follow: the widget keeps state and Cancel, the log lines stream into the cell output
    msgs = kernel.run("%dlw train --name followed --workers 2 --param epochs=2 --follow")
    out = lines(text_of(msgs))
    assert "[rank 1] step 1" in out and "[rank 0] done" in out
    assert out[-1].startswith("followed: Succeeded after")
    assert any(m["msg_type"] == "display_data" for m in msgs)

    # A long job watched with --wait: interrupting the kernel stops the watching, not the job; then the
    # Cancel button stops it. While the cell blocked, the button was enabled and marked for the lab
    # extension, which cancels through the REST API (tests/e2e/test_magics_widget_e2e.py).
    msg_id = kernel.kc.execute("%dlw train --name to-cancel --param epochs=60 --param pause=0.5 --wait")
    deadline = time.monotonic() + 30
    while "step 0" not in job_log_or_empty("to-cancel") and time.monotonic() < deadline:
        time.sleep(0.2)
    kernel.km.interrupt_kernel()
    msgs = kernel.collect(msg_id)
    assert "stopped watching; to-cancel keeps running (%dlw cancel to-cancel stops it)" in text_of(msgs)
    assert "Traceback" not in text_of(msgs, "stderr")
    assert core.get_job("to-cancel").state is JobState.RUNNING
    button = next(m["content"]["comm_id"] for m in msgs if m["msg_type"] == "comm_open"
                  and m["content"]["data"]["state"].get("description") == "Cancel")
    opened = next(m for m in msgs if m["msg_type"] == "comm_open" and m["content"]["comm_id"] == button)
    assert opened["content"]["data"]["state"]["disabled"] is False
    assert {"dlw-widget-cancel", "dlw-job-to-cancel"} <= set(opened["content"]["data"]["state"]["_dom_classes"])
    kernel.click(button)
    job = core.wait("to-cancel", timeout=30)
    assert job.state is JobState.CANCELLED
    kernel.drain(3)
    assert "Cancelled" in widget_updates(kernel.messages[-50:])


@pytest.mark.slow
def test_job_survives_a_kernel_restart(kernel: Kernel) -> None:
    msgs = kernel.run("marker = 1\n%dlw train --name survivor --param epochs=8 --param pause=0.5")
    assert "Submitted survivor" in text_of(msgs)
    deadline = time.monotonic() + 30
    while "step 1" not in job_log_or_empty("survivor") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert core.get_job("survivor").state is JobState.RUNNING

    kernel.km.restart_kernel(now=True)  # what "Restart kernel" does to a stuck kernel
    kernel.kc.wait_for_ready(timeout=60)
    assert "NameError" in str(kernel.run("marker"))  # a fresh kernel process

    job = core.wait("survivor", timeout=60)
    assert job.state is JobState.SUCCEEDED, job.message
    log = job_log("survivor")
    assert [f"step {i}" for i in range(8)] == [ln for ln in log.splitlines() if ln.startswith("step")]
    assert log.rstrip().endswith("done")
    # and the restarted kernel still reaches it
    kernel.run("%load_ext dlw_magic")
    assert re.search(r"^survivor\s+Succeeded", text_of(kernel.run("%dlw jobs")), re.M)


def test_sweep_runs_this_notebook_over_the_values(shell: Any, notebook: Any, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    nb = notebook("tiny.ipynb", [PARAMS, BODY, "%load_ext dlw_magic\n%dlw sweep -p epochs=1,2"])
    monkeypatch.setenv("JPY_SESSION_NAME", str(nb))
    shell.run_line_magic("dlw", "sweep -p epochs=1,2 --parallel 2 --name nbsweep --wait")
    out = capsys.readouterr()
    assert out.err == "" and "Started experiment nbsweep: 2 trial(s)" in out.out
    assert re.search(r"^nbsweep-001\s+2\s+Succeeded", out.out, re.M), out.out
    assert job_log("nbsweep-001").count("step ") == 2  # the trial got its value, typed as the notebook's int
    shell.run_line_magic("dlw", "sweep status nbsweep")
    assert "nbsweep: Succeeded" in capsys.readouterr().out
