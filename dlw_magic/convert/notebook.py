"""Read an .ipynb file with plain ``json`` (nbformat is too slow to import for ``dlw train``).

Only what conversion needs is checked: a JSON object with nbformat 4 and a ``cells`` list whose
entries have a ``cell_type`` and a ``source``. Every problem is a one-line DLWError naming the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import DLWError, NotFound

SKIP_TAGS = frozenset({"skip", "dlw-skip"})
PARAMETERS_TAG = "parameters"


@dataclass(frozen=True)
class Cell:
    number: int  # 1-based position among all cells of the notebook, markdown included
    kind: str  # "code", "markdown" or "raw"
    source: str
    tags: frozenset[str]

    @property
    def skipped(self) -> bool:
        return bool(self.tags & SKIP_TAGS)

    @property
    def is_parameters(self) -> bool:
        return self.kind == "code" and PARAMETERS_TAG in self.tags


def load_cells(path: Path) -> list[Cell]:
    """The cells of the notebook at ``path``; the file is only read."""
    name = path.name
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"{path}: notebook not found") from None
    except IsADirectoryError:
        raise DLWError(f"{path}: is a directory, not a notebook") from None
    except OSError as err:
        raise DLWError(f"{path}: cannot read notebook: {err.strerror}") from None
    try:
        nb = json.loads(data)
    except UnicodeDecodeError:
        raise DLWError(f"{name}: not a valid notebook: not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise DLWError(
            f"{name}: not a valid notebook: invalid JSON at line {err.lineno}, column {err.colno}"
        ) from None
    except (ValueError, RecursionError) as err:  # an integer of 5,000 digits, arrays nested 100,000 deep
        raise DLWError(f"{name}: not a valid notebook: {str(err).split(':')[0]}") from None
    if not isinstance(nb, dict):
        raise DLWError(f"{name}: not a valid notebook: expected a JSON object, got {type(nb).__name__}")
    version = nb.get("nbformat")
    if version is None and "cells" not in nb:
        raise DLWError(f"{name}: not a valid notebook: no 'nbformat' and no 'cells'")
    if version != 4:
        raise DLWError(
            f"{name}: unsupported nbformat {version!r} (DLW reads nbformat 4: open and save it in Jupyter)"
        )
    raw_cells = nb.get("cells")
    if not isinstance(raw_cells, list):
        raise DLWError(f"{name}: not a valid notebook: 'cells' must be a list")
    return [_cell(name, number, raw) for number, raw in enumerate(raw_cells, start=1)]


def _cell(name: str, number: int, raw: object) -> Cell:
    if not isinstance(raw, dict):
        raise DLWError(f"{name}: cell {number}: not a valid cell (expected a JSON object)")
    kind = raw.get("cell_type")
    if kind not in ("code", "markdown", "raw"):
        raise DLWError(f"{name}: cell {number}: unknown cell_type {kind!r}")
    source = raw.get("source", "")
    if isinstance(source, list) and all(isinstance(part, str) for part in source):
        source = "".join(source)
    elif not isinstance(source, str):
        raise DLWError(f"{name}: cell {number}: 'source' must be a string or a list of strings")
    if not source.isascii():
        try:
            source.encode("utf-8")
        except UnicodeEncodeError:  # a JSON escape such as \ud800 with no pair
            raise DLWError(f"{name}: cell {number}: source is not valid Unicode text (a lone surrogate)") from None
    metadata = raw.get("metadata")
    tags = metadata.get("tags") if isinstance(metadata, dict) else None
    tag_set = frozenset(t for t in tags if isinstance(t, str)) if isinstance(tags, list) else frozenset()
    return Cell(number=number, kind=kind, source=source, tags=tag_set)
