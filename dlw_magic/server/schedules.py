"""REST handlers for job definitions (``schedules``) and ``dlw diff`` (``jobs/NAME/diff``).

Thin as the job handlers: parse, call ``dlw_magic.schedules.api`` / ``dlw_magic.envdiff`` in a worker
thread, reply JSON. A schedule's notebook must lie under the server root, as a submitted one must.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..errors import NotFound
from ..options import parse_options
from .handlers import BadRequest, DLWHandler

# Body fields of a definition (camelCase, as the lab sends them); the rest are JobOptions.
_POLICY = ("cron", "timezone", "concurrency", "startingDeadlineSeconds", "keep")


def _policy(body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in _POLICY:
        value = body.get(key)
        if value is None or value == "":
            continue
        if key == "keep" and (isinstance(value, bool) or not isinstance(value, int)):
            raise BadRequest(f"keep: expected a number of runs, got {value!r}")
        if key != "keep" and key != "startingDeadlineSeconds" and not isinstance(value, str):
            raise BadRequest(f"{key}: expected text, got {value!r}")
        out[key] = value
    return out


class SchedulesHandler(DLWHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        from ..schedules import api

        shown = await self.call(api.list_definitions, backend=self.backend())
        self.reply({"schedules": [s.to_dict() for s in shown]})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Body: ``notebook`` (a path under the root), ``cron``, optional ``name``, ``timezone``,
        ``concurrency``, ``startingDeadlineSeconds``, ``keep``, and ``options`` (JobOptions)."""
        from ..schedules import api

        body = self.body()
        policy = _policy(body)
        if "cron" not in policy:
            raise BadRequest("cron: required (five cron fields such as '0 3 * * *', or @daily)")
        path = self.confined(body.get("notebook", ""), "notebook")
        if not path.is_file():
            raise NotFound(f"notebook: {body.get('notebook')!r} not found")
        options = parse_options(body.get("options") or {})
        name = body.get("name") or None
        if name is not None and not isinstance(name, str):
            raise BadRequest(f"name: expected text, got {name!r}")
        backend = self.backend()
        d = await self.call(
            api.create, path, policy["cron"], name=name, tz=policy.get("timezone", "UTC"),
            concurrency=policy.get("concurrency", "Forbid"), starting_deadline=policy.get("startingDeadlineSeconds"),
            keep=policy.get("keep", 5), options=options, backend=backend,
        )
        if d.backend == "local":
            await self.call(start_scheduler)
        shown = await self.call(api.show, d.name, backend=backend)
        self.reply(shown.to_dict(), status=201)


class ScheduleHandler(DLWHandler):
    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        from ..schedules import api

        shown = await self.call(api.show, name, backend=self.backend())
        self.reply(shown.to_dict())

    @web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        """Edit: any of the policy fields and ``options``; absent fields keep their values."""
        from ..schedules import api

        body = self.body()
        policy = _policy(body)
        options = parse_options(body.get("options") or {}) if body.get("options") else None
        backend = self.backend()
        await self.call(api.edit, name, cron_expr=policy.get("cron"), tz=policy.get("timezone"),
                        concurrency=policy.get("concurrency"), starting_deadline=policy.get("startingDeadlineSeconds"),
                        keep=policy.get("keep"), options=options, backend=backend)
        shown = await self.call(api.show, name, backend=backend)
        self.reply(shown.to_dict())

    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        from ..schedules import api

        await self.call(api.delete, name, backend=self.backend())
        self.set_status(204)
        self.finish()


class ScheduleActionHandler(DLWHandler):
    """``pause``, ``resume`` or ``run`` (now): one URL each, the subclasses below."""

    async def act(self, name: str, action: str) -> None:
        from ..schedules import api

        backend = self.backend()
        if action == "run":
            info = await self.call(api.run_now, name, backend=backend)
            self.reply(self.job_dict(info), status=201)
            return
        await self.call(api.set_paused, name, action == "pause", backend=backend)
        shown = await self.call(api.show, name, backend=backend)
        self.reply(shown.to_dict())


class PauseScheduleHandler(ScheduleActionHandler):
    @web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        await self.act(name, "pause")


class ResumeScheduleHandler(ScheduleActionHandler):
    @web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        await self.act(name, "resume")


class RunScheduleHandler(ScheduleActionHandler):
    @web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        await self.act(name, "run")


class DiffHandler(DLWHandler):
    """``GET jobs/NAME/diff[?other=B]``: the job against another job, or against the notebook now."""

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        from ..envdiff import diff_jobs, render_text

        other = self.get_query_argument("other", None) or None
        d = await self.call(diff_jobs, name, other, self.backend())
        self.reply({**d.to_dict(), "text": render_text(d)})


def start_scheduler() -> bool:
    """Start the local scheduler when local definitions exist and none runs (the lab server's load)."""
    from .. import settings
    from ..backends.local.backend import data_dir
    from ..schedules import service
    from ..schedules.store import ScheduleStore

    if not settings.current().scheduler_autostart:
        return False
    home = data_dir()
    if not (home / "schedules.db").is_file():
        return False  # never used: no database, no process
    if not any(d.backend == "local" and not d.paused for d in ScheduleStore(home).definitions()):
        return False
    return service.ensure_running(home)
