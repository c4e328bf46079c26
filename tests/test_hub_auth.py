"""The admin YAML's ``auth:``: checked by ``dlw admin check``, rendered into the z2jh values, applied to the
hub's config, and read by the real OAuthenticator classes (groups, admins, who is allowed)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from traitlets.config import Config

from dlw_magic.hub.auth import apply_auth
from dlw_magic.hub.deploy import helm_values
from dlw_magic.hub.kube import configure
from dlw_magic.workspace import parse_workspace

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "hub_config" / "workspace.yaml"
SECRET = "auth-test-secret-5b1e0d"
ENTRA = {"kind": "entra", "clientId": "0000-app", "tenantId": "1111-tenant",
         "clientSecret": {"secret": "dlw-oauth", "key": "client-secret"},
         "callbackUrl": "https://hub.example.org/hub/oauth_callback",
         "allowedGroups": ["research", "teaching"], "adminGroups": ["hub-admins"]}
GITHUB = {"kind": "github", "clientId": "Iv1.abc", "clientSecret": {"secret": "dlw-github"},
          "allowedGroups": ["mylab", "mylab:gpu-users"], "adminGroups": ["mylab:admins"]}


def workspace_dict(auth: dict[str, Any] | None) -> dict[str, Any]:
    data = yaml.safe_load(DEFAULT.read_text())
    if auth is not None:
        data["auth"] = auth
    return data


def write_ws(tmp_path: Path, auth: dict[str, Any]) -> Path:
    path = tmp_path / "workspace.yaml"
    path.write_text(yaml.safe_dump(workspace_dict(auth)))
    return path


def dlw(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dlw_magic.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, cwd=ROOT, timeout=120)


@pytest.mark.parametrize(("auth", "message"), [
    ({**ENTRA, "clientSecret": SECRET}, "auth: clientSecret: give {secret: NAME, key: KEY}"),
    ({**ENTRA, "allowedGroups": [], "adminGroups": []}, "auth: nobody could sign in"),
    ({**ENTRA, "allowAll": True}, "auth: allowAll: true lets everyone in, although allowedGroups"),
    ({k: v for k, v in ENTRA.items() if k != "tenantId"}, "auth: kind entra needs tenantId"),
    ({k: v for k, v in ENTRA.items() if k != "clientSecret"}, "auth: kind entra needs clientSecret"),
    ({**ENTRA, "kind": "google", "tenantId": None}, "auth: kind google: group rules need"),
    ({"kind": "native", "allowedGroups": ["research"]}, "auth: allowedGroups is for a sign-in provider"),
    # The shipped workspace's gpu-research profile is for group research, which Google never sets.
    ({"kind": "google", "clientId": "x.apps", "clientSecret": {"secret": "g"}, "allowAll": True,
      "hostedDomains": ["uni.edu"]}, "profiles[2].groups names groups, but auth.kind google gives users no groups"),
    ({**ENTRA, "callbackUrl": "http://hub.example.org/hub/oauth_callback"}, "auth.callbackUrl: "),
])
def test_admin_check_refuses_configs_that_let_nobody_or_everyone_in(tmp_path: Path, auth, message) -> None:
    out = dlw("admin", "check", str(write_ws(tmp_path, auth)))
    assert out.returncode == 1
    assert message in out.stderr
    assert SECRET not in out.stderr + out.stdout  # a literal secret is refused without being echoed


def test_admin_check_accepts_entra_with_groups(tmp_path: Path) -> None:
    out = dlw("admin", "check", str(write_ws(tmp_path, ENTRA)))
    assert out.returncode == 0, out.stderr


def test_helm_values_carry_the_authenticator_and_only_a_reference_to_the_secret(tmp_path: Path) -> None:
    path = write_ws(tmp_path, ENTRA)
    # Even with the secret in the admin's environment, the rendered chart never holds it.
    out = dlw("admin", "render", str(path), "--all", "--out", str(tmp_path / "chart"),
              env={"OAUTH_CLIENT_SECRET": SECRET})
    assert out.returncode == 0, out.stderr
    written = [p for p in (tmp_path / "chart").rglob("*") if p.is_file()]
    assert written and not [p for p in written if SECRET in p.read_text()]
    values = yaml.safe_load((tmp_path / "chart" / "jupyterhub-values.yaml").read_text())
    hub = values["hub"]
    assert hub["config"]["JupyterHub"]["authenticator_class"] == "oauthenticator.azuread.AzureAdOAuthenticator"
    entra = hub["config"]["AzureAdOAuthenticator"]
    assert entra["tenant_id"] == "1111-tenant" and entra["client_id"] == "0000-app"
    assert entra["manage_groups"] is True and entra["auth_state_groups_key"] == "user.groups"
    assert entra["allowed_groups"] == ["research", "teaching"] and entra["admin_groups"] == ["hub-admins"]
    assert entra["oauth_callback_url"] == "https://hub.example.org/hub/oauth_callback"
    assert entra["authorize_url"] == "https://login.microsoftonline.com/1111-tenant/oauth2/v2.0/authorize"
    assert entra["username_claim"] == "preferred_username"  # a claim of v2.0 ID tokens
    assert "client_secret" not in entra
    assert hub["extraEnv"]["OAUTH_CLIENT_SECRET"] == {
        "valueFrom": {"secretKeyRef": {"name": "dlw-oauth", "key": "client-secret"}}}


def test_native_auth_leaves_the_authenticator_to_the_admin() -> None:
    ws = parse_workspace(workspace_dict(None))
    hub = helm_values(ws, "")["hub"]
    assert "JupyterHub" not in hub["config"] and "OAUTH_CLIENT_SECRET" not in hub["extraEnv"]


def _authenticator(config: Config) -> Any:
    from jupyterhub.app import JupyterHub

    cls = JupyterHub(config=config).authenticator_class  # the class the hub would load, by its entry point
    return cls(config=config)


def _auth_model(authenticator: Any, auth_state: dict[str, Any]) -> dict[str, Any]:
    model = {"name": "x", "admin": None, "auth_state": auth_state}
    return asyncio.run(authenticator._apply_managed_groups(model))


def test_entra_groups_claim_becomes_jupyterhub_groups_and_admin_role() -> None:
    c = Config()
    configure(c, None)  # the kube hub's own configure() from the shipped workspace: native, nothing set
    assert "authenticator_class" not in c.JupyterHub
    ws = parse_workspace(workspace_dict(ENTRA))
    apply_auth(c, ws)
    authenticator = _authenticator(c)
    assert type(authenticator).__name__ == "AzureAdOAuthenticator"
    admin = _auth_model(authenticator, {"user": {"groups": ["hub-admins", "research"]}})
    assert admin["groups"] == ["hub-admins", "research"] and admin["admin"] is True
    member = _auth_model(authenticator, {"user": {"groups": ["teaching"]}})
    assert member["groups"] == ["teaching"] and member["admin"] is False
    outsider = _auth_model(authenticator, {"user": {"groups": ["visitors"]}})
    allowed = [asyncio.run(authenticator.check_allowed("x", m)) for m in (admin, member, outsider)]
    assert allowed == [True, True, False]
    assert "research, teaching" in authenticator.custom_403_message


def test_github_teams_become_groups_and_orgs_allow_sign_in() -> None:
    c = Config()
    apply_auth(c, parse_workspace(workspace_dict(GITHUB)))
    authenticator = _authenticator(c)
    assert authenticator.allowed_organizations == {"mylab", "mylab:gpu-users"}
    assert {"read:org", "read:user"} <= set(authenticator.scope)
    assert authenticator.populate_teams_in_auth_state is True
    teams = [{"organization": {"login": "mylab"}, "slug": "admins"},
             {"organization": {"login": "mylab"}, "slug": "gpu-users"}]
    model = _auth_model(authenticator, {"teams": teams, "github_user": {}})
    assert model["groups"] == ["mylab:admins", "mylab:gpu-users"] and model["admin"] is True


def test_dlw_hub_needs_the_secret_in_its_environment(tmp_path: Path) -> None:
    auth = {"kind": "generic-oidc", "issuer": "http://127.0.0.1:1", "clientId": "hub",
            "clientSecret": {"secret": "dlw-oauth"}, "allowedGroups": ["research"]}
    path = write_ws(tmp_path, auth)
    env = {k: v for k, v in os.environ.items() if k != "OAUTH_CLIENT_SECRET"}
    out = subprocess.run([sys.executable, "-m", "dlw_magic.cli", "hub", "--config", str(path), "--print-config",
                          "--data-dir", str(tmp_path / "hub")], capture_output=True, text=True,
                         env={**env, "PYTHONPATH": str(ROOT)}, cwd=ROOT, timeout=120)
    assert out.returncode != 0
    assert "auth.clientSecret: set OAUTH_CLIENT_SECRET to the value of Secret dlw-oauth" in out.stderr
    out = dlw("hub", "--config", str(path), "--user", "alice", "--print-config", env={"OAUTH_CLIENT_SECRET": SECRET})
    assert out.returncode != 0 and "--user and --group are for the hub's own password" in out.stderr
