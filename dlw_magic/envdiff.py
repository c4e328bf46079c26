"""What changed between two runs: ``dlw diff A B`` (two jobs) and ``dlw diff NAME`` (a job vs now).

A run's *view* is what DLW recorded about it: parameters, the notebook's cells, the code snapshot's hash,
the image, the Python version, the installed packages, the environment variables' names, the engine and
resources. ``diff`` compares two views section by section; ``render_text`` prints it, ``to_dict`` gives it
to JSON faces, ``rerun_note`` is the one line ``dlw rerun`` prints when the environment moved.
Environment variables are compared by name only (``changed`` says a value differs, never what it is): a
spec's ``env`` may hold tokens, and secrets are references by design.
"""

from __future__ import annotations

import difflib
import json
import platform
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import DLWError
from .types import JobInfo

if TYPE_CHECKING:
    from .backends import Backend

# Spec fields shown under "engine and resources" (camelCase, as in job YAML).
_RUN_FIELDS = ("engine", "workers", "processesPerWorker", "queue", "priority", "preemptible", "retries", "timeout")
_MAX_CELL_LINES = 40  # per changed cell: a reformatted notebook must not flood the terminal
_FREEZE_LINE = re.compile(r"^\s*([A-Za-z0-9_.\-\[\]]+)\s*(?:==|@| )\s*(.+?)\s*$")


@dataclass
class View:
    """What one run (or the current notebook and environment) is made of."""

    label: str
    parameters: dict[str, Any] = field(default_factory=dict)
    cells: list[str] | None = None  # code and markdown sources, None when no notebook copy is readable
    code_hash: str | None = None
    image: str | None = None
    python: str | None = None
    packages: dict[str, str] | None = None  # name (lower case) -> version; None when not recorded
    env: dict[str, str] = field(default_factory=dict)  # name -> opaque fingerprint, never shown
    run: dict[str, Any] = field(default_factory=dict)  # engine and resources
    notes: list[str] = field(default_factory=list)  # why a section could not be read


@dataclass
class Change:
    """One difference: ``what`` names the field, ``old``/``new`` are printable (None: absent)."""

    what: str
    old: Any = None
    new: Any = None


@dataclass
class Diff:
    a: str
    b: str
    sections: dict[str, list[Change]] = field(default_factory=dict)
    cell_diff: list[str] = field(default_factory=list)  # unified-diff lines per changed cell
    notes: list[str] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return not any(self.sections.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a, "b": self.b, "same": self.same, "notes": self.notes, "cellDiff": self.cell_diff,
            "sections": {k: [{"what": c.what, "old": c.old, "new": c.new} for c in v]
                         for k, v in self.sections.items()},
        }


# ---------------------------------------------------------------- views


def parse_freeze(lines: list[str] | str | None) -> dict[str, str] | None:
    """``pip freeze`` lines -> {name: version}; None when nothing was recorded."""
    if not lines:
        return None
    if isinstance(lines, str):
        lines = lines.splitlines()
    out: dict[str, str] = {}
    for line in lines:
        m = _FREEZE_LINE.match(line)
        if m and not line.lstrip().startswith("#"):
            out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def notebook_cells(path: Path) -> list[str] | None:
    """The sources of a notebook's cells (markdown prefixed ``[markdown]``), None if unreadable."""
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list):
        return None
    out = []
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown"):
            continue
        src = cell.get("source", "")
        text = "".join(src) if isinstance(src, list) else str(src)
        out.append(text if cell["cell_type"] == "code" else "[markdown]\n" + text)
    return out


def _fingerprint(value: Any) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _env_of(spec: dict[str, Any]) -> dict[str, str]:
    env = {str(k): _fingerprint(v) for k, v in (spec.get("env") or {}).items()}
    for ref in spec.get("secrets") or []:
        if isinstance(ref, dict) and ref.get("env"):  # a reference (secret/key), not a value
            env[str(ref["env"])] = _fingerprint(["secret", ref.get("secret"), ref.get("key")])
    return env


def _run_of(spec: dict[str, Any]) -> dict[str, Any]:
    run = {k: spec[k] for k in _RUN_FIELDS if spec.get(k) not in (None, "", [], {})}
    run.setdefault("engine", "job")
    run.setdefault("workers", 1)
    for key, value in (spec.get("resources") or {}).items():
        run[f"resources.{key}"] = value
    volumes = [v.get("name") for v in spec.get("volumes") or [] if isinstance(v, dict)]
    if volumes:
        run["volumes"] = ", ".join(sorted(str(v) for v in volumes))
    return run


