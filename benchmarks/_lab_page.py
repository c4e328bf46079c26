"""The lab extension's compiled modules (labextension/lib) in a bare Chromium page, for the panel benchmarks:
no JupyterLab around them, so what is timed is the widgets' own rendering."""

from __future__ import annotations

import mimetypes
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "labextension" / "lib"
STYLE = ROOT / "labextension" / "style" / "base.css"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


@contextmanager
def lab_page(page_html: str, bench_js: str, ready: str, needs: tuple[str, ...]) -> Iterator[Any]:
    """A Playwright page at http://bench.local/ serving ``page_html``, ``bench_js`` (a module) and labextension/lib;
    yields it once the expression ``ready`` is true. ``needs``: compiled modules that must exist."""
    if not all((LIB / n).is_file() for n in needs):
        sys.exit(f"{LIB} missing: run `(cd labextension && jlpm build:lib)` first")
    if not Path(CHROMIUM).exists():
        sys.exit("needs Debian's chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    def serve(route: Any) -> Any:
        path = route.request.url.split("://bench.local", 1)[1].split("?")[0]
        if path == "/":
            return route.fulfill(body=page_html, content_type="text/html")
        if path == "/bench.js":
            return route.fulfill(body=bench_js, content_type="text/javascript")
        if path == "/style.css":
            return route.fulfill(path=str(STYLE), content_type="text/css")
        file = LIB / path.removeprefix("/lib/")
        if path.startswith("/lib/") and file.is_file():
            return route.fulfill(path=str(file), content_type=mimetypes.guess_type(file.name)[0] or "text/javascript")
        return route.fulfill(status=404, body="")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.route("http://bench.local/**", serve)
            page.goto("http://bench.local/")
            page.add_script_tag(url="http://bench.local/bench.js", type="module")
            page.wait_for_function(ready)
            yield page
        finally:
            browser.close()
