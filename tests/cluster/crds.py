"""The engines' CustomResourceDefinitions, read from the controllers' own Go modules.

Each controller's module zip (from the Go module proxy, cached in GOMODCACHE) carries the CRDs its release
installs. The versions are the ones the cluster suite builds (the wrapper modules' go.mod in this folder),
so the schema the offline checks use is the schema the real API server serves in the suite (JobSet's is the
version Trainer's go.mod requires: both controllers are one wrapper module, tests/cluster/trainer). Volcano's
is v1.10.0, the newest release the proxy serves (it refuses volcano.sh/volcano v1.10.1 and v1.11 and
later), which tests/cluster/volcano/go.mod builds.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent

# Module (as the wrapper go.mod names it, or pinned here) and the CRD files in its zip.
WRAPPER = {"jobset": "trainer"}  # a component built in another's wrapper module (JobSet: Trainer's)
SOURCES: dict[str, tuple[str, list[str]]] = {
    "volcano": ("volcano.sh/volcano", [
        "config/crd/volcano/bases/batch.volcano.sh_jobs.yaml",
        "config/crd/volcano/bases/scheduling.volcano.sh_queues.yaml",
        "config/crd/volcano/bases/scheduling.volcano.sh_podgroups.yaml",
        # The rest of what the release installs: vc-controller-manager and vc-scheduler wait for these
        # informers (tests/cluster/volcano.py).
        "config/crd/volcano/bases/bus.volcano.sh_commands.yaml",
        "config/crd/volcano/bases/nodeinfo.volcano.sh_numatopologies.yaml",
        "config/crd/jobflow/bases/flow.volcano.sh_jobflows.yaml",
        "config/crd/jobflow/bases/flow.volcano.sh_jobtemplates.yaml",
    ]),
    "training-operator": ("github.com/kubeflow/training-operator", [
        "manifests/base/crds/kubeflow.org_pytorchjobs.yaml",
    ]),
    "jobset": ("sigs.k8s.io/jobset", ["config/components/crd/bases/jobset.x-k8s.io_jobsets.yaml"]),
    "trainer": ("github.com/kubeflow/trainer/v2", [
        "manifests/base/crds/trainer.kubeflow.org_trainjobs.yaml",
        "manifests/base/crds/trainer.kubeflow.org_trainingruntimes.yaml",
        "manifests/base/crds/trainer.kubeflow.org_clustertrainingruntimes.yaml",
    ]),
    "kueue": ("sigs.k8s.io/kueue", [
        f"config/components/crd/bases/kueue.x-k8s.io_{k}.yaml"
        for k in ("clusterqueues", "localqueues", "resourceflavors", "workloads", "workloadpriorityclasses",
                  "admissionchecks", "cohorts", "topologies", "provisioningrequestconfigs",
                  "multikueueconfigs", "multikueueclusters")  # all its release installs: Kueue indexes each
    ]),
}


def pinned(component: str, module: str) -> str:
    """``module@version`` as the component's wrapper go.mod pins it (the version the suite builds)."""
    if "@" in module:
        return module
    component = WRAPPER.get(component, component)
    text = (HERE / component / "go.mod").read_text()
    m = re.search(rf"^\s*{re.escape(module)} (v\S+)", text, re.M)
    if not m:
        raise LookupError(f"tests/cluster/{component}/go.mod does not require {module}")
    return f"{module}@{m.group(1)}"


@functools.cache
def module_dir(spec: str) -> Path:
    """The unpacked module ``path@version`` (downloaded through the Go module proxy once)."""
    out = subprocess.run(["go", "mod", "download", "-json", spec], capture_output=True, text=True,
                         env={**os.environ, "GOFLAGS": "-mod=mod"}, cwd=HERE, check=False)
    info = json.loads(out.stdout or "{}")
    if out.returncode or "Dir" not in info:
        raise RuntimeError(f"go mod download {spec}: {info.get('Error') or out.stderr.strip()}")
    return Path(info["Dir"])


def crd_paths(component: str | None = None) -> list[Path]:
    """Paths of the CRD files (all components, or one)."""
    paths: list[Path] = []
    for name, (module, files) in SOURCES.items():
        if component in (None, name):
            root = module_dir(pinned(name, module))
            paths += [root / f for f in files]
    return paths


@functools.cache
def crds_by_kind() -> dict[tuple[str, str], dict]:
    """{(apiVersion, kind): CRD} for every served version of every CRD."""
    out: dict[tuple[str, str], dict] = {}
    for path in crd_paths():
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for v in crd["spec"]["versions"]:
            if v.get("served", True):
                out[(f"{group}/{v['name']}", kind)] = crd
    return out


def torch_distributed_runtime() -> dict:
    """Kubeflow Trainer's ClusterTrainingRuntime ``torch-distributed`` as its release installs it."""
    root = module_dir(pinned("trainer", SOURCES["trainer"][0]))
    return yaml.safe_load((root / "manifests/base/runtimes/torch_distributed.yaml").read_text())