def job_view(job: JobInfo, backend: Backend) -> View:
    """The recorded view of one job."""
    prov = job.provenance or {}
    view = View(
        label=job.name, parameters=dict(prov.get("parameters") or {}), code_hash=prov.get("snapshot_hash"),
        image=prov.get("image"), python=prov.get("python"), packages=parse_freeze(prov.get("pip_freeze")),
        env=_env_of(job.spec), run=_run_of(job.spec),
    )
    notebook = prov.get("notebook")
    if notebook:
        snap = backend.snapshot_of(job.name)
        copy = snap / Path(notebook).name if snap is not None else None
        view.cells = notebook_cells(copy) if copy is not None else None
        if view.cells is None:
            view.notes.append(f"{job.name}: its notebook copy is not kept here ({backend.name} backend)")
    if view.packages is None:
        view.notes.append(f"{job.name}: no package list recorded"
                          + (" (it has not started yet)" if not job.started else ""))
    return view


def current_packages(backend: Backend) -> dict[str, str] | None:
    """The packages of this environment (what a local job submitted now would run with)."""
    from .backends.local.supervisor import environment_freeze

    home = getattr(backend, "home", None)
    return parse_freeze(environment_freeze(Path(home) / "freeze-cache.json" if home else None))


def current_view(job: JobInfo, backend: Backend) -> View:
    """What ``job`` would be made of if it were submitted now: its spec, the notebook as saved now, this
    environment's Python, packages and image."""
    from . import snapshot
    from .spec import parse_spec

    view = View(label="now", image=snapshot.current_image(), python=platform.python_version(),
                packages=current_packages(backend), env=_env_of(job.spec), run=_run_of(job.spec))
    notebook = (job.provenance or {}).get("notebook") or (job.spec.get("source") or {}).get("notebook")
    if notebook:
        view.cells = notebook_cells(Path(notebook))
        if view.cells is None:
            view.notes.append(f"now: the notebook {notebook} is gone or unreadable")
            return view
    try:
        spec = parse_spec(dict(job.spec), f"job {job.name}")
        with tempfile.TemporaryDirectory(prefix="dlw-diff-") as tmp:
            prepared = snapshot.prepare(spec, Path(tmp) / "snapshot", job.user)
    except DLWError as err:
        view.notes.append(f"now: cannot snapshot the sources ({err})")
        return view
    view.code_hash = prepared.snapshot_hash
    view.parameters = dict(prepared.provenance.get("parameters") or {})
    return view


# ---------------------------------------------------------------- comparing


