"""The admin YAML's ``auth:`` as OAuthenticator settings, for the z2jh values and for ``dlw hub``.

``authenticator_settings(ws)`` is the one translation: the authenticator class and its traits (plain
values, so they can go into ``hub.config`` of the Helm values). ``apply_auth(c, ws)`` sets them on a
JupyterHub config object, plus what cannot be written as YAML (GitHub teams as groups) and, for
``generic-oidc``, the endpoints read from the issuer's discovery document at hub start.

The client secret reaches the hub as the environment variable ``OAUTH_CLIENT_SECRET`` (OAuthenticator
reads it itself): the Helm values fill it from the named Secret (``secret_env``); ``dlw hub`` takes it
from the environment of whoever starts it. It is never written into a config or values file.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from ..errors import DLWError
from ..workspace import Workspace
from ..workspace.auth import DEFAULT_USERNAME_CLAIM, Auth

SECRET_ENV = "OAUTH_CLIENT_SECRET"
CLASSES = {
    "entra": "oauthenticator.azuread.AzureAdOAuthenticator",
    "google": "oauthenticator.google.GoogleOAuthenticator",
    "github": "oauthenticator.github.GitHubOAuthenticator",
    "generic-oidc": "oauthenticator.generic.GenericOAuthenticator",
}
LOGIN_SERVICE = {"entra": "Microsoft Entra ID", "google": "Google", "github": "GitHub",
                 "generic-oidc": "your institution"}


def refusal_message(auth: Auth) -> str:
    """What a signed-in user outside the allowed groups reads (OAuthenticator's 403 page)."""
    rules = []
    if auth.allowed_groups:
        rules.append("members of " + ", ".join(auth.allowed_groups))
    if auth.allowed_users:
        rules.append("the users the admin listed")
    who = " and ".join(rules) or "the users the admin allowed"
    return (f"You signed in, but this hub is open only to {who}, and your account is not among them. "
            "Ask the hub's admin to add you to one of these groups, then sign in again.")


def authenticator_class(ws: Workspace) -> str:
    return CLASSES[ws.auth.kind]


def authenticator_settings(ws: Workspace, callback_url: str | None = None) -> tuple[str, dict[str, Any]]:
    """(class short name, traits) for an OAuth kind; traits hold no secret, only what YAML can carry."""
    auth = ws.auth
    if not auth.oauth:
        raise DLWError("auth.kind is native: the local hub's password, not an identity provider")
    cls = authenticator_class(ws).rsplit(".", 1)[1]
    traits: dict[str, Any] = {
        "client_id": auth.client_id,
        "login_service": auth.login_service or LOGIN_SERVICE[auth.kind],
        "custom_403_message": refusal_message(auth),
    }
    callback = callback_url or auth.callback_url
    if callback:
        traits["oauth_callback_url"] = callback
    if auth.allow_all:
        traits["allow_all"] = True
    if auth.allowed_users:
        traits["allowed_users"] = sorted(auth.allowed_users)
    username_claim = auth.username_claim or DEFAULT_USERNAME_CLAIM.get(auth.kind)
    if username_claim:
        traits["username_claim"] = username_claim
    scopes = list(auth.scopes)
    if auth.kind == "github":
        # Organisations and teams: ORG or ORG:TEAM; the user's teams become their groups (apply_auth).
        if auth.allowed_groups:
            traits["allowed_organizations"] = sorted(auth.allowed_groups)
        traits["populate_teams_in_auth_state"] = True
        scopes = _plus(scopes, ["read:org", "read:user"])
        traits["manage_groups"] = True
        if auth.admin_groups:
            traits["admin_groups"] = sorted(auth.admin_groups)
    elif auth.kind == "google":
        if auth.hosted_domains:
            traits["hosted_domain"] = list(auth.hosted_domains)
    else:
        traits["manage_groups"] = True
        # The user info sits in auth_state under the class's user_auth_state_key.
        traits["auth_state_groups_key"] = f"{'user' if auth.kind == 'entra' else 'oauth_user'}.{auth.groups_key}"
        if auth.allowed_groups:
            traits["allowed_groups"] = sorted(auth.allowed_groups)
        if auth.admin_groups:
            traits["admin_groups"] = sorted(auth.admin_groups)
        if auth.kind == "entra":
            traits["tenant_id"] = auth.tenant_id
            # The v2.0 endpoints: their ID token has preferred_username (v1's, OAuthenticator's default, has not).
            base = f"https://login.microsoftonline.com/{auth.tenant_id}/oauth2/v2.0"
            traits.update(authorize_url=f"{base}/authorize", token_url=f"{base}/token")
            scopes = _plus(scopes, ["openid", "profile", "email"])
        else:
            scopes = _plus(scopes, ["openid", "profile", "email"])  # a provider's "groups" scope: auth.scopes
    if scopes:
        traits["scope"] = scopes
    return cls, traits


def _plus(have: list[str], more: list[str]) -> list[str]:
    return have + [s for s in more if s not in have]


def secret_env(ws: Workspace) -> dict[str, Any]:
    """``hub.extraEnv`` entries that bring the client secret from its Secret (z2jh's dict form)."""
    ref = ws.auth.client_secret
    if ref is None:
        return {}
    return {SECRET_ENV: {"valueFrom": {"secretKeyRef": {"name": ref.secret, "key": ref.key}}}}


def oidc_endpoints(issuer: str, timeout: float = 10.0) -> dict[str, str]:
    """authorize/token/userinfo URLs from the issuer's ``/.well-known/openid-configuration``."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - an https (or loopback) URL
            doc = json.loads(resp.read())
    except (OSError, ValueError) as err:
        raise DLWError(f"auth.issuer: cannot read {url}: {err}") from err
    try:
        return {"authorize_url": doc["authorization_endpoint"], "token_url": doc["token_endpoint"],
                "userdata_url": doc["userinfo_endpoint"]}
    except KeyError as err:
        raise DLWError(f"auth.issuer: {url} has no {err.args[0]}") from err


def github_team_groups(auth_state: dict[str, Any]) -> list[str]:
    """A GitHub user's teams as ``ORG:TEAM`` group names (the form allowedGroups and profiles use)."""
    return [f"{t['organization']['login']}:{t['slug']}" for t in auth_state.get("teams") or []]


def apply_auth(c: Any, ws: Workspace, callback_url: str | None = None) -> None:
    """Set the authenticator on a JupyterHub config object ``c`` (nothing for kind native)."""
    if not ws.auth.oauth:
        return
    cls, traits = authenticator_settings(ws, callback_url)
    if ws.auth.kind == "generic-oidc":
        traits = {**oidc_endpoints(ws.auth.issuer or ""), **traits}
    if ws.auth.kind == "github":
        traits["auth_state_groups_key"] = github_team_groups
    c.JupyterHub.authenticator_class = authenticator_class(ws)
    section = getattr(c, cls)
    for name, value in traits.items():
        setattr(section, name, set(value) if name in _SET_TRAITS else value)


_SET_TRAITS = {"allowed_users", "allowed_groups", "admin_groups", "allowed_organizations"}
