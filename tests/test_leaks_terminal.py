"""A job's words reach the terminal harmlessly, and a secret's value never reaches anyone's screen.

``dlw status`` and ``dlw train --wait`` print the job's last exception line and metric names as text (escape
codes visible, long names cut); ``dlw logs`` keeps colours but not what hides text (conceal, backgrounds);
a secret whose value is not UTF-8, or that is a FIFO, fails the job at once with a message naming the
secret, never its value.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from pathlib import Path

import pytest

from dlw_magic import cli, core
from dlw_magic.textsafe import sanitize_terminal

TRAP = "\x1b]0;pwned\x07\x1b[2J\x1b[Hdlw: job Succeeded"


def run_cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        rc = cli.main(list(args))
    return rc, out.getvalue(), err.getvalue()


def wait_finished(name: str, timeout: float = 120) -> core.JobInfo:  # type: ignore[name-defined]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = core.get_job(name)
        if info.state.finished:
            return info
        time.sleep(0.2)
    raise AssertionError(f"{name} did not finish")


def test_status_and_wait_show_a_jobs_escape_codes_as_text(dlw_home: Path, tmp_path: Path) -> None:
    script = tmp_path / "evil.py"
    script.write_text(
        "from dlw_magic.metrics import log_metrics\n"
        f"log_metrics(step=1, **{{{'loss' + TRAP!r}: 1.0, {'x' * 100_000!r}: 2.0}})\n"
        f"raise SystemExit({'boom' + TRAP!r})\n")
    rc, out, err = run_cli("train", str(script), "--name", "evil", "--wait")
    assert rc != 0
    for text in (out, err):
        assert "\x1b" not in text and "\x07" not in text
    rc, out, err = run_cli("status", "evil")
    assert rc == 0, err
    assert "\x1b" not in out and "\x07" not in out and "^[]0;pwned^G" in out
    assert "x" * 100_000 not in out and "more characters" in out  # a 100 kB metric name is cut
    assert all(len(line) < 3000 for line in out.splitlines())


def test_logs_keep_colours_but_nothing_that_hides_text() -> None:
    shown = sanitize_terminal("a \x1b[8mhidden\x1b[0m \x1b[30;40mblack on black\x1b[0m \x1b[1;31mred\x1b[0m\n")
    assert "\x1b[8m" not in shown and "40" not in shown.replace("black on black", "")
    assert "\x1b[30m" in shown and "\x1b[1;31mred" in shown  # colours and bold stay
    assert "\x1b[48;5;0m" not in sanitize_terminal("\x1b[48;5;0;38;5;0mx\n")


def test_logs_of_a_job_drop_hidden_text_codes(dlw_home: Path, tmp_path: Path) -> None:
    script = tmp_path / "hide.py"
    script.write_text("print('shown \\x1b[8msecret-looking\\x1b[0m \\x1b[47;37mwhite on white\\x1b[0m', flush=True)\n")
    rc, _, err = run_cli("train", str(script), "--name", "hide", "--wait")
    assert rc == 0, err
    rc, out, err = run_cli("logs", "hide")
    assert rc == 0 and "secret-looking" in out
    assert "\x1b[8m" not in out and "\x1b[47" not in out and "\x1b[37m" in out


def secret_job(dlw_home: Path, tmp_path: Path, name: str) -> str:
    script = tmp_path / "s.py"
    script.write_text("import os\nprint(len(os.environ['X']))\n")
    spec = core.build_spec(spec_text=json.dumps({"name": name, "source": {"script": "s.py"},
                                                 "secrets": [{"env": "X", "secret": "db", "key": "pw"}]}),
                           base_dir=tmp_path)
    return core.submit(spec).name


def test_a_secret_that_is_not_utf8_fails_without_showing_its_value(dlw_home: Path, tmp_path: Path) -> None:
    (dlw_home / "secrets" / "db").mkdir(parents=True)
    (dlw_home / "secrets" / "db" / "pw").write_bytes(b"hunter2-TOPSECRET\xff\xfe")
    info = wait_finished(secret_job(dlw_home, tmp_path, "bytes"))
    assert info.state.value == "Failed"
    assert "db/pw" in (info.message or "") and "not UTF-8" in (info.message or "")
    rc, out, err = run_cli("status", "bytes", "-o", "json")
    rc2, text, _ = run_cli("status", "bytes")
    assert "TOPSECRET" not in out + err + text and "hunter2" not in out + text


def test_a_fifo_secret_is_refused_at_once_instead_of_hanging(dlw_home: Path, tmp_path: Path) -> None:
    from dlw_magic.backends.local.secrets import read_secret
    from dlw_magic.errors import DLWError

    (dlw_home / "secrets" / "db").mkdir(parents=True)
    os.mkfifo(dlw_home / "secrets" / "db" / "pw")
    with pytest.raises(DLWError, match="db/pw: .* is not a regular file"):
        secret_job(dlw_home, tmp_path, "fifo")
    # and a FIFO put there after the submission: the runner does not block opening it (no writer)
    with pytest.raises(DLWError, match="is not a regular file"):
        read_secret(dlw_home / "secrets", "db", "pw")
