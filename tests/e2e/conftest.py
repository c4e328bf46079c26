"""A real JupyterLab (with the DLW server and lab extensions) and a real Chromium for the e2e tests.

The lab server runs from a temporary root holding a copy of ``examples/``, with its own DLW_HOME and
Jupyter dirs, and the lab extension as the README's commands install it (linked into the project's
virtualenv by ``scripts/env.sh``): what a user gets is what the browser sees. Screenshots go to
``tests/e2e/artifacts/`` (kept by CI).
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from labserver import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, ROOT, jupyter_lab, need_chromium, need_installed_extension


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    dlw_home: Path
    log: Path

    def lab_url(self, path: str = "") -> str:
        return f"{self.url}lab/tree/{path}?token={self.token}" if path else f"{self.url}lab?token={self.token}"

    def api(self, path: str, method: str = "GET", body: dict | None = None) -> dict:
        req = urllib.request.Request(
            f"{self.url}dlw/api/{path}", method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())


# Module scope: torn down with its test module, so later tests start with no server or browser.
@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    need_installed_extension()
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    shutil.copytree(ROOT / "examples", root / "examples")
    # No announcement toast over the panel; everything else as a user gets it.
    config = base / "config"
    (config / "labconfig").mkdir(parents=True)
    (config / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
    )
    token = "e2e-" + os.urandom(8).hex()
    env = {
        **os.environ,
        "DLW_HOME": str(base / "dlw-home"),
        "DLW_BACKEND": "local",
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_DATA_DIR": str(base / "data"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
    }
    env.pop("JUPYTERHUB_USER", None)
    log = base / "lab.log"
    try:
        with jupyter_lab(root, token, env, log) as url:
            yield Lab(url=url, token=token, root=root, dlw_home=base / "dlw-home", log=log)
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(log, ARTIFACTS / "jupyterlab.log")


# Module scope matters: sync Playwright keeps an event loop running in the main thread while it lives,
# and asyncio.run() in any later test would fail.
@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.errors = errors  # type: ignore[attr-defined]
    yield pg
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}-failure.png"))
    context.close()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


# pytest-jupyter's autouse fixtures reach these tests once a module enables the plugin. Its loop fixture
# closes the current event loop at teardown, which here is the one Playwright's sync API keeps running;
# the browser tests start their servers as processes, so both fixtures have nothing to do here.
@pytest.fixture
def jp_asyncio_loop():
    yield None


@pytest.fixture
def jp_server_cleanup():
    yield
