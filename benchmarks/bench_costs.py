"""Costs that must stay flat or linear as inputs grow 1x, 10x, 100x (issue 19): `dlw status` on a job with a
huge metrics file, `dlw jobs` and REST `GET /jobs` over many records, and the parameters-cell reader.

Each line gives DLW's time (median) and peak memory next to a baseline measured in the same run on the same
input: reading the metrics file / the job rows with plain sqlite3 + json, and `ast.parse` of the cell.
`--scale 0.1` makes every input ten times smaller (a quick look).
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

from _common import ensure_bytecode, report, timed

DLW = shutil.which("dlw") or "dlw"
# Measured from a small helper process: a child's peak RSS starts from its parent's at fork (Linux), and this
# benchmark's own process is larger than what it measures.
PEAK = ("import os, subprocess, sys\n"
        "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
        "_, status, usage = os.wait4(p.pid, 0)\n"
        "print(usage.ru_maxrss if os.waitstatus_to_exitcode(status) == 0 else -1)\n")


def peak_mib(argv: list[str], env: dict[str, str]) -> float:
    """Peak resident memory of a command (a Python script: argv[0]) in MiB, from the kernel's account of it."""
    done = subprocess.run([sys.executable, "-I", "-S", "-c", PEAK, sys.executable, *argv], env=env,
                          capture_output=True, text=True, check=True)
    kib = int(done.stdout)
    assert kib > 0, argv
    return kib / 1024


def fill_jobs(home: Path, user: str, n: int) -> None:
    from dlw_magic.backends.local.store import Store

    store = Store(home)
    prov = json.dumps({"notebook": "/home/u/train.ipynb", "parameters": {"lr": 0.1}, "image": None,
                       "snapshot_hash": "sha256:" + "0" * 64, "git_commit": None})
    now = time.time()
    store.db.execute("BEGIN")
    for i in range(n):
        store.insert({
            "id": f"{i:012x}", "name": f"job-{i}", "user": user, "state": "Succeeded", "priority": 0,
            "workers": 2, "world_size": 2, "gpus": 0, "created": now - i, "started": now - i,
            "finished": now - i + 5, "exit_code": 0, "job_dir": f"{home}/jobs/{i:012x}",
            "spec": "{}", "provenance": prov, "entrypoint": "[]",
        })
    store.db.execute("COMMIT")
    store.db.close()


ROWS_JSON = """
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1]); db.row_factory = sqlite3.Row
rows = [dict(r) for r in db.execute("SELECT * FROM jobs WHERE user = ? ORDER BY created DESC", (sys.argv[2],))]
sys.stdout.write(json.dumps(rows))
"""


def bench_jobs(tmp: Path, env: dict[str, str], user: str, scale: float) -> None:
    from dlw_magic import backends, core
    from dlw_magic.server.handlers import PAGE

    script = tmp / "rows.py"
    script.write_text(ROWS_JSON)
    for factor in (1, 10, 100):
        n = max(int(1000 * factor * scale), 10)
        home = tmp / f"jobs-{factor}"
        fill_jobs(home, user, n)
        run_env = {**env, "DLW_HOME": str(home)}
        dlw_s = timed(lambda e=run_env: subprocess.run([DLW, "jobs", "-o", "json"], env=e, check=True,
                                                       capture_output=True), repeat=3)
        base_s = timed(lambda h=home: subprocess.run([sys.executable, str(script), str(h / "jobs.db"), user],
                                                     env=env, check=True, capture_output=True), repeat=3)
        report(f"dlw_jobs_x{factor}", records=n, dlw_s=dlw_s, baseline_all_rows_json_s=base_s,
               dlw_peak_mib=peak_mib([DLW, "jobs", "-o", "json"], run_env),
               baseline_peak_mib=peak_mib([str(script), str(home / "jobs.db"), user], env))

        # REST GET /jobs: what the handler does (one page from the backend, then json.dumps), in this process.
        os.environ["DLW_HOME"] = str(home)
        backends._cache.clear()
        backend = backends.get_backend("local")

        def rest_page(b: object = backend) -> int:
            jobs, total = core.list_page(b, PAGE, 0)  # type: ignore[arg-type]
            return len(json.dumps({"jobs": [j.to_dict() for j in jobs], "total": total}, default=str))

        size = rest_page()
        rest_s = timed(rest_page, repeat=3)
        report(f"rest_list_x{factor}", records=n, page=PAGE, rest_s=rest_s, response_bytes=size,
               baseline_all_rows_json_s=base_s)


