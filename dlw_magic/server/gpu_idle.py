"""``/dlw/api/gpus``: the machine's GPUs for the status bar (with the user's GPU-hours against their
budget, ``usage.own_usage``), plus what the hub's GPU-idle culler needs.

The culler (``dlw_magic.hub.gpu_culler``, a JupyterHub service) reads ``server`` from ``GET gpus``: the
GPUs this notebook server holds and the user's DLW jobs that share them. When the GPUs have been idle
long enough it posts a warning to ``gpus/idle``, which ``GET gpus`` then returns for the Lab to show, and
deletes it when the GPUs are busy again. The warning lives in this server process only.
"""

from __future__ import annotations

import math
import time
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from .. import core, settings
from ..backends import Backend
from ..gpus import local_gpus, visible_gpus
from ..usage import own_usage
from .handlers import BadRequest, DLWHandler

WARNING_SETTING = "dlw_gpu_idle_warning"


def held_gpus() -> list[dict[str, Any]]:
    """The GPUs this server was given: NVML's, narrowed by CUDA_VISIBLE_DEVICES (the local hub sets it; a
    Kubernetes pod sees only its own), and none when the hub gave it none (``DLW_GPUS=0``: CUDA images
    may expose every GPU of the node to a pod that asked for none)."""
    if (settings.current().notebook_gpus or "").strip() == "0":
        return []
    return [g.to_dict() for g in visible_gpus(local_gpus()[0])]


def sharing_jobs(backend: Backend) -> list[str]:
    """The user's unfinished GPU jobs that run on this server's GPUs: on the local backend a job takes its
    GPUs from the submitting process's CUDA_VISIBLE_DEVICES; on Kubernetes every job has its own."""
    if backend.name != "local":
        return []
    return [j.name for j in core.list_jobs(backend) if j.gpus and not j.state.finished]


class GpusHandler(DLWHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        backend = self.backend()
        gpus, reason = await self.call(core.gpus, backend)
        held = await self.call(held_gpus)
        jobs = await self.call(sharing_jobs, backend) if held else []
        server = {"gpus": held, "jobs": jobs, "idle": self.settings.get(WARNING_SETTING)}
        try:  # the GPUs are shown even when the budget cannot be worked out (a broken admin YAML, no pod list)
            usage = await self.call(own_usage, backend, core.current_user(), time.time())
        except Exception as err:  # noqa: BLE001 - reported in the log, the rest of the reply stands
            self.log.warning("dlw: GPU-hours for the status bar: %s", err)
            usage = None
        self.reply({"gpus": [g.to_dict() for g in gpus], "reason": reason, "server": server, "usage": usage})


def _seconds(body: dict[str, Any], key: str, required: bool) -> float | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadRequest(f"{key}: expected unix seconds, got {value!r}")
    return float(value)


class GpuIdleHandler(DLWHandler):
    """The GPU-idle culler's warning for this server: POST sets it, DELETE clears it."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.body()
        unknown = sorted(set(body) - {"message", "idleSince", "stopAt"})
        if unknown:
            raise BadRequest(f"{unknown[0]}: unknown field (expected message, idleSince, stopAt)")
        message = body.get("message")
        if not isinstance(message, str) or not message.strip() or len(message) > 1000:
            raise BadRequest("message: expected text of at most 1000 characters")
        warning = {
            "message": message.strip(),
            "idleSince": _seconds(body, "idleSince", required=True),
            "stopAt": _seconds(body, "stopAt", required=False),
        }
        self.settings[WARNING_SETTING] = warning
        self.reply(warning)

    @web.authenticated
    @authorized
    async def delete(self) -> None:
        self.settings.pop(WARNING_SETTING, None)
        self.set_status(204)
        self.finish()
