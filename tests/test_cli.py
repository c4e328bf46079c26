"""`dlw` as a person or a script uses it: exit codes, one-line errors, tables and JSON."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import write_notebook

from dlw_magic.cli import main

TRIVIAL = ["print('trained')\n"]


def dlw(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The real `dlw` command in a subprocess (what a shell user runs)."""
    return subprocess.run(
        [sys.executable, "-m", "dlw_magic.cli", *args], capture_output=True, text=True, cwd=cwd,
        env=os.environ.copy(), timeout=120,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0
    err = result.stderr.strip()
    assert "Traceback" not in result.stderr
    assert len(err.splitlines()) == 1, err
    assert re.match(r"dlw [a-z]+: ", err), err  # `dlw COMMAND: what is wrong`, as usage errors are
    for fragment in fragments:
        assert fragment in err


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_train_wait_json_and_tables(dlw_home, notebook, capsys):
    nb = notebook("tiny.ipynb", TRIVIAL)
    before = digest(nb)
    assert main(["train", str(nb), "--name", "tiny", "--wait", "--output", "json"]) == 0
    job = json.loads(capsys.readouterr().out)
    assert job["name"] == "tiny" and job["state"] == "Succeeded"
    assert digest(nb) == before  # the user's notebook is never modified

    assert main(["jobs"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:2] == ["NAME", "STATE"]
    assert table[1].split()[:2] == ["tiny", "Succeeded"]

    assert main(["jobs", "--output", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [j["name"] for j in listed] == ["tiny"]
    # as docs/cli.md says: the listing leaves out the spec and the pip freeze, `status -o json` has them
    assert "spec" not in listed[0] and "pip_freeze" not in listed[0]["provenance"]
    assert main(["status", "tiny", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["spec"]["name"] == "tiny"

    assert main(["status", "tiny"]) == 0
    assert "State:" in capsys.readouterr().out

    assert main(["logs", "tiny"]) == 0
    assert capsys.readouterr().out == "trained\n"


def test_wait_exits_non_zero_when_the_job_fails(dlw_home, tmp_path, capsys):
    script = tmp_path / "boom.py"
    script.write_text("raise SystemExit(4)\n")
    assert main(["train", str(script), "--name", "boom", "--wait"]) == 1
    out = capsys.readouterr().out
    assert "boom: Failed" in out and "exited with code 4" in out


def test_status_says_why_a_job_failed(dlw_home, tmp_path, capsys):
    script = tmp_path / "crash.py"
    script.write_text("import os\nif os.environ['RANK'] == '1':\n    raise ValueError('lr must be positive')\n")
    assert main(["train", str(script), "--name", "crash", "--workers", "2", "--wait"]) == 1
    capsys.readouterr()
    assert main(["status", "crash"]) == 0
    message = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("Message:"))
    assert "rank 1 exited with code 1: ValueError: lr must be positive" in message
    assert "see: dlw logs crash --rank 1" in message


def test_status_shows_metrics_and_the_executed_notebook(dlw_home, notebook, capsys):
    nb = notebook("fit.ipynb", [
        "import dlw_magic\nfor step in range(3):\n    dlw_magic.log_metrics(step=step, loss=1.0 / (step + 1))\n",
        "print('done')\n6 * 7\n",
    ])
    assert main(["train", str(nb), "--name", "fit", "--wait"]) == 0
    capsys.readouterr()
    assert main(["status", "fit", "-o", "json"]) == 0
    job = json.loads(capsys.readouterr().out)
    assert [p[:2] for p in job["metrics"]["loss"]] == [[0, 1.0], [1, 0.5], [2, pytest.approx(1 / 3)]]
    executed = json.loads(Path(job["executed_notebook"]).read_text())
    assert executed["cells"][1]["outputs"][-1]["data"]["text/plain"] == "42"
    assert main(["status", "fit"]) == 0
    out = capsys.readouterr().out
    assert "Metrics:" in out and "loss 0.3333 (step 2)" in out
    assert f"Notebook:   {job['executed_notebook']}" in out or job["executed_notebook"] in out
    assert main(["jobs", "-o", "json"]) == 0
    assert "metrics" not in json.loads(capsys.readouterr().out)[0]  # details of one job, not of the list


@pytest.mark.parametrize(("args", "line"), [
    (["--engine", "volcan"],
     "dlw train: --engine: invalid choice 'volcan' (choose from job, volcano, pytorchjob, trainjob)"),
    (["--workers", "two"], "dlw train: --workers: expected an integer, got 'two'"),
    (["--bogus"], "dlw train: unrecognized arguments: --bogus"),
])
def test_a_mistyped_option_is_one_line_with_the_choices(dlw_home, args, line):
    result = dlw("train", "x.ipynb", *args)
    assert result.returncode == 2
    assert result.stderr == line + "\n"


def test_follow_prints_rank_prefixed_logs(dlw_home, tmp_path, capsys):
    script = tmp_path / "hi.py"
    script.write_text("import os\nprint('hi from', os.environ['RANK'])\n")
    assert main(["train", str(script), "--workers", "2", "--follow"]) == 0
    out = capsys.readouterr().out
    assert "[rank 0] hi from 0" in out and "[rank 1] hi from 1" in out


def test_job_output_cannot_take_the_terminal_over(dlw_home, tmp_path, capsys):
    """A rank's escape sequences are shown, not obeyed: no retitle, no cursor move, no forged prefix."""
    script = tmp_path / "evil.py"
    script.write_text("import sys\nsys.stdout.write('\\x1b]0;pwned\\x07\\x1b[2Jok\\r[rank 1] forged\\n')\n")
    assert main(["train", str(script), "--workers", "2", "--follow"]) == 0
    assert main(["logs", _last_job()]) == 0
    out = capsys.readouterr().out
    assert "\x1b]" not in out and "\x1b[2J" not in out and "\x07" not in out
    lines = [ln for ln in out.splitlines() if "forged" in ln]
    assert lines and all(ln.startswith("[rank 0] ") or ln.startswith("[rank 1] ") for ln in lines)
    assert not any(ln.startswith("[rank 1] forged") for ln in lines)  # the redraw cannot fake rank 1's prefix


def _last_job() -> str:
    from dlw_magic import core

    return core.list_jobs()[0].name


def test_malformed_notebook(dlw_home, tmp_path):
    bad = tmp_path / "bad.ipynb"
    bad.write_text('{"cells": [')
    before = bad.read_bytes()
    result = dlw("train", str(bad))
    assert_one_line_error(result, "bad.ipynb")
    assert bad.read_bytes() == before
    assert json.loads(dlw("jobs", "-o", "json").stdout) == []


def test_missing_notebook(dlw_home, tmp_path):
    assert_one_line_error(dlw("train", str(tmp_path / "nope.ipynb")), "nope.ipynb", "not found")


def test_unknown_spec_field_names_field_and_file(dlw_home, tmp_path, notebook):
    notebook("nb.ipynb", TRIVIAL)
    spec = tmp_path / "job.yaml"
    spec.write_text("apiVersion: dlw/v1\nkind: TrainingJob\nname: x\nsource:\n  notebook: nb.ipynb\n"
                    "resources:\n  gpus: 0\n  gpuz: 1\n")
    assert_one_line_error(dlw("train", str(spec)), "job.yaml", "resources.gpuz", "unknown field")
    assert json.loads(dlw("jobs", "-o", "json").stdout) == []


def test_bad_spec_value(dlw_home, tmp_path, notebook):
    notebook("nb.ipynb", TRIVIAL)
    spec = tmp_path / "job.yaml"
    spec.write_text("name: Bad_Name\nsource: {notebook: nb.ipynb}\n")
    assert_one_line_error(dlw("train", str(spec)), "job.yaml", "name", "not a valid job name")
    spec.write_text("name: ok\nsource: {notebook: nb.ipynb}\ntimeout: soon\n")
    assert_one_line_error(dlw("train", str(spec)), "timeout", "not a duration")
    spec.write_text("name: ok\nsource: {notebook: nb.ipynb\n")
    assert_one_line_error(dlw("train", str(spec)), "job.yaml", "invalid YAML")


def test_wrong_parameter_type(dlw_home, notebook):
    nb = notebook("params.ipynb", [("epochs = 3\nlr = 0.1\n", ["parameters"]), "print(epochs, lr)\n"])
    assert_one_line_error(dlw("train", str(nb), "--param", "epochs=many"), "epochs")
    assert json.loads(dlw("jobs", "-o", "json").stdout) == []


def test_parameters_reach_the_job(dlw_home, notebook, capsys):
    nb = notebook("params.ipynb", [("epochs = 3\nlr = 0.1\n", ["parameters"]), "print('run', epochs, lr)\n"])
    assert main(["train", str(nb), "--name", "p", "--param", "epochs=5", "-p", "lr=0.05", "--wait"]) == 0
    capsys.readouterr()
    main(["logs", "p"])
    assert capsys.readouterr().out == "run 5 0.05\n"


def test_duplicate_job_name(dlw_home, notebook):
    nb = notebook("nb.ipynb", TRIVIAL)
    assert dlw("train", str(nb), "--name", "same").returncode == 0
    assert_one_line_error(dlw("train", str(nb), "--name", "same"), "'same' already exists")
    assert len(json.loads(dlw("jobs", "-o", "json").stdout)) == 1


@pytest.mark.parametrize("command", [["status", "ghost"], ["logs", "ghost"], ["cancel", "ghost"]])
def test_non_existent_job(dlw_home, command):
    assert_one_line_error(dlw(*command), "job 'ghost' not found")


def test_bad_param_syntax(dlw_home, notebook):
    nb = notebook("nb.ipynb", TRIVIAL)
    assert_one_line_error(dlw("train", str(nb), "--param", "no-equals"), "--param", "NAME=VALUE")


def test_gpus_without_nvidia(dlw_home, capsys):
    assert main(["gpus", "--output", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert isinstance(data["gpus"], list)
    if not data["gpus"]:
        assert data["reason"]


def test_schema_is_valid_json_schema(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"].startswith("DLW TrainingJob")
    assert "resources" in schema["properties"]
    docs = Path(__file__).resolve().parents[1] / "docs" / "trainingjob.schema.json"
    assert json.loads(docs.read_text()) == schema, "docs/trainingjob.schema.json is stale: dlw schema > it"


def test_parameter_types_survive_the_spec(dlw_home, tmp_path):
    from dlw_magic.spec import parse_spec

    params = {"a": 1, "b": 0, "c": 1.0, "d": "1", "e": True, "f": None, "g": [1, 2]}
    spec = parse_spec({"name": "p", "source": {"notebook": "x.ipynb"}, "parameters": params})
    assert spec.parameters == params
    assert [type(v) for v in spec.parameters.values()] == [type(v) for v in params.values()]


@pytest.mark.parametrize(("field", "value", "message"), [
    ("env", {"1BAD": "x"}, "env: '1BAD' is not an environment variable name"),
    ("resources", {"gpuResource": "amd.com/gpu"}, "resources.gpuResource: must be nvidia.com/gpu or a MIG"),
    ("resources", {"memory": "4Gx"}, "resources.memory: '4Gx' is not a Kubernetes quantity"),
    ("workers", 0, "workers: Input should be greater than or equal to 1"),
])
def test_bad_spec_fields_name_their_path(field, value, message):
    from dlw_magic.errors import DLWError
    from dlw_magic.spec import parse_spec

    with pytest.raises(DLWError) as err:
        parse_spec({"name": "p", "source": {"notebook": "x.ipynb"}, field: value}, "job.yaml")
    assert str(err.value).startswith(f"job.yaml: {message}")


def test_benchmark_runner_prints_help_instead_of_running():
    runner = Path(__file__).resolve().parents[1] / "benchmarks" / "run_all.py"
    result = subprocess.run([sys.executable, str(runner), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "usage: run_all.py" in result.stdout
    assert '"name"' not in result.stdout  # no benchmark ran (they print JSON lines)


def test_options_are_not_abbreviated_and_a_notebook_parameter_gets_a_hint(tmp_path: Path, dlw_home: Path) -> None:
    nb = write_notebook(tmp_path / "nb.ipynb", [("epochs = 1\nlr = 0.1", ["parameters"]), "print(epochs)"])
    worker = dlw("train", str(nb), "--worker", "2")
    assert worker.returncode == 2 and worker.stderr == "dlw train: unrecognized arguments: --worker 2\n"
    epochs = dlw("train", str(nb), "--epochs", "3")
    assert epochs.returncode == 2
    hint = f"(epochs is a parameter of {nb}: -p epochs=3)"
    assert epochs.stderr == f"dlw train: unrecognized arguments: --epochs 3 {hint}\n"
    other = dlw("train", str(nb), "--seed=4")  # not a parameter: no hint
    assert other.stderr == "dlw train: unrecognized arguments: --seed=4\n"


def test_help_shows_defaults_and_examples() -> None:
    train = dlw("train", "--help")
    assert train.returncode == 0
    words = " ".join(train.stdout.split())  # the same whatever the terminal's width
    assert "output format (default: table)" in words
    assert "--workers N number of workers (pods or local process groups) (default: 1, or a job spec's own)" in words
    assert "--gpus N GPUs per worker (default: 0, or a job spec's own)" in words
    assert "examples:\n  dlw train examples/digits_ddp.ipynb --workers 2 -p epochs=5 --follow" in train.stdout
    hub = dlw("hub", "--help")
    assert "(default 8000)" in hub.stdout and "(default: 8000)" not in hub.stdout  # said once


def test_every_error_names_its_command_and_exit_codes_differ_by_kind(dlw_home: Path) -> None:
    missing = dlw("status", "no-such-job")
    assert missing.returncode == 1 and missing.stderr.startswith("dlw status: ")
    typo = dlw("status")
    assert typo.returncode == 2 and typo.stderr.startswith("dlw status: ")
