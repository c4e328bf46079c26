"""The import-order contract: faces (cli, magics, widget, server, hub) > core > backends > engines > render >
spec > leaves. A module imports only from its own layer or the ones below, at the top of a file or inside a
function alike (a late import is still a dependency); imports under ``if TYPE_CHECKING:`` are types only.

A module not named in LAYERS is a leaf: a new module that imports upwards fails here until it is placed.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "dlw_magic"

ORDER = ["leaves", "spec", "render", "engines", "backends", "core", "faces"]
LAYERS = {
    # faces: the package's IPython entry point, the CLI, magics, widget, the lab's REST API and the hub side
    "": "faces",
    "cli": "faces",
    "cli_admin": "faces",
    "cli_experiments": "faces",
    "cli_diff": "faces",
    "cli_schedule": "faces",
    "backup": "faces",  # dlw admin backup/restore: the hub's cluster export is a face's
    "magics": "faces",
    "widget": "faces",
    "sweep_widget": "faces",  # %dlw sweep's live results table
    "server": "faces",
    "hub": "faces",
    "core": "core",
    "options": "core",  # options: the faces' shared job options, built on the core
    "experiments": "core",  # sweeps submit their trials through the core
    "tensorboard": "core",
    "usage": "core",  # budgets, checked by core.submit
    "envdiff": "core",  # dlw diff reads jobs through the backends
    "schedules": "core",  # each fire submits through the core
    "backends": "backends",
    "build": "backends",
    "snapshot": "backends",
    "engines": "engines",
    "render": "render",
    "workspace": "render",
    "spec": "spec",
    "convert": "spec",
}


def layer(module: str) -> str:
    """``dlw_magic.backends.local.store`` -> backends; unknown top-level modules are leaves."""
    parts = module.split(".")
    return LAYERS.get(parts[1] if len(parts) > 1 else "", "leaves")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path) -> list[tuple[str, int]]:
    """(imported dlw_magic module or name, line) for every import that runs, type-checking blocks left out."""
    module = module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    types_only = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if id(node) in types_only:
            continue
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] == "dlw_magic":
                found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names if alias.name.split(".")[0] == "dlw_magic"]
    return found


def back_edges(root: Path) -> list[str]:
    edges = []
    for path in sorted(root.rglob("*.py")):
        if "labextension" in path.parts:
            continue
        source = module_name(path, root)
        for target, line in imports(path, root):
            if target == "dlw_magic.__version__":
                continue  # a constant of the package, not its IPython entry point
            if ORDER.index(layer(source)) < ORDER.index(layer(target)):
                edges.append(
                    f"{path.relative_to(root.parent)}:{line}: {layer(source)} {source} imports {layer(target)} {target}"
                )
    return edges


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    edges = back_edges(PACKAGE)
    assert edges == [], "imports against faces > core > backends > engines > render > spec > leaves:\n" + "\n".join(
        edges
    )


def test_a_late_import_against_the_order_is_caught(tmp_path: Path) -> None:
    pkg = tmp_path / "dlw_magic"
    (pkg / "spec").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "spec" / "__init__.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from ..backends import Backend\n"  # types only: allowed
        "from ..errors import DLWError\n"  # a leaf: allowed
        "def f():\n    from ..core import submit\n    from dlw_magic.engines import get\n"
    )
    assert back_edges(pkg) == [
        "dlw_magic/spec/__init__.py:6: spec dlw_magic.spec imports core dlw_magic.core.submit",
        "dlw_magic/spec/__init__.py:7: spec dlw_magic.spec imports engines dlw_magic.engines.get",
    ]
