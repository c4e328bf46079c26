"""Image builds: the generated Dockerfile and context, the Kaniko Job, and builds through the cluster."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import yaml
from k8s_emulator import KubeEmulator
from k8s_schema import validate_objects

from dlw_magic import core, snapshot
from dlw_magic.build import build_image, context_tarball, dockerfile, image_reference, pinned_requirements
from dlw_magic.build.dockerfile import write_context
from dlw_magic.build.kaniko import build_objects
from dlw_magic.engines.policy import check_objects
from dlw_magic.errors import DLWError
from dlw_magic.render import render_context
from dlw_magic.spec import parse_spec

WORKSPACE = str(Path(__file__).parent / "render_golden" / "workspace.yaml")
JOB = ("batch/v1", "Job")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from dlw_magic import backends

    monkeypatch.setenv("DLW_USER", "alice")
    monkeypatch.setenv("DLW_WORKSPACE_CONFIG", WORKSPACE)
    for var in ("JUPYTERHUB_USER", "DLW_NAMESPACE", "KUBERNETES_SERVICE_HOST", "DLW_KUBECONFIG", "DLW_BUILDER",
                "DLW_BACKEND", "DLW_IMAGE", "JUPYTER_IMAGE", "JUPYTER_IMAGE_SPEC", "DLW_BUILDER_IMAGE"):
        monkeypatch.delenv(var, raising=False)
    backends._cache.clear()
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "train.py").write_text("print('v1')\n")
    (proj / "requirements.txt").write_text("torch==2.13.0\nnumpy==2.1.0\n")
    monkeypatch.chdir(proj)
    yield proj
    backends._cache.clear()


def prepare(proj: Path, dest: str = "snap", **fields):
    spec = parse_spec({"name": "built", "source": {"script": "train.py"}, "build": True, **fields})
    return snapshot.prepare(spec, proj.parent / dest, "alice")


def test_dockerfile_layers_base_then_dependencies_then_code(env: Path) -> None:
    text = dockerfile(prepare(env), "registry.example/dlw/train-base:0.1.0")
    steps = [line.split()[0] + " " + line.split()[1] for line in text.splitlines()
             if line and not line.startswith("#")]
    assert steps == ["FROM registry.example/dlw/train-base:0.1.0", "COPY requirements.txt", "RUN python",
                     "COPY code/", "ENV DLW_SNAPSHOT_DIR=/dlw/snapshot"]


def test_requirements_are_pinned_from_this_environment(env: Path) -> None:
    import pydantic
    import yaml as pyyaml

    pins = pinned_requirements().splitlines()
    assert f"pydantic=={pydantic.VERSION}" in pins
    assert any(p.lower() == f"pyyaml=={pyyaml.__version__}" for p in pins)
    assert not any(p.lower().startswith("dlw-magic==") for p in pins)
    assert all("==" in p for p in pins if not p.startswith("#"))


def test_spec_requirements_file_is_used_as_given(env: Path, tmp_path: Path) -> None:
    prepared = prepare(env, build={"enabled": True, "requirements": "requirements.txt"})
    ctx = write_context(prepared, "base:1", tmp_path / "ctx")
    assert (ctx / "requirements.txt").read_text() == "torch==2.13.0\nnumpy==2.1.0\n"
    assert (ctx / "code" / "train.py").read_text() == "print('v1')\n"


def test_code_only_change_keeps_the_dependency_inputs(env: Path, tmp_path: Path) -> None:
    """What a layer cache keys on: the Dockerfile steps and requirements.txt stay byte-identical."""
    first = write_context(prepare(env, "a"), "base:1", tmp_path / "a")
    (env / "train.py").write_text("print('v2')\n")
    second = write_context(prepare(env, "b"), "base:1", tmp_path / "b")
    for name in ("Dockerfile", "requirements.txt"):
        assert (first / name).read_bytes() == (second / name).read_bytes()
    assert (first / "code" / "train.py").read_text() != (second / "code" / "train.py").read_text()
    again = write_context(prepare(env, "c"), "base:1", tmp_path / "c")
    assert context_tarball(second) == context_tarball(again)  # reproducible context


def test_kaniko_job_renders_valid_and_confined(env: Path, tmp_path: Path) -> None:
    data = yaml.safe_load(Path(WORKSPACE).read_text())
    data["images"]["pullSecret"] = "registry-push"
    ws_file = tmp_path / "ws.yaml"
    ws_file.write_text(yaml.safe_dump(data))
    prepared = prepare(env)
    prepared.code_in_image = True
    ctx = render_context(prepared, "job", workspace=str(ws_file))
    ref = image_reference(prepared, "registry.example/dlw")
    assert ref.startswith("registry.example/dlw/alice/built:")
    objs = build_objects(ctx, prepared, context_tarball(write_context(prepared, "b:1", tmp_path / "c")), ref)
    assert validate_objects(objs) == 2
    cm, job = objs
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert f"--destination={ref}" in container["args"] and "--cache=true" in container["args"]
    assert container["image"] == "registry.example/dlw/kaniko-executor:v1.23.2"
    assert job["metadata"]["namespace"] == cm["metadata"]["namespace"] == "dlw-alice"
    check_objects(objs, "dlw-alice", [], frozenset({"registry-push"}))  # the admin's push secret only
    from dlw_magic.engines.objects import objects_for

    job_pod = objects_for(ctx)[0]["spec"]["template"]["spec"]
    assert job_pod["imagePullSecrets"] == [{"name": "registry-push"}]  # built images pull with it
    with pytest.raises(DLWError, match="secret volumes are refused"):
        check_objects(objs, "dlw-alice", [])


def test_no_builder_is_a_clear_error(env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))  # no docker, podman or buildah here
    with pytest.raises(DLWError, match="build: no image builder here: no docker/podman/buildah works"):
        build_image(prepare(env))
    monkeypatch.setenv("DLW_BUILDER", "podman")
    with pytest.raises(DLWError, match="no podman works"):
        build_image(prepare(env))
    monkeypatch.setenv("DLW_BUILDER", "nerdctl")
    with pytest.raises(DLWError, match="DLW_BUILDER='nerdctl': choose kaniko, docker, podman or buildah"):
        build_image(prepare(env))


def _play_kaniko(kube: KubeEmulator, message: str, outcome: str) -> threading.Thread:
    """Act as the Job controller and kubelet for the build Job once it appears."""
    def run() -> None:
        for _ in range(200):
            jobs = [j for j in kube.items(JOB) if j["metadata"]["name"].endswith("-build")]
            if jobs:
                break
            time.sleep(0.05)
        job = jobs[0]
        kube.add_pod(job, job["metadata"]["name"] + "-x", {"phase": "Succeeded", "containerStatuses": [
            {"name": "kaniko", "image": "k", "state": {"terminated": {"exitCode": 0, "message": message}}}]})
        kube.set_status(JOB, job["metadata"]["name"], {"conditions": [{"type": outcome, "status": "True"}]})

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_cluster_build_then_submit_runs_the_built_digest(env: Path, tmp_path: Path, monkeypatch) -> None:
    digest = "sha256:" + "b" * 64
    with KubeEmulator(tmp_path) as kube:
        monkeypatch.setenv("DLW_KUBECONFIG", str(kube.kubeconfig))
        _play_kaniko(kube, digest + "\n", "Complete")
        info = core.submit(core.build_spec("train.py", name="built", build=True))
        job = kube.get(JOB, "built")
        container = job["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == f"registry.example/dlw/alice/built@{digest}"
        # The code is a layer of the image: no code ConfigMap, no snapshot volume.
        assert not [c for c in kube.items(("v1", "ConfigMap")) if c["metadata"]["name"] == "built-code"]
        assert "dlw-snapshot" not in str(job["spec"]["template"]["spec"]["volumes"])
        assert info.provenance["build"]["image"].endswith(digest)


def test_cluster_build_failure_says_why(env: Path, tmp_path: Path, monkeypatch) -> None:
    with KubeEmulator(tmp_path) as kube:
        monkeypatch.setenv("DLW_KUBECONFIG", str(kube.kubeconfig))
        _play_kaniko(kube, "error building image: ERROR: No matching distribution found for torch==9.9\n", "Failed")
        with pytest.raises(DLWError, match="build failed in built-build: .*No matching distribution"):
            core.submit(core.build_spec("train.py", name="built", build=True))
        assert kube.items(JOB) == [] or all(j["metadata"]["name"] == "built-build" for j in kube.items(JOB))


def test_the_jobs_own_kubeconfig_builds_it(env: Path, tmp_path: Path, monkeypatch) -> None:
    """`dlw train --kubeconfig X --build`: the build runs in X's cluster, with no DLW_KUBECONFIG set."""
    from dlw_magic.backends import get_backend

    digest = "sha256:" + "c" * 64
    monkeypatch.setenv("PATH", str(tmp_path / "no-docker"))  # no local engine to fall back to
    with KubeEmulator(tmp_path) as kube:
        backend = get_backend("kubernetes", kubeconfig=str(kube.kubeconfig))
        _play_kaniko(kube, digest + "\n", "Complete")
        core.submit(core.build_spec("train.py", name="built", build=True), backend)
        container = kube.get(JOB, "built")["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == f"registry.example/dlw/alice/built@{digest}"
