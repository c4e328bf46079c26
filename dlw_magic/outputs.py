"""How a notebook shows things, without a kernel: mime bundles, figures, progress bars.

The executed notebook (dlw_magic.executed) records outputs in Jupyter's form; this module makes that
form from Python objects as IPython's display formatter would (``_repr_html_``, ``_repr_png_``,
``_repr_mimebundle_`` ..., matplotlib figures as PNG) without importing IPython, and rewinds ``\\r``
progress lines as a terminal does. Only the standard library is imported.
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Callable

TYPE_CHECKING = False  # no typing import in a rank (see dlw_magic.executed)
if TYPE_CHECKING:
    from typing import Any

_REPR_METHODS = [  # (mime type, method), in IPython's order of preference
    ("text/html", "_repr_html_"), ("text/markdown", "_repr_markdown_"), ("image/svg+xml", "_repr_svg_"),
    ("image/png", "_repr_png_"), ("image/jpeg", "_repr_jpeg_"), ("text/latex", "_repr_latex_"),
    ("application/json", "_repr_json_"), ("application/javascript", "_repr_javascript_"),
]
_BINARY = ("image/png", "image/jpeg")


def overwrite_carriage_returns(text: str) -> str:
    """What a terminal (and Jupyter) shows for ``\\r`` progress bars: each ``\\r`` rewinds its line."""
    text = text.replace("\r\n", "\n")
    out = []
    for line in text.split("\n"):
        if "\r" in line:
            shown = ""
            for part in line.split("\r"):
                shown = part + shown[len(part):]
            line = shown + ("\r" if line.endswith("\r") else "")
        out.append(line)
    return "\n".join(out)


def png_of_figure(fig: Any) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    fig.stale = False  # drawn as shown: a later cell shows it again only if it changes
    return buf.getvalue()


def mimebundle(obj: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(data, metadata) of ``obj`` as Jupyter's display formatter makes them, without IPython."""
    data: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    cls = type(obj)
    if cls.__name__ == "Figure" and cls.__module__ == "matplotlib.figure":
        data["image/png"] = png_of_figure(obj)
    elif isinstance(obj, type):
        pass  # a class: its _repr_*_ are unbound
    else:
        bundle_method = getattr(cls, "_repr_mimebundle_", None)
        if callable(bundle_method):
            bundle = bundle_method(obj)
            if isinstance(bundle, tuple):
                bundle, metadata = bundle[0], dict(bundle[1] or {})
            data.update(bundle or {})
        for mime, name in _REPR_METHODS:
            method = getattr(cls, name, None)
            if mime in data or not callable(method):
                continue
            try:
                value = method(obj)
            except Exception:  # as IPython does: a broken rich repr leaves the others
                continue
            if isinstance(value, tuple):
                value, metadata[mime] = value
            if value is not None:
                data[mime] = value
    data.setdefault("text/plain", repr(obj))
    return data, metadata


def jsonable(data: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for mime, value in data.items():
        if isinstance(value, bytes):
            value = base64.b64encode(value).decode() if mime in _BINARY else value.decode("utf-8", "replace")
        elif mime in _BINARY and isinstance(value, str):
            value = value.replace("\n", "")  # already base64
        out[mime] = value
    return out


class ShowFigures:
    """An import hook for ``matplotlib.pyplot`` only: its ``show()`` then also puts the figures drawn so far
    into the notebook, where the cell shows them (with Agg, show() itself does nothing)."""

    def __init__(self, before_show: Callable[[], None]):
        self.before_show = before_show

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "matplotlib.pyplot":
            return None
        sys.meta_path.remove(self)  # once is enough; the rest of the import is the ordinary one
        import importlib.util

        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            run_module = spec.loader.exec_module
            before_show = self.before_show

            def exec_module(module: Any) -> None:
                run_module(module)
                show = module.show

                def show_in_notebook(*args: Any, **kwargs: Any) -> Any:
                    before_show()
                    return show(*args, **kwargs)

                show_in_notebook.__doc__, show_in_notebook.__wrapped__ = show.__doc__, show  # type: ignore[attr-defined]
                module.show = show_in_notebook

            spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec
