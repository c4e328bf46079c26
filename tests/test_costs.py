"""What a big job or a long history costs the reader stays bounded: the parameters cell is read in linear
time, metrics files are read from their newest end, ``GET /jobs`` and ``dlw jobs`` answer in pages, and
``dlw logs`` on a log without newlines holds a bounded piece of it. (Speed itself: benchmarks/bench_costs.py.)"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dlw_magic import cli, core, metrics
from dlw_magic.convert.parameters import parse_parameters

pytestmark = pytest.mark.timeout(300)


def test_the_parameters_cell_is_read_without_cutting_it_again_per_statement() -> None:
    code = "".join(f"p{i} = {i}  # number {i}\n" for i in range(5000)) + "s = '" + "é" * 1000 + "'\n"
    params = parse_parameters(code, 1)
    assert len(params) == 5001 and params[4999].source == "4999" and params[4999].help == "number 4999"
    assert params[-1].source == "'" + "é" * 1000 + "'"  # columns are UTF-8 bytes: the text is cut right
    calls = []
    import ast

    real = ast.get_source_segment
    ast.get_source_segment = lambda *a, **k: calls.append(1) or real(*a, **k)  # type: ignore[assignment]
    try:
        parse_parameters(code, 1)
    finally:
        ast.get_source_segment = real
    assert calls == []  # get_source_segment splits the whole cell on each call: quadratic


def test_a_huge_metrics_file_is_read_from_its_newest_end(tmp_path: Path) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    line = '[{step},1700000000.0,{{"loss":{step}.5}}]\n'
    steps = (metrics.READ_TAIL_BYTES // len(line.format(step=10**6))) * 3
    with open(folder / "rank-0.jsonl", "w") as f:
        f.write("".join(line.format(step=s) for s in range(steps)))
    read = metrics.read(tmp_path)
    points = read["loss"]
    assert points[-1][:2] == [steps - 1, steps - 1 + 0.5]  # the newest point is there
    assert len(points) <= metrics.MAX_POINTS + 1  # and not the whole file: a few thousand points for a chart
    assert [p[0] for p in points] == sorted(p[0] for p in points)


def dlw(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        rc = cli.main(list(args))
    return rc, out.getvalue(), err.getvalue()


def fill(home: Path, n: int) -> None:
    from dlw_magic.backends.local.store import Store

    store = Store(home)
    now = time.time()
    store.db.execute("BEGIN")
    for i in range(n):
        store.insert({"id": f"{i:012x}", "name": f"job-{i}", "user": core.current_user(), "state": "Succeeded",
                      "priority": 0, "workers": 1, "world_size": 1, "gpus": 0, "created": now - i,
                      "started": now - i, "finished": now - i + 1, "exit_code": 0,
                      "job_dir": f"{home}/jobs/{i:012x}", "spec": "{}", "provenance": "{}", "entrypoint": "[]"})
    store.db.execute("COMMIT")


def test_dlw_jobs_shows_the_newest_page_and_says_how_many_there_are(dlw_home: Path) -> None:
    fill(dlw_home, 1500)
    rc, out, err = dlw("jobs", "-o", "json")
    assert rc == 0 and len(json.loads(out)) == 1000 and json.loads(out)[0]["name"] == "job-0"
    assert err == "dlw jobs: showing the newest 1000 of 1500 jobs (--limit 0 for all)\n"
    rc, out, err = dlw("jobs", "-o", "json", "--limit", "0")
    assert len(json.loads(out)) == 1500 and err == ""
    rc, out, err = dlw("jobs", "--limit", "-1")
    assert rc == 1 and "--limit" in err


def test_the_log_of_a_rank_that_never_writes_a_newline_is_shown_in_bounded_memory(dlw_home: Path, tmp_path: Path):
    script = tmp_path / "flood.py"
    script.write_text("import sys\nfor _ in range(100):\n    sys.stdout.write('x' * 1_000_000)\n")
    job = core.submit(core.build_spec(script, name="flood"))
    assert core.wait(job.name, timeout=240).state.value == "Succeeded"
    # VmHWM is this address space's own peak; ru_maxrss would carry over the parent's (pytest's) peak,
    # which Linux copies into the child across vfork+exec.
    probe = ("import re, sys\nfrom dlw_magic import cli\nrc = cli.main(['logs', 'flood'])\n"
             "status = open('/proc/self/status').read()\n"
             "sys.stderr.write(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=240)
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.count(b"x") == 100_000_000
    peak_kib = int(done.stderr.decode().strip().splitlines()[-1])
    assert peak_kib < 250_000, f"dlw logs peaked at {peak_kib >> 10} MiB on a 100 MB log without newlines"
