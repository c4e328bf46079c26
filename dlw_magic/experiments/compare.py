"""``dlw compare A B C``: any jobs (a sweep's trials or not) side by side, their differences first.

Parameters, image, code hash (the snapshot's sha256), git commit and installed packages (``pip freeze``,
where the backend keeps it) that differ, and every metric for an overlay chart.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .. import core
from ..errors import DLWError
from ..metrics import last_values

if TYPE_CHECKING:
    from ..backends import Backend

MAX_JOBS = 20
_REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:==|@|\s)\s*(.+?)\s*$")


def packages(freeze: list[str] | None) -> dict[str, str]:
    """``pip freeze`` lines -> {normalized name: version or source}."""
    out = {}
    for line in freeze or []:
        m = _REQ.match(line)
        if m:
            out[re.sub(r"[-_.]+", "-", m[1]).lower()] = m[2]
    return out


def compare(names: list[str], backend: Backend | None = None) -> dict[str, Any]:
    if len(names) < 2:
        raise DLWError("compare: give at least two jobs")
    if len(names) > MAX_JOBS:
        raise DLWError(f"compare: at most {MAX_JOBS} jobs at once")
    if len(set(names)) != len(names):
        raise DLWError("compare: a job is named twice")
    backend = backend or core.backend_for()
    jobs = [core.get_job(n, backend) for n in names]
    items: list[dict[str, Any]] = []
    freezes = []
    for j in jobs:
        prov = j.provenance
        params = prov.get("parameters")
        params = dict(params) if isinstance(params, dict) else dict(j.spec.get("parameters") or {})
        items.append({
            "name": j.name, "state": j.state.value, "image": prov.get("image"),
            "codeHash": prov.get("snapshot_hash"), "gitCommit": prov.get("git_commit"),
            "notebook": prov.get("notebook") or prov.get("script"), "experiment": prov.get("experiment"),
            "duration": j.duration, "parameters": params, "metrics": j.metrics,
            "lastMetrics": last_values(j.metrics),
        })
        freezes.append(packages(prov.get("pip_freeze")) if prov.get("pip_freeze") else None)
    keys = list(dict.fromkeys(k for i in items for k in i["parameters"]))
    diff_params = [k for k in keys if len({repr(i["parameters"].get(k)) for i in items}) > 1]
    same = [k for k in ("image", "codeHash", "gitCommit") if len({i[k] for i in items}) == 1]
    same += [f"param {k}" for k in keys if k not in diff_params]
    known = [f for f in freezes if f is not None]
    diff_packages: dict[str, list[str | None]] = {}
    if len(known) > 1:
        for pkg in sorted({p for f in known for p in f}):
            versions = [f.get(pkg) if f is not None else None for f in freezes]
            if len({v for v, f in zip(versions, freezes, strict=True) if f is not None}) > 1:
                diff_packages[pkg] = versions
        if not diff_packages:
            same.append("packages")
    metric_names = list(dict.fromkeys(m for i in items for m in i["metrics"]))
    return {"jobs": items, "parameters": diff_params, "packages": diff_packages, "metrics": metric_names,
            "same": same}
