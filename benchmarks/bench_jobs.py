"""(c) `dlw jobs --output json` over 10,000 records. Goal: under 0.3 s.

Baseline: the floor for the same answer, a bare Python that reads the same rows with sqlite3 and prints JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import ensure_bytecode, report, run_cmd, timed

DLW = shutil.which("dlw") or "dlw"
N = 10_000


def fill(home: Path, user: str) -> None:
    from dlw_magic.backends.local.store import Store

    store = Store(home)
    spec = json.dumps({"apiVersion": "dlw/v1", "kind": "TrainingJob", "name": "x",
                       "source": {"notebook": "train.ipynb"}, "workers": 2})
    prov = json.dumps({"notebook": "/home/u/train.ipynb", "parameters": {"lr": 0.1}, "image": None,
                       "snapshot_hash": "sha256:" + "0" * 64, "git_commit": None})
    now = time.time()
    store.db.execute("BEGIN")
    for i in range(N):
        store.insert({
            "id": f"{i:012x}", "name": f"job-{i}", "user": user, "state": "Succeeded", "priority": 0,
            "workers": 2, "world_size": 2, "gpus": 0, "created": now - i, "started": now - i,
            "finished": now - i + 5, "exit_code": 0, "job_dir": f"{home}/jobs/{i:012x}",
            "spec": spec, "provenance": prov, "entrypoint": "[]",
        })
    store.db.execute("COMMIT")


BASELINE = """
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1]); db.row_factory = sqlite3.Row
rows = [dict(r) for r in db.execute("SELECT * FROM jobs WHERE user = ? ORDER BY created DESC", (sys.argv[2],))]
sys.stdout.write(json.dumps(rows))
"""


def main() -> None:
    ensure_bytecode()
    from dlw_magic.core import current_user

    with tempfile.TemporaryDirectory(prefix="dlw-bench-") as tmp:
        home = Path(tmp) / "home"
        user = current_user()
        fill(home, user)
        env = {**os.environ, "DLW_HOME": str(home), "DLW_BACKEND": "local"}
        out = json.loads(__import__("subprocess").run([DLW, "jobs", "-o", "json"], env=env, capture_output=True,
                                                       check=True, text=True).stdout)
        assert len(out) == N, len(out)
        dlw = timed(run_cmd([DLW, "jobs", "--output", "json"], env=env))
        baseline = timed(run_cmd([sys.executable, "-c", BASELINE, str(home / "jobs.db"), user], env=env))
        report("jobs_json_10000", dlw_s=dlw, baseline_sqlite_json_s=baseline, ratio=dlw / baseline,
               goal="< 0.3 s", met=dlw < 0.3)


if __name__ == "__main__":
    main()
