"""The admin YAML's ``auth:`` section: who may sign in to the hub, and where their groups come from.

``kind`` names the identity provider: ``entra`` (Azure AD / Entra ID), ``google``, ``github``,
``generic-oidc`` (Keycloak, a university's OIDC, dex ...) or ``native`` (the local hub's password,
``dlw hub`` only). ``dlw_magic.hub.auth`` turns it into OAuthenticator settings for the z2jh values and
for ``dlw hub``. The client secret is only ever named (a Kubernetes Secret and key); the hub reads the
value from its environment (``OAUTH_CLIENT_SECRET``), which the z2jh values fill from that Secret.

Groups from the provider become JupyterHub groups at each sign-in (``manage_groups``), so the group rules
in ``profiles``, ``quotas`` and ``budgets`` apply as written. Rules that could let nobody in, or everyone
in although groups are restricted, are refused here, so ``dlw admin check`` reports them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .base import WsModel, label

AuthKind = Literal["native", "entra", "google", "github", "generic-oidc"]

# The claim (a key of the user info) that lists a user's groups, when the admin names none.
DEFAULT_GROUPS_CLAIM = {"entra": "groups", "generic-oidc": "groups"}
DEFAULT_USERNAME_CLAIM = {"entra": "preferred_username", "generic-oidc": "preferred_username"}


class SecretRef(WsModel):
    """A key of a Kubernetes Secret in the hub's namespace: the value never appears in the admin YAML."""

    secret: str = Field(description="Secret name, in the hub's namespace (namespaces.hub).")
    key: str = Field("client-secret", description="Key in the Secret that holds the value.")

    @field_validator("secret")
    @classmethod
    def _name(cls, v: str) -> str:
        return label(v, "Secret name")

    @field_validator("key")
    @classmethod
    def _key(cls, v: str) -> str:
        if not v or len(v) > 253 or not all(ch.isalnum() or ch in "-._" for ch in v):
            raise ValueError(f"{v!r} is not a Secret key (letters, digits, '-', '_', '.')")
        return v


class Auth(WsModel):
    kind: AuthKind = Field("native", description="Identity provider; native: the local hub's password.")
    client_id: str | None = Field(None, description="OAuth client (application) id registered with the provider.")
    client_secret: SecretRef | None = Field(
        None, description="The client secret, by reference: {secret: NAME, key: KEY}; never the value.")
    callback_url: str | None = Field(
        None, description="https://HUB/hub/oauth_callback, as registered with the provider (dlw hub: its own).")
    tenant_id: str | None = Field(None, description="entra: the directory (tenant) id.")
    issuer: str | None = Field(None, description="generic-oidc: the issuer URL (its discovery document names "
                               "the endpoints).")
    hosted_domains: list[str] = Field(default_factory=list, description="google: Workspace domains allowed.")
    allowed_groups: list[str] = Field(
        default_factory=list, description="Groups whose members may sign in (github: ORG or ORG:TEAM).")
    allowed_users: list[str] = Field(default_factory=list, description="Users who may sign in whatever their groups.")
    admin_groups: list[str] = Field(default_factory=list, description="Groups whose members are hub admins.")
    allow_all: bool = Field(False, description="Anyone the provider authenticates may sign in.")
    groups_claim: str | None = Field(
        None, description="Claim in the user info listing the user's groups (entra, generic-oidc: 'groups'; "
        "dots for nested keys).")
    username_claim: str | None = Field(
        None, description="Claim used as the JupyterHub user name (entra, generic-oidc: preferred_username).")
    scopes: list[str] = Field(default_factory=list, description="Extra OAuth scopes to request.")
    login_service: str | None = Field(None, description="Text on the login button: 'Sign in with ...'.")

    @model_validator(mode="before")
    @classmethod
    def _secret_is_a_reference(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("clientSecret", data.get("client_secret")), str):
            raise ValueError("clientSecret: give {secret: NAME, key: KEY} naming a Kubernetes Secret, never the "
                             "secret itself")
        return data

    @field_validator("callback_url", "issuer")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise ValueError(f"{v!r}: expected an https:// URL (http only for 127.0.0.1 or localhost)")
        return v

    @property
    def oauth(self) -> bool:
        return self.kind != "native"

    @property
    def groups_key(self) -> str | None:
        """The user-info claim listing groups (None for github, whose groups are its teams, and google)."""
        return self.groups_claim or DEFAULT_GROUPS_CLAIM.get(self.kind)

    @model_validator(mode="after")
    def _consistent(self) -> Auth:
        if not self.oauth:
            for field in ("client_id", "client_secret", "tenant_id", "issuer", "allowed_groups", "allowed_users",
                          "admin_groups", "allow_all", "groups_claim", "hosted_domains"):
                if getattr(self, field):
                    raise ValueError(f"{_camel(field)} is for a sign-in provider, but kind is native (the local "
                                     "hub's password, users from `dlw hub --user`)")
            return self
        if not self.client_id:
            raise ValueError(f"kind {self.kind} needs clientId (the application registered with the provider)")
        if self.client_secret is None:
            raise ValueError(f"kind {self.kind} needs clientSecret: {{secret: NAME, key: KEY}}")
        if self.kind == "entra" and not self.tenant_id:
            raise ValueError("kind entra needs tenantId (the directory id)")
        if self.kind == "generic-oidc" and not self.issuer:
            raise ValueError("kind generic-oidc needs issuer (the provider's URL)")
        if self.kind != "google" and self.hosted_domains:
            raise ValueError("hostedDomains is for kind google")
        if self.kind == "google" and (self.allowed_groups or self.admin_groups):
            raise ValueError("kind google: group rules need a Workspace admin service account, which DLW does not "
                             "set up; use hostedDomains and allowedUsers, or generic-oidc")
        if self.allow_all and (self.allowed_groups or self.allowed_users):
            raise ValueError("allowAll: true lets everyone in, although allowedGroups/allowedUsers restrict who may "
                             "sign in; remove one or the other")
        # hostedDomains (google) only narrows: someone must still be allowed.
        if not (self.allow_all or self.allowed_groups or self.allowed_users or self.admin_groups):
            raise ValueError("nobody could sign in: give allowedGroups, allowedUsers or allowAll: true")
        return self


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)
