"""Sign-in through a real OpenID Connect provider: ``dlw hub`` configured from the admin YAML's ``auth:``.

The provider is ``oidc-provider-mock`` from PyPI (authlib's OIDC server: discovery, signed ID tokens,
authorization code flow, userinfo) started as its own process with three users and their ``groups``
claim. The hub is the real ``dlw hub`` (JupyterHub + OAuthenticator's GenericOAuthenticator) reading a
workspace whose ``auth.allowedGroups`` are research and teaching, and whose research profile only that
group may start. Through Chromium:

* alice (research, hub-admins) signs in, her groups come from the token: the spawn form offers the
  research profile, and she may open the admin page;
* bob (teaching) signs in, sees the open profile only, and is not an admin;
* carol (visitors) is refused with a page that says why.

No test secret is ever written to the hub's log, config or data folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from labserver import ARTIFACTS, ROOT, free_port, wait_until_up
from playwright.sync_api import Browser, Page, expect

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(600)]

CLIENT_SECRET = "oidc-test-secret-7f3a9c"
USERS = [
    {"sub": "alice", "preferred_username": "alice", "groups": ["research", "hub-admins"]},
    {"sub": "bob", "preferred_username": "bob", "groups": ["teaching"]},
    {"sub": "carol", "preferred_username": "carol", "groups": ["visitors"]},
]
WORKSPACE = """\
apiVersion: dlw/v1
kind: Workspace
profiles:
  - name: cpu
    displayName: CPU notebook
    image: dlw/notebook:0.1.0
    default: true
  - name: cpu-research
    displayName: Research notebook
    image: dlw/notebook:0.1.0
    groups: [research]
auth:
  kind: generic-oidc
  issuer: {issuer}
  clientId: dlw-hub
  clientSecret: {{secret: dlw-oauth, key: client-secret}}
  allowedGroups: [research, teaching]
  adminGroups: [hub-admins]
"""


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("oidc_provider_mock")
    port = free_port()
    log = tmp_path_factory.mktemp("idp") / "idp.log"
    argv = [sys.executable, "-m", "oidc_provider_mock", "--port", str(port)]
    for user in USERS:
        argv += ["--user-claims", json.dumps(user)]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    issuer = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(proc, f"{issuer}/.well-known/openid-configuration", log, "OIDC provider", timeout=120)
        yield issuer
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def hub(provider: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    if not shutil.which("configurable-http-proxy") and not (ROOT / "hub_config" / "node_modules").is_dir():
        pytest.skip("configurable-http-proxy is missing: run `npm ci --prefix hub_config`")
    base = tmp_path_factory.mktemp("oidc-hub")
    ws = base / "workspace.yaml"
    ws.write_text(WORKSPACE.format(issuer=provider), encoding="utf-8")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "DLW_HOME": str(base / "dlw-home"), "DLW_BACKEND": "local", "OAUTH_CLIENT_SECRET": CLIENT_SECRET}
    for name in ("DLW_WORKSPACE_CONFIG", "JUPYTERHUB_USER", "DLW_HUB_PASSWORD"):
        env.pop(name, None)
    log = base / "hub.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dlw_magic.cli", "hub", "--config", str(ws), "--port", str(port),
             "--no-system-users"],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=base, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(proc, f"{url}/hub/api", log, "dlw hub", timeout=180)
        yield url, base
    finally:
        _stop(proc)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(log, ARTIFACTS / "hub-oidc.log")


def sign_in(browser: Browser, hub: str, sub: str) -> Page:
    """A fresh browser session that signs in as ``sub`` at the provider's authorization page."""
    page = browser.new_context().new_page()
    page.goto(f"{hub}/hub/login")
    login = page.locator("a[href*='oauth_login']")
    expect(login).to_contain_text("Sign in with your institution")  # auth.kind generic-oidc's button
    login.click()
    page.wait_for_url(re.compile(r".*/oauth2/authorize.*"), timeout=30_000)
    page.locator(f"button[name='sub'][value='{sub}']").click()
    return page


def test_groups_from_the_token_choose_profiles_and_admins(browser: Browser, hub: tuple[str, Path]):
    url, base = hub
    alice = sign_in(browser, url, "alice")
    alice.wait_for_url(re.compile(r".*/hub/spawn.*"), timeout=60_000)
    expect(alice.locator("input[value='cpu-research']")).to_be_visible()
    expect(alice.locator("input[value='cpu']")).to_be_visible()
    alice.screenshot(path=str(ARTIFACTS / "oidc-alice-spawn.png"))
    # hub-admins from the token: JupyterHub's admin page opens for her.
    response = alice.goto(f"{url}/hub/admin")
    assert response is not None and response.status == 200

    bob = sign_in(browser, url, "bob")
    bob.wait_for_url(re.compile(r".*/hub/spawn.*"), timeout=60_000)
    expect(bob.locator("input[value='cpu']")).to_be_visible()
    expect(bob.locator("input[value='cpu-research']")).to_have_count(0)
    response = bob.goto(f"{url}/hub/admin")
    assert response is not None and response.status == 403

    # The hub's own record of the groups, as its REST API reports them to the admin (her browser session).
    users = alice.request.get(f"{url}/hub/api/users").json()
    groups = {u["name"]: sorted(u["groups"]) for u in users}
    assert groups == {"alice": ["hub-admins", "research"], "bob": ["teaching"]}


def test_a_user_outside_the_allowed_groups_is_refused_with_a_readable_page(browser: Browser, hub: tuple[str, Path]):
    url, base = hub
    carol = sign_in(browser, url, "carol")
    message = carol.locator("p", has_text="open only to members of research, teaching")
    expect(message).to_be_visible(timeout=60_000)
    expect(message).to_contain_text("Ask the hub's admin to add you to one of these groups")
    expect(carol.get_by_role("heading", name=re.compile("403"))).to_be_visible()
    carol.screenshot(path=str(ARTIFACTS / "oidc-carol-refused.png"))
    assert "/hub/spawn" not in carol.url


def test_the_client_secret_is_written_nowhere(hub: tuple[str, Path]):
    _, base = hub
    leaks = [str(p) for p in base.rglob("*") if p.is_file() and CLIENT_SECRET.encode() in p.read_bytes()]
    assert (base / "hub.log").is_file() and (base / "dlw-home" / "hub" / "jupyterhub_config.py").is_file()
    assert leaks == []
