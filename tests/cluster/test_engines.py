"""The objects of the engines whose controllers do not run here (Volcano: the proxy refuses its current
module), submitted by `dlw train` as alice, are accepted by the real API server with the engines' own CRDs
installed (their schemas and CEL rules, at the versions tests/cluster/crds.py names), and read back by
`dlw status`. Engines whose controllers run here train to the end: `job` in test_train.py, `pytorchjob` in
test_pytorchjob.py, `trainjob` in test_trainjob.py; docs/kubernetes.md says which controllers the suite runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cluster.controlplane import ControlPlane
from tests.cluster.support import dlw, write_notebook

KINDS = {"volcano": "jobs.batch.volcano.sh"}


@pytest.mark.parametrize("engine", sorted(KINDS))
def test_engine_objects_are_accepted_by_the_api_server(control_plane: ControlPlane, alice: dict[str, str],
                                                       crds: None, engine: str, tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "e.ipynb", ["print('hello')"])
    name = f"eng-{engine}"
    out = dlw("train", str(nb), "--name", name, "--engine", engine, "--workers", "2", env=alice)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    obj = control_plane.get(KINDS[engine], name, "-n", alice["DLW_NAMESPACE"])
    assert obj["metadata"]["labels"]["dlw.dev/job"] == name
    status = dlw("status", name, "-o", "json", env=alice)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["state"] in ("Queued", "Pending", "Starting")
    assert dlw("cancel", name, env=alice).returncode == 0
    gone = control_plane.kubectl("get", KINDS[engine], name, "-n", alice["DLW_NAMESPACE"], "-o", "json", check=False)
    assert gone.returncode != 0 or "deletionTimestamp" in gone.stdout
