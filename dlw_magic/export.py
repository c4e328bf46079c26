"""A job's results in forms to keep or pass on: the executed notebook as HTML, the output folder as one zip.

``core.executed_html`` and ``core.output_zip`` call these for the faces (``dlw status``/``dlw download``,
the lab's HTML link and Download button). The HTML is made by nbconvert beside the executed notebook
(``executed.html``) the first time it is asked for once the job has ended, and again only when the
notebook is newer; a running job's HTML is made on request and replaced as the notebook grows.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .errors import DLWError

HTML_SUFFIX = ".html"


def notebook_html(notebook: Path) -> Path:
    """``executed.html`` beside ``notebook`` (nbconvert's lab template), made when missing or older."""
    target = notebook.with_suffix(HTML_SUFFIX)
    try:
        if target.is_file() and target.stat().st_mtime >= notebook.stat().st_mtime:
            return target
    except OSError as err:
        raise DLWError(f"{notebook}: cannot read it ({err.strerror})") from None
    try:
        import nbformat
        from nbconvert import HTMLExporter
    except ImportError:
        raise DLWError("the HTML export needs nbconvert: pip install 'dlw-magic[lab]'") from None
    try:
        node = nbformat.read(notebook, as_version=4)
    except (OSError, ValueError) as err:  # nbformat's read errors are ValueErrors (JSON, schema)
        raise DLWError(f"{notebook}: not a readable notebook ({err})") from None
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(node)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(body, encoding="utf-8")
    os.replace(tmp, target)  # a reader never sees half a file
    return target


def _files(folder: Path) -> Iterator[Path]:
    """Regular files under ``folder``, sorted; links are left out (they may point anywhere)."""
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink() and not name.endswith(".tmp"):
                yield path


def write_zip(folder: Path, out: BinaryIO, root: str) -> int:
    """Every regular file under ``folder`` into a zip written to ``out``, under ``root/``; returns the count."""
    if not folder.is_dir():
        raise DLWError(f"{folder}: no such output folder")
    count = 0
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for path in _files(folder):
            try:
                archive.write(path, f"{root}/{path.relative_to(folder).as_posix()}")
            except OSError:  # removed while zipping (a checkpoint rotated): the rest still comes
                continue
            count += 1
    return count