def bench_status(tmp: Path, env: dict[str, str], scale: float) -> None:
    from dlw_magic import core

    script = tmp / "one.py"
    script.write_text("pass\n")
    home = tmp / "status-home"
    run_env = {**env, "DLW_HOME": str(home)}
    subprocess.run([DLW, "train", str(script), "--name", "m", "--wait"], env=run_env, check=True, capture_output=True)
    os.environ["DLW_HOME"] = str(home)
    out_dir = Path(core.get_job("m", details=False).output_dir)
    metrics = out_dir / "metrics"
    metrics.mkdir(parents=True, exist_ok=True)
    reader = tmp / "read_metrics.py"
    reader.write_text("import json, sys\nn = 0\nfor line in open(sys.argv[1], 'rb'):\n    json.loads(line); n += 1\n")
    for factor in (1, 10, 100):
        points = max(int(10_000 * factor * scale), 10)
        with open(metrics / "rank-0.jsonl", "w") as f:
            f.writelines(f'[{s},1700000000.{s % 1000:03d},{{"loss":0.{s},"acc":0.5}}]\n' for s in range(points))
        size = (metrics / "rank-0.jsonl").stat().st_size
        dlw_s = timed(lambda: subprocess.run([DLW, "status", "m"], env=run_env, check=True, capture_output=True),
                      repeat=3)
        base_s = timed(lambda: subprocess.run([sys.executable, str(reader), str(metrics / "rank-0.jsonl")],
                                              check=True, capture_output=True), repeat=3)
        report(f"dlw_status_x{factor}", metric_points=points, file_mib=size / 2**20, dlw_s=dlw_s,
               baseline_parse_whole_file_s=base_s, dlw_peak_mib=peak_mib([DLW, "status", "m"], run_env),
               baseline_peak_mib=peak_mib([str(reader), str(metrics / "rank-0.jsonl")], env))


def bench_parameters(scale: float) -> None:
    import ast

    from dlw_magic.convert.parameters import parse_parameters

    for factor in (1, 10, 100):
        n = max(int(100 * factor * scale), 10)
        code = "".join(f"param_{i}: float = {i}.5  # the {i}th knob\n" for i in range(n))
        assert len(parse_parameters(code, 1)) == n
        dlw_s = timed(lambda c=code: parse_parameters(c, 1), repeat=3)
        base_s = timed(lambda c=code: ast.parse(c), repeat=3)
        report(f"parameters_cell_x{factor}", statements=n, dlw_s=dlw_s, baseline_ast_parse_s=base_s,
               ratio=dlw_s / base_s)
    big = "text = '" + "x" * int(1_000_000 * max(scale, 0.01)) + "'\n"
    report("parameters_cell_1mb_string", dlw_s=timed(lambda: parse_parameters(big, 1), repeat=3),
           baseline_ast_parse_s=timed(lambda: ast.parse(big), repeat=3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0, help="input sizes times this (default 1)")
    args, _ = parser.parse_known_args()
    ensure_bytecode()
    from dlw_magic.core import current_user

    bench_parameters(args.scale)
    with tempfile.TemporaryDirectory(prefix="dlw-bench-costs-") as name:
        tmp = Path(name)
        env = {**os.environ, "DLW_BACKEND": "local"}
        os.environ["DLW_BACKEND"] = "local"
        bench_status(tmp, env, args.scale)
        bench_jobs(tmp, env, current_user(), args.scale)


if __name__ == "__main__":
    main()
