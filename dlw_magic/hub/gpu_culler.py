"""Warn about, then stop, notebook servers whose GPUs sit idle: a JupyterHub service.

jupyterhub-idle-culler counts browser activity, not GPU use, so a notebook that holds GPUs and types
code all day keeps them from everyone else. This service asks each ready server's ``/dlw/api/gpus`` for
the GPUs that server holds. When all of them stay under ``hub.gpuIdleThreshold`` % utilization, with no
DLW job of the user sharing them, for ``hub.gpuIdleTimeout``, the profile's ``gpuIdleAction`` applies:
``stop`` warns the user in JupyterLab ``hub.gpuIdleWarning`` before and then stops the server; ``warn``
only warns. A GPU that reports no utilization (MIG slices, some vGPUs) never counts as idle. Jobs are
never touched.

The "idle since" clock of each server lives in this process's memory only: when the service (or the
hub) restarts, every clock starts again, which can only delay a stop, never hasten one.

Servers are reached at their proxy targets (the hub's routing table, scope ``proxy``), so the service
works the same on ``dlw hub`` and in a cluster, whatever TLS the public proxy has.

    python -m dlw_magic.hub.gpu_culler --workspace /etc/dlw/workspace.yaml --every 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlparse

from tornado.httpclient import AsyncHTTPClient, HTTPRequest, HTTPResponse

from ..errors import DLWError
from ..workspace import Workspace, load_workspace

log = logging.getLogger("dlw.gpu_culler")

SERVICE_NAME = "dlw-gpu-idle"
SCOPES = ["list:users", "read:servers", "delete:servers", "access:servers", "proxy"]
PAGINATION = "application/jupyterhub-pagination+json"


@dataclass
class Policy:
    """What the admin YAML says: how long, how idle, and per profile whether to stop or only warn."""

    timeout: float
    threshold: int
    warning: float
    actions: dict[str, str]
    default_profile: str

    @classmethod
    def from_workspace(cls, ws: Workspace) -> Policy:
        if not ws.hub.gpu_idle_timeout:
            raise DLWError("hub.gpuIdleTimeout is not set: the GPU-idle culler is off")
        return cls(
            timeout=ws.hub.gpu_idle_timeout, threshold=ws.hub.gpu_idle_threshold, warning=ws.hub.gpu_idle_warning,
            actions={p.name: p.gpu_idle_action for p in ws.profiles}, default_profile=ws.default_profile.name,
        )

    def action(self, user_options: dict[str, Any] | None) -> str:
        """The server's profile's action; ``warn`` for a profile the admin YAML no longer has."""
        slug = (user_options or {}).get("profile") or self.default_profile
        return self.actions.get(slug, "warn")


@dataclass
class Hub:
    """The hub's REST API and the servers behind its proxy, with the service's token."""

    api_url: str
    token: str
    timeout: float = 20.0

    async def fetch(self, url: str, method: str = "GET", body: Any = None, accept: str = "") -> HTTPResponse:
        headers = {"Authorization": f"token {self.token}"}
        if accept:
            headers["Accept"] = accept
        if body is not None:
            headers["Content-Type"] = "application/json"
        request = HTTPRequest(
            url, method=method, headers=headers, body=None if body is None else json.dumps(body),
            request_timeout=self.timeout, allow_nonstandard_methods=True,
        )
        return await AsyncHTTPClient().fetch(request, raise_error=False)  # one client per event loop

    async def pages(self, path: str, **params: str) -> list[Any]:
        """Every item of a paginated hub API collection (lists, or dicts as the routing table is)."""
        items: list[Any] = []
        offset = 0
        while True:
            query = urlencode({**params, "offset": str(offset)})
            r = await self.fetch(f"{self.api_url.rstrip('/')}/{path}?{query}", accept=PAGINATION)
            if r.code != 200:
                raise RuntimeError(f"hub API {path}: HTTP {r.code} {r.body[:200]!r}")
            data = json.loads(r.body)
            page = data.get("items", data) if isinstance(data, dict) and "_pagination" in data else data
            items.extend(page.values() if isinstance(page, dict) else page)
            nxt = (data.get("_pagination") or {}).get("next") if isinstance(data, dict) else None
            if not nxt:
                return items
            offset = int(nxt["offset"])

    async def stop(self, user: str, server_name: str) -> HTTPResponse:
        path = f"users/{quote(user, safe='')}/server" + (f"s/{quote(server_name, safe='')}" if server_name else "")
        return await self.fetch(f"{self.api_url.rstrip('/')}/{path}", method="DELETE")


@dataclass
class Server:
    user: str
    name: str
    started: str
    url: str  # the server's own address: proxy target + its path
    user_options: dict[str, Any]

    @property
    def key(self) -> str:
        return f"{self.user}/{self.name}@{self.started}"  # a restarted server is a new one


async def ready_servers(hub: Hub) -> list[Server]:
    targets: dict[tuple[str, str], str] = {}
    for route in await hub.pages("proxy"):
        data = route.get("data") or {}
        if "user" in data and route.get("target"):
            targets[(data["user"], data.get("server_name") or "")] = route["target"].rstrip("/")
    servers = []
    for user in await hub.pages("users", state="ready"):
        for name, model in (user.get("servers") or {}).items():
            target = targets.get((user["name"], name))
            if model.get("ready") and target:
                path = urlparse(model["url"]).path
                servers.append(Server(user["name"], name, model.get("started") or "", target + path,
                                      model.get("user_options") or {}))
    return servers


def _duration(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    hours, minutes = divmod(minutes, 60)
    return " ".join(part for part in (f"{hours} h" if hours else "", f"{minutes} min" if minutes else "") if part)


def warning_message(policy: Policy, action: str, gpus: int, idle_for: float, stop_at: float | None) -> str:
    what = f"The {gpus} GPUs of this server have" if gpus != 1 else "The GPU of this server has"
    idle = f"{what} been idle (under {policy.threshold}% use) for {_duration(idle_for)}"
    if action == "stop" and stop_at is not None:
        when = time.strftime("%H:%M UTC", time.gmtime(stop_at))
        return (f"{idle}: the hub stops this server at {when} unless they are used. "
                "Save your work; DLW jobs keep running.")
    return f"{idle}. Please stop the server (File > Hub Control Panel) to free them for others."


async def cull_once(
    hub: Hub, policy: Policy, idle_since: dict[str, float], now: float | None = None,
) -> dict[str, str]:
    """One pass over the ready servers. ``idle_since`` (server key -> unix time its GPUs were first seen
    idle) carries over between passes. Returns what happened per ``user/server``: busy, idle, warned,
    stopped, no-gpus, no-dlw (a server without DLW's extension), or an error."""
    now = time.time() if now is None else now
    outcome: dict[str, str] = {}
    servers = await ready_servers(hub)
    for key in set(idle_since) - {s.key for s in servers}:
        del idle_since[key]  # stopped or restarted servers
    for server in servers:
        label = f"{server.user}/{server.name}"
        try:
            outcome[label] = await _check(hub, policy, idle_since, server, now)
        except Exception as err:  # one unreachable server must not stop the pass
            idle_since.pop(server.key, None)  # never act on time nobody observed
            outcome[label] = f"error: {err}"
            log.warning("%s: %s", label, err)
    return outcome


async def _check(hub: Hub, policy: Policy, idle_since: dict[str, float], server: Server, now: float) -> str:
    r = await hub.fetch(server.url + "dlw/api/gpus")
    if r.code == 404:  # a server without DLW's extension: nothing to measure
        idle_since.pop(server.key, None)
        return "no-dlw"
    if r.code != 200:
        raise RuntimeError(f"GET dlw/api/gpus: HTTP {r.code}")
    info = json.loads(r.body).get("server") or {}
    gpus = info.get("gpus") or []
    warned = info.get("idle")
    busy = bool(info.get("jobs")) or any(
        g.get("utilization_pct") is None or g["utilization_pct"] >= policy.threshold for g in gpus
    )
    if not gpus or busy:
        idle_since.pop(server.key, None)
        if warned:
            await hub.fetch(server.url + "dlw/api/gpus/idle", method="DELETE")
        return "busy" if gpus else "no-gpus"
    since = idle_since.setdefault(server.key, now)
    idle_for = now - since
    action = policy.action(server.user_options)
    if action == "stop" and idle_for >= policy.timeout and warned:  # never a stop the Lab did not announce
        r = await hub.stop(server.user, server.name)
        if r.code not in (202, 204):
            raise RuntimeError(f"stopping the server: HTTP {r.code} {r.body[:200]!r}")
        idle_since.pop(server.key, None)
        log.info("%s/%s: GPUs idle for %s, stopped", server.user, server.name, _duration(idle_for))
        return "stopped"
    warn_from = policy.timeout - policy.warning if action == "stop" else policy.timeout
    if idle_for < warn_from:
        return "idle"
    stop_at = max(since + policy.timeout, now) if action == "stop" else None
    body = {"message": warning_message(policy, action, len(gpus), idle_for, stop_at),
            "idleSince": since, "stopAt": stop_at}
    if warned != body:
        r = await hub.fetch(server.url + "dlw/api/gpus/idle", method="POST", body=body)
        if r.code != 200:
            raise RuntimeError(f"POST dlw/api/gpus/idle: HTTP {r.code}")
    return "warned"


async def run(hub: Hub, policy: Policy, every: float) -> None:
    idle_since: dict[str, float] = {}
    while True:
        try:
            outcome = await cull_once(hub, policy, idle_since)
            log.debug("pass: %s", outcome)
        except Exception as err:  # the hub restarting, say: try again next time
            log.warning("pass failed: %s", err)
        await asyncio.sleep(every)


def check_every(timeout: int, warning: int) -> int:
    """Seconds between passes: a minute, or a tenth of the timeout or half the warning time when shorter
    (so the Lab shows the warning at least one pass before the stop)."""
    return max(1, min(60, timeout // 10, warning // 2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dlw_magic.hub.gpu_culler", description=__doc__.split("\n")[0],
                                     allow_abbrev=False)
    parser.add_argument("--workspace", required=True, help="the admin YAML")
    parser.add_argument("--every", type=float, default=None, help="seconds between passes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s %(asctime)s %(name)s] %(message)s")
    api_url, token = os.environ.get("JUPYTERHUB_API_URL"), os.environ.get("JUPYTERHUB_API_TOKEN")
    try:
        if not api_url or not token:
            raise DLWError("JUPYTERHUB_API_URL and JUPYTERHUB_API_TOKEN are not set (run it as a hub service)")
        policy = Policy.from_workspace(load_workspace(args.workspace))
    except DLWError as err:
        print(f"dlw gpu culler: error: {err}", file=sys.stderr)
        return 2
    every = args.every or check_every(int(policy.timeout), int(policy.warning))
    log.info("GPU-idle culler: %s under %d%% for %s, every %ss", ", ".join(
        f"{p}={a}" for p, a in policy.actions.items()), policy.threshold, _duration(policy.timeout), every)
    asyncio.run(run(Hub(api_url, token), policy, every))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
