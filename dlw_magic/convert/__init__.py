"""TEMPORARY STUB (the convert helper replaces this whole package)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ConvertedNotebook:
    script: str
    parameters: dict[str, Any] = field(default_factory=dict)

def convert_notebook(path: Path, parameters: dict[str, Any]) -> ConvertedNotebook:
    nb = json.loads(Path(path).read_text())
    code = [("".join(c["source"]) if isinstance(c["source"], list) else c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    head = "".join(f"{k} = {v!r}\n" for k, v in parameters.items())
    return ConvertedNotebook("\n\n".join(code) + "\n" + head, dict(parameters))
