"""DLW's images, built for real (``scripts/images.sh``: buildah on a debootstrap Debian base) and run.

Each image is built once per session (its layers are cached, so a rerun with nothing changed takes seconds)
and checked by running commands in it with ``buildah run --isolation chroot``: the notebook image starts
``jupyterhub-singleuser`` and has the lab extension enabled, the hub image loads DLW's hub config, the
training base runs a rendered pod's bootstrap on a notebook with the env its controller injects, and the
local backend runs a ``dlw train --build`` job inside the image it built.

Without buildah or debootstrap on the machine the whole module is skipped with one line saying which.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

MISSING = [tool for tool in ("buildah", "debootstrap") if shutil.which(tool) is None]
if MISSING:
    pytest.skip(f"image tests need {' and '.join(MISSING)} (apt-get install {' '.join(MISSING)})",
                allow_module_level=True)

from test_rank_contract import WORKSPACE, controller_pods, unpack_config_map  # noqa: E402

from dlw_magic import core, metrics, snapshot  # noqa: E402
from dlw_magic.engines.objects import render_objects  # noqa: E402

pytestmark = [pytest.mark.images, pytest.mark.slow, pytest.mark.timeout(3600)]

ROOT = Path(__file__).resolve().parents[1]
VERSION = "0.1.0"
BUILDAH_ENV = {"STORAGE_DRIVER": os.environ.get("STORAGE_DRIVER", "vfs"),
               "BUILDAH_ISOLATION": os.environ.get("BUILDAH_ISOLATION", "chroot")}
NOTEBOOK = """\
import json, os
from dlw_magic import log_metrics
print("training in", os.getcwd(), "as uid", os.getuid())
for step in range(3):
    log_metrics(step=step, loss=1.0 / (step + 1))
{"rank": os.environ["RANK"], "world": os.environ["WORLD_SIZE"]}
"""


@pytest.fixture(scope="session")
def built() -> Iterator[dict[str, dict[str, object]]]:
    """Build the images (cached layers make a rebuild cheap); ``{image: {"seconds", "bytes"}}``."""
    done: dict[str, dict[str, object]] = {}

    def build(target: str) -> dict[str, dict[str, object]]:
        proc = subprocess.run(["bash", str(ROOT / "scripts/images.sh"), target], capture_output=True, text=True,
                              env={**os.environ, **BUILDAH_ENV}, timeout=3600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        for line in proc.stdout.splitlines():
            row = json.loads(line)
            done[row.pop("image")] = row
        return done

    yield build  # type: ignore[misc]


@pytest.fixture
def container() -> Iterator:
    """``container(image)``: a working container, removed after the test; run commands with ``run``."""
    made: list[str] = []

    def make(image: str) -> str:
        proc = subprocess.run(["buildah", "from", "--quiet", "--pull-never", image], capture_output=True, text=True,
                              env={**os.environ, **BUILDAH_ENV}, check=True)
        made.append(proc.stdout.strip())
        return made[-1]

    yield make
    for ctr in made:
        subprocess.run(["buildah", "rm", ctr], capture_output=True, env={**os.environ, **BUILDAH_ENV})


def run(ctr: str, *argv: str, options: tuple[str, ...] = (), timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["buildah", "run", "--isolation", BUILDAH_ENV["BUILDAH_ISOLATION"], *options, ctr, "--",
                           *argv], capture_output=True, text=True, env={**os.environ, **BUILDAH_ENV}, timeout=timeout)


def test_notebook_image_serves_jupyterhub_singleuser_with_the_dlw_extension(built, container) -> None:
    image = f"localhost/dlw/notebook:{VERSION}"
    built("notebook")
    ctr = container(image)
    proc = run(ctr, "jupyterhub-singleuser", "--help-all")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "JupyterHubSingleUser(ExtensionApp) options" in proc.stdout  # JupyterHub's extension, not a bare server
    proc = run(ctr, "jupyter", "labextension", "list")
    listed = [line for line in (proc.stdout + proc.stderr).splitlines() if "dlw-labextension" in line]
    assert proc.returncode == 0 and listed, proc.stdout + proc.stderr
    assert "enabled" in listed[0] and "OK" in listed[0], listed
    proc = run(ctr, "jupyter", "server", "extension", "list")
    assert any("dlw_magic" in line and "enabled" in line for line in (proc.stdout + proc.stderr).splitlines())
    proc = run(ctr, "id", "-u")
    assert proc.stdout.strip() == "1000"  # the notebook user, not root


def test_hub_image_loads_dlw_config_and_spawner(built, container, tmp_path: Path) -> None:
    image = f"localhost/dlw/hub:{VERSION}"
    built("hub")
    ctr = container(image)
    proc = run(ctr, "jupyterhub", "--help-all")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--JupyterHub.spawner_class" in proc.stdout
    # The chart's hub.extraConfig (deploy/jupyterhub-values.yaml) and the workspace file it mounts.
    (tmp_path / "jupyterhub_config.py").write_text("from dlw_magic.hub.kube import configure\n"
                                                   "configure(c, cull=False)\n")
    shutil.copy(ROOT / "hub_config" / "workspace.yaml", tmp_path / "workspace.yaml")
    tmp_path.chmod(0o755)
    load = ("from jupyterhub.app import JupyterHub; app = JupyterHub(); "
            "app.load_config_file('/etc/dlw-test/jupyterhub_config.py'); "
            "print(app.spawner_class.__module__, app.spawner_class.__name__)")
    proc = run(ctr, "python3", "-c", load, options=("-v", f"{tmp_path}:/etc/dlw-test:ro",
                                                     "-e", "DLW_WORKSPACE_CONFIG=/etc/dlw-test/workspace.yaml"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["dlw_magic.hub.kube", "DLWKubeSpawner"]


def test_training_image_runs_the_pod_bootstrap_on_a_notebook(built, container, tmp_path: Path, notebook,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    image = f"localhost/dlw/train-base:{VERSION}"
    built("train-base")
    monkeypatch.setenv("DLW_USER", "alice")
    for var in ("DLW_NAMESPACE", "DLW_WORKSPACE_CONFIG", "JUPYTERHUB_USER"):
        monkeypatch.delenv(var, raising=False)
    nb = notebook("steps.ipynb", [NOTEBOOK])
    spec = core.build_spec(nb, name="steps", image=image)
    prepared = snapshot.prepare(spec, tmp_path / "staging", "alice")
    objs = render_objects(prepared, workspace=WORKSPACE)
    [(pod, injected)] = controller_pods("job", objs, 29500)
    [box] = pod["containers"]
    assert box["image"] == image
    # The kubelet's part: the code ConfigMap and the emptyDirs, writable by the image's user (1000).
    snap, code, output = tmp_path / "snapshot", tmp_path / "code", tmp_path / "output"
    unpack_config_map(objs, pod, snap)
    for folder in (code, output):
        folder.mkdir()
        folder.chmod(0o777)
    mounts = {m["mountPath"] for m in box["volumeMounts"]}
    assert {"/dlw/snapshot", "/dlw/code", "/dlw/output"} <= mounts
    env = {e["name"]: e["value"] for e in box["env"] if "value" in e} | injected
    options = ["--workingdir", box["workingDir"], "-v", f"{snap}:/dlw/snapshot:ro", "-v", f"{code}:/dlw/code",
               "-v", f"{output}:/dlw/output"]
    for key, value in env.items():
        options += ["-e", f"{key}={value}"]
    proc = run(container(image), *box["command"], *box["args"], options=tuple(options))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "training in /dlw/code as uid 1000" in proc.stdout
    executed = json.loads((output / "executed.ipynb").read_text())
    [cell] = [c for c in executed["cells"] if c["cell_type"] == "code"]
    shown = [o for o in cell["outputs"] if o["output_type"] == "execute_result"]
    assert shown and "'world': '1'" in "".join(shown[0]["data"]["text/plain"])
    assert [(p[0], p[1]) for p in metrics.read(output)["loss"]] == [(0, 1.0), (1, 0.5), (2, 1 / 3)]


def test_dlw_train_build_runs_the_job_inside_the_image_it_built(built, tmp_path: Path, notebook, dlw_home: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    base = f"localhost/dlw/train-base:{VERSION}"
    built("train-base")
    for key, value in BUILDAH_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DLW_USER", "alice")
    monkeypatch.setenv("DLW_WORKSPACE_CONFIG", WORKSPACE)
    for var in ("DLW_BUILDER", "DLW_KUBECONFIG", "KUBERNETES_SERVICE_HOST", "DLW_IMAGE", "JUPYTER_IMAGE"):
        monkeypatch.delenv(var, raising=False)
    nb = notebook("steps.ipynb", [NOTEBOOK.replace("print(", "import sys; print(sys.executable, ")])
    (tmp_path / "requirements.txt").write_text("# nothing beyond the base image\n")
    job = tmp_path / "job.yaml"
    job.write_text(f"apiVersion: dlw/v1\nkind: TrainingJob\nname: in-image\nsource:\n  notebook: {nb}\n"
                   f"build:\n  enabled: true\n  baseImage: {base}\n  requirements: {tmp_path / 'requirements.txt'}\n")
    proc = subprocess.run([sys.executable, "-m", "dlw_magic.cli", "train", str(job), "--wait"], capture_output=True,
                          text=True, cwd=tmp_path, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "built with buildah" in proc.stdout
    logs = subprocess.run([sys.executable, "-m", "dlw_magic.cli", "logs", "in-image"], capture_output=True,
                          text=True, cwd=tmp_path, timeout=120)
    # The image's Python (/opt/dlw), not this virtualenv's: the job ran inside the image.
    assert "/opt/dlw/bin/python" in logs.stdout and sys.executable not in logs.stdout, logs.stdout
    info = json.loads(subprocess.run([sys.executable, "-m", "dlw_magic.cli", "status", "in-image", "-o", "json"],
                                     capture_output=True, text=True, cwd=tmp_path, timeout=120).stdout)
    assert info["provenance"]["build"]["builder"] == "buildah"
    assert [p[1] for p in info["metrics"]["loss"]] == [1.0, 0.5, 1 / 3]


def test_local_image_job_runs_each_rank_in_the_image_and_cancel_ends_them(built, tmp_path: Path, dlw_home: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers import processes_with_env, wait_until

    from dlw_magic.backends import JobState

    image = f"localhost/dlw/train-base:{VERSION}"
    built("train-base")
    for key, value in BUILDAH_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DLW_USER", "alice")
    script = tmp_path / "ranks.py"
    script.write_text("import os, sys\nprint('rank', os.environ['RANK'], 'of', os.environ['WORLD_SIZE'], "
                      "sys.executable, os.environ.get('VIRTUAL_ENV'), flush=True)\n")
    job = core.wait(core.submit(core.build_spec(script, name="ranks", workers=2, image=image)).name, timeout=600)
    assert job.state is JobState.SUCCEEDED, job
    logs = {r: "".join(c.text for c in core.logs("ranks", rank=r)) for r in range(2)}
    # The image's Python; none of this machine's environment (its virtualenv) leaks in.
    assert [logs[r].split() for r in range(2)] == [["rank", str(r), "of", "2", "/opt/dlw/bin/python", "None"]
                                                   for r in range(2)]

    sleeper = tmp_path / "sleeper.py"
    sleeper.write_text("import os, time\nprint('started', os.environ['RANK'], flush=True)\ntime.sleep(300)\n")
    core.submit(core.build_spec(sleeper, name="napper", workers=2, image=image))
    assert wait_until(lambda: len(processes_with_env("DLW_JOB_NAME", "napper")) == 2, timeout=300)
    assert core.cancel("napper").state is JobState.CANCELLED
    assert wait_until(lambda: processes_with_env("DLW_JOB_NAME", "napper") == [], timeout=30)