def _short(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("sha256:"):
        return value[:19]
    return value


def _mapping_changes(old: dict[str, Any], new: dict[str, Any], show_values: bool = True) -> list[Change]:
    out = []
    for key in sorted(set(old) | set(new)):
        if key not in new:
            out.append(Change(key, old[key] if show_values else "set", None))
        elif key not in old:
            out.append(Change(key, None, new[key] if show_values else "set"))
        elif old[key] != new[key]:
            out.append(Change(key, old[key] if show_values else "a value", new[key] if show_values else "another"))
    return out


def _cell_diff(a: list[str], b: list[str], la: str, lb: str) -> tuple[list[Change], list[str]]:
    """Cells matched by content (as nbdime does for inserted/deleted cells); changed cells as unified diffs."""
    changes: list[Change] = []
    lines: list[str] = []
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        pairs = list(zip(range(i1, i2), range(j1, j2), strict=False)) if op == "replace" else []
        for i, j in pairs:
            changes.append(Change(f"cell {j + 1}", "changed", "changed"))
            body = list(difflib.unified_diff(a[i].splitlines(), b[j].splitlines(), f"{la} cell {i + 1}",
                                             f"{lb} cell {j + 1}", lineterm="", n=1))
            lines.extend(body[:_MAX_CELL_LINES] + ([f"... {len(body) - _MAX_CELL_LINES} more lines"]
                                                   if len(body) > _MAX_CELL_LINES else []))
        for i in range(i1 + len(pairs), i2):
            changes.append(Change(f"cell {i + 1}", "removed", None))
            lines.extend([f"--- {la} cell {i + 1} (removed)", *("-" + s for s in a[i].splitlines()[:10])])
        for j in range(j1 + len(pairs), j2):
            changes.append(Change(f"cell {j + 1}", None, "added"))
            lines.extend([f"+++ {lb} cell {j + 1} (added)", *("+" + s for s in b[j].splitlines()[:10])])
    return changes, lines


def diff(a: View, b: View) -> Diff:
    """Section by section: parameters, notebook, code, image, python, packages, env, run."""
    d = Diff(a.label, b.label, notes=[*a.notes, *b.notes])
    d.sections["parameters"] = _mapping_changes(a.parameters, b.parameters)
    if a.cells is not None and b.cells is not None:
        d.sections["notebook"], d.cell_diff = _cell_diff(a.cells, b.cells, a.label, b.label)
    else:
        d.sections["notebook"] = []
    d.sections["code"] = ([Change("snapshot hash", _short(a.code_hash), _short(b.code_hash))]
                          if a.code_hash and b.code_hash and a.code_hash != b.code_hash else [])
    d.sections["image"] = [Change("image", a.image, b.image)] if a.image != b.image else []
    d.sections["python"] = ([Change("python", a.python, b.python)]
                            if a.python and b.python and a.python != b.python else [])
    d.sections["packages"] = (_mapping_changes(a.packages, b.packages)
                              if a.packages is not None and b.packages is not None else [])
    d.sections["env"] = _mapping_changes(a.env, b.env, show_values=False)
    d.sections["run"] = _mapping_changes(a.run, b.run)
    return d


def environment_changes(d: Diff) -> list[str]:
    """The environment's part of a diff (image, Python, packages), as short phrases."""
    out = []
    for c in d.sections.get("image", []):
        out.append(f"image {c.old} -> {c.new}")
    for c in d.sections.get("python", []):
        out.append(f"Python {c.old} -> {c.new}")
    pk = d.sections.get("packages", [])
    if pk:
        shown = ", ".join(_phrase(c) for c in pk[:3])
        out.append(f"{len(pk)} package(s) ({shown}{', ...' if len(pk) > 3 else ''})")
    return out


def _phrase(c: Change) -> str:
    if c.old is None:
        return f"+{c.what} {c.new}"
    if c.new is None:
        return f"-{c.what}"
    return f"{c.what} {c.old} -> {c.new}"


# ---------------------------------------------------------------- entry points for the faces


def diff_jobs(a: str, b: str | None = None, backend: Backend | None = None) -> Diff:
    """``dlw diff A B``: two jobs; ``dlw diff A``: the job against the current notebook and environment."""
    from .backends import get_backend

    backend = backend or get_backend()
    job_a = backend.get(a)
    view_a = job_view(job_a, backend)
    view_b = job_view(backend.get(b), backend) if b else current_view(job_a, backend)
    return diff(view_a, view_b)


def rerun_note(original: JobInfo, backend: Backend) -> str | None:
    """One line when a rerun of ``original`` runs in another environment than it did (same code by design)."""
    local = backend.name == "local"  # elsewhere the job runs in its image, whatever this notebook has
    now = View(label="now", image=original.provenance.get("image"), python=platform.python_version() if local else None,
               packages=current_packages(backend) if local else None)
    changes = environment_changes(diff(job_view(original, backend), now))
    if not changes:
        return None
    return f"environment differs from {original.name}'s: {'; '.join(changes)} (details: dlw diff {original.name})"


def render_text(d: Diff) -> str:
    """The diff for a terminal or a notebook: one header per section that changed."""
    titles = {"parameters": "Parameters", "notebook": "Notebook cells", "code": "Code", "image": "Image",
              "python": "Python", "packages": "Packages", "env": "Environment variables (names only)",
              "run": "Engine and resources"}
    out = [f"{d.a} -> {d.b}"]
    if d.same:
        out.append("no differences in parameters, notebook, code, image, Python, packages, env or resources")
    for key, title in titles.items():
        changes = d.sections.get(key) or []
        if not changes:
            continue
        out.append(f"{title}:")
        if key == "notebook":
            out.extend("  " + line for line in d.cell_diff)
            continue
        for c in changes:
            if c.old is None:
                out.append(f"  + {c.what}: {c.new}" if key != "env" else f"  + {c.what}")
            elif c.new is None:
                out.append(f"  - {c.what}: {c.old}" if key != "env" else f"  - {c.what}")
            elif key == "env":
                out.append(f"  ~ {c.what}: value changed")
            else:
                out.append(f"  ~ {c.what}: {c.old} -> {c.new}")
    out.extend(f"note: {n}" for n in d.notes)
    return "\n".join(out) + "\n"
