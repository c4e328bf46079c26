"""REST handlers: parse the request, call ``dlw_magic.core`` in a worker thread, return JSON.

Every method is ``@web.authenticated`` (plus ``@authorized`` so a deployment's Authorizer can narrow
who may submit) and every non-GET is XSRF-checked by jupyter_server. A ``DLWError`` becomes
``{"message": ...}`` with 400, ``NotFound`` 404 and ``Conflict`` 409.
"""

from __future__ import annotations

import asyncio
import functools
import json
from pathlib import Path
from typing import Any

import yaml
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web
from tornado.iostream import StreamClosedError

from .. import core
from ..backends import Backend
from ..errors import Conflict, DLWError, NotFound
from ..options import parse_options
from ..types import JobInfo
from .logstream import MAX_PAGE_CHARS, PAGE_CHARS, LogPump, read_page
from .options import job_options
from .outputs import LINKS_DIR, output_link, remove_link


class BadRequest(DLWError):
    """Request input the user must fix (400)."""


class Forbidden(DLWError):
    """A path outside the server root (403)."""


def _status_of(err: DLWError) -> int:
    if isinstance(err, NotFound):
        return 404
    if isinstance(err, Conflict):
        return 409
    if isinstance(err, Forbidden):
        return 403
    return 400


class DLWHandler(APIHandler):
    auth_resource = "dlw"

    @property
    def dlw(self) -> Any:
        return self.settings["dlw"]

    @property
    def root_dir(self) -> Path:
        return Path(self.settings["dlw_root_dir"]).expanduser().resolve()

    def backend(self) -> Backend:
        return self.dlw.make_backend()

    async def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a blocking core call off the event loop (backends touch disk, processes or the API)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(fn, *args, **kwargs))

    def reply(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data, default=str))

    def body(self) -> dict[str, Any]:
        try:
            data = json.loads(self.request.body or b"{}")
        except (ValueError, RecursionError) as err:
            raise BadRequest(f"request body: invalid JSON ({err})") from None
        if not isinstance(data, dict):
            raise BadRequest("request body: expected a JSON object")
        return data

    def confined(self, path: str, field: str) -> Path:
        """``path`` (relative to the server root, as JupyterLab names files) resolved inside the root."""
        if not isinstance(path, str) or not path.strip():
            raise BadRequest(f"{field}: expected a path relative to the server root")
        try:
            target = (self.root_dir / path.strip().lstrip("/")).resolve()
        except (OSError, ValueError) as err:  # a NUL byte, a symlink loop
            raise BadRequest(f"{field}: {path!r} is not a usable path ({err})") from None
        if target != self.root_dir and self.root_dir not in target.parents:
            raise Forbidden(f"{field}: {path!r} is outside the server root")
        return target

    def job_dict(self, info: JobInfo, with_spec: bool = False) -> dict[str, Any]:
        data = info.to_dict()
        spec = data.pop("spec", None)
        provenance = data.pop("provenance", None)  # pip freeze and more: only for one job, not a list
        if with_spec:
            data["spec"] = spec
            data["provenance"] = provenance
            data["yaml"] = yaml.safe_dump(spec or {}, sort_keys=False)
        else:  # details of one job only: a list stays small
            data.pop("metrics", None)
            data.pop("executed_notebook", None)
        data["tags"] = core.job_tags(info)
        # a sweep's trial names its experiment: the panel groups trials under it
        data["experiment"] = (provenance or {}).get("experiment") if isinstance(provenance, dict) else None
        data["output_path"] = self.root_relative(info.output_dir) or self.linked_output(info)
        nb = info.executed_notebook
        data["executed_notebook_path"] = (
            f"{data['output_path']}/{Path(nb).name}" if nb and data["output_path"] else None
        )
        return data

    def linked_output(self, info: JobInfo) -> str | None:
        """The job's ``dlw-outputs/`` link when it has one (made at submit or by the Output button)."""
        link = self.root_dir / LINKS_DIR / info.name
        return f"{LINKS_DIR}/{info.name}" if info.output_dir and link.is_symlink() else None

    def root_relative(self, path: str | None) -> str | None:
        """A folder as JupyterLab's file browser names it, or None when it lies outside the root."""
        if not path:
            return None
        try:
            rel = Path(path).resolve().relative_to(self.root_dir)
        except ValueError:
            return None
        allow_hidden = getattr(self.settings.get("contents_manager"), "allow_hidden", False)
        if not allow_hidden and any(part.startswith(".") for part in rel.parts):
            return None  # the contents API refuses hidden folders (~/.local/share/dlw by default)
        return rel.as_posix()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = (kwargs.get("exc_info") or (None, None, None))[1]
        if isinstance(exc, DLWError):
            self.set_status(_status_of(exc))
            self.set_header("Content-Type", "application/json")
            # Name files as the file browser does (relative to the root), not by server paths.
            message = str(exc).replace(str(self.root_dir) + "/", "")
            self.finish(json.dumps({"message": message}))
            return
        if not isinstance(exc, web.HTTPError) and exc is not None:
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"message": f"internal error: {type(exc).__name__}: {exc}"}))
            return
        super().write_error(status_code, **kwargs)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, DLWError):
            self.log.info("dlw: %s %s: %s", self.request.method, self.request.path, value)
            return
        super().log_exception(typ, value, tb)


PAGE = 500  # jobs in one answer of GET /jobs unless ?limit= says otherwise
MAX_PAGE = 5000


class JobsHandler(DLWHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        """The newest jobs first, one page (``?limit=``, default ``PAGE``; ``?offset=``; ``?tag=``: only those
        tagged so): ``jobs`` as before, plus ``total`` and ``more``, so 100,000 jobs are never sent at once (the
        panel polls every 2 s)."""
        limit = self.int_argument("limit", PAGE, 1, MAX_PAGE)
        offset = self.int_argument("offset", 0, 0, 1 << 62)
        tag = self.get_query_argument("tag", "") or None
        jobs, total = await self.call(core.list_page, self.backend(), limit, offset, tag)
        self.reply({"jobs": [self.job_dict(j) for j in jobs], "total": total, "offset": offset,
                    "more": offset + len(jobs) < total})

    def int_argument(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.get_query_argument(name, "")
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise BadRequest(f"{name}: expected a whole number, got {raw[:40]!r}") from None
        if not low <= value <= high:
            raise BadRequest(f"{name}: must lie between {low} and {high}")
        return value

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Body: ``notebook`` (a path under the root) or ``spec`` (job YAML text), plus ``JobOptions``."""
        body = self.body()
        options = parse_options({k: v for k, v in body.items() if k not in ("notebook", "spec")})
        if ("notebook" in body) == ("spec" in body):
            raise BadRequest("notebook: give exactly one of notebook (a path) or spec (job YAML text)")
        if "notebook" in body:
            path = self.confined(body["notebook"], "notebook")
            if path.suffix.lower() not in (".ipynb", ".py"):
                raise BadRequest(f"notebook: {body['notebook']!r} is not a .ipynb notebook or .py script")
            if not path.is_file():
                raise NotFound(f"notebook: {body['notebook']!r} not found")
            spec = await self.call(core.build_spec, path, options=options, base_dir=self.root_dir)
        else:
            if not isinstance(body["spec"], str):
                raise BadRequest("spec: expected job YAML text")
            # The spec's relative paths mean the server root, not the server's working directory.
            spec = await self.call(core.build_spec, spec_text=body["spec"], options=options, base_dir=self.root_dir)
            self.confine_spec(spec)
        info = await self.call(core.submit, spec, self.backend())
        if info.output_dir and not self.root_relative(info.output_dir):
            output_link(self.root_dir, info.name, info.output_dir)
        # What the conversion noted (a parameter the cell does not define, dropped cells): the dialog shows it.
        self.reply({**self.job_dict(info), "notes": info.provenance.get("conversion_notes") or []}, status=201)

    def confine_spec(self, spec: Any) -> None:
        """A pasted spec may only name files under the server root, like a notebook path may."""
        src = spec.source
        workdir = self.inside_root(Path(src.workdir or self.root_dir), "spec.source.workdir")
        field = "spec.source.notebook" if src.notebook else "spec.source.script"
        self.inside_root(workdir / (src.notebook or src.script or ""), field)

    def inside_root(self, path: Path, field: str) -> Path:
        try:
            target = path.resolve()
        except (OSError, ValueError) as err:
            raise BadRequest(f"{field}: {str(path)!r} is not a usable path ({err})") from None
        if target != self.root_dir and self.root_dir not in target.parents:
            raise Forbidden(f"{field}: {str(path)!r} is outside the server root")
        return target


class JobHandler(DLWHandler):
    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        info = await self.call(core.get_job, name, self.backend())
        self.reply(self.job_dict(info, with_spec=True))

    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        await self.call(core.delete, name, self.backend())
        remove_link(self.root_dir, name)
        self.set_status(204)
        self.finish()


class CancelHandler(DLWHandler):
    @web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        info = await self.call(core.cancel, name, self.backend())
        self.reply(self.job_dict(info))


class RerunHandler(DLWHandler):
    @web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        new_name = self.body().get("name") or None
        if new_name is not None and not isinstance(new_name, str):
            raise BadRequest(f"name: expected text, got {new_name!r}")
        info = await self.call(core.rerun, name, new_name, self.backend())
        if info.output_dir and not self.root_relative(info.output_dir):
            output_link(self.root_dir, info.name, info.output_dir)
        self.reply(self.job_dict(info), status=201)


class OutputHandler(DLWHandler):
    """``POST``: the job's output folder as a root-relative path, linked into the root when it lies outside."""

    @web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        info = await self.call(core.get_job, name, self.backend())
        if not info.output_dir:
            raise NotFound(f"job {name} has no output folder on this machine")
        path = self.root_relative(info.output_dir) or output_link(self.root_dir, name, info.output_dir)
        if path is None:
            raise Conflict(f"job {name}: cannot link its output folder into the server root ({info.output_dir})")
        self.reply({"path": path})


class LogsHandler(DLWHandler):
    """One rank's log (or all ranks'). ``follow=1`` streams server-sent events until the job ends.

    Each event's id is ``rank:offset``; a client resumes with ``?offset=`` (or the ``Last-Event-ID``
    header) and a rank, and gets only what it has not seen.
    """

    pump: LogPump | None = None

    def parse_args(self) -> tuple[int | None, int, bool]:
        rank_arg = self.get_query_argument("rank", "")
        offset_arg = self.get_query_argument("offset", "")
        last_id = self.request.headers.get("Last-Event-ID", "")
        if last_id and not offset_arg:
            rank_arg, _, offset_arg = last_id.partition(":")
        try:
            rank = int(rank_arg) if rank_arg not in ("", "all") else None
        except ValueError:
            raise BadRequest(f"rank: expected a rank number, got {rank_arg!r}") from None
        try:
            offset = int(offset_arg or 0)
        except ValueError:
            raise BadRequest(f"offset: expected a byte offset, got {offset_arg!r}") from None
        if offset < 0 or (rank is not None and rank < 0):
            raise BadRequest("offset: must not be negative" if offset < 0 else "rank: must not be negative")
        if offset >= 1 << 62 or (rank is not None and rank >= 1 << 20):  # beyond any log; beyond int64 is a 500
            raise BadRequest("offset: beyond any log" if offset >= 1 << 62 else "rank: no job has that many ranks")
        if offset and rank is None:
            raise BadRequest("offset: resuming needs a rank (offsets are per rank)")
        follow = self.get_query_argument("follow", "0").lower() in ("1", "true", "yes")
        return rank, offset, follow

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        rank, offset, follow = self.parse_args()
        backend = self.backend()
        info = await self.call(core.get_job, name, backend, details=False)  # 404 before any stream starts
        if rank is not None and rank >= max(info.world_size, 1):
            raise BadRequest(f"rank: job {name} has ranks 0..{max(info.world_size, 1) - 1}, not {rank}")
        if not follow:
            try:
                limit = min(int(self.get_query_argument("limit", str(PAGE_CHARS))), MAX_PAGE_CHARS)
            except ValueError:
                raise BadRequest("limit: expected a number of characters") from None
            chunks, after, more = await self.call(
                lambda: read_page(core.logs(name, rank, False, offset, backend), max(limit, 1))
            )
            self.reply({"chunks": [c.__dict__ for c in chunks], "state": info.state.value, "more": more,
                        "next": {str(r): o for r, o in after.items()}})
            return
        await self.stream(name, rank, offset, backend)

    async def stream(self, name: str, rank: int | None, offset: int, backend: Backend) -> None:
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")  # proxies (the hub's) must not buffer the stream
        self.pump = LogPump(lambda: core.logs(name, rank, True, offset, backend), asyncio.get_running_loop())
        self.pump.start()
        try:
            self.write(": stream open\n\n")
            await self.flush()
            while True:
                batch = await self.pump.next_batch(self.dlw.keepalive_seconds, self.dlw.log_batch_bytes)
                if batch is None:
                    break
                if not batch:
                    self.write(": keep-alive\n\n")
                for c in batch:
                    data = json.dumps({"rank": c.rank, "text": c.text, "offset": c.offset})
                    self.write(f"id: {c.rank}:{c.offset}\nevent: log\ndata: {data}\n\n")
                await self.flush()
            if self.pump.error:
                self.write(f"event: error\ndata: {json.dumps({'message': self.pump.error})}\n\n")
            else:
                final = await self.call(core.get_job, name, backend, details=False)
                self.write(f"event: end\ndata: {json.dumps({'state': final.state.value})}\n\n")
            self.finish()
        except StreamClosedError:
            pass  # the browser closed the viewer
        finally:
            self.pump.stop()

    def on_connection_close(self) -> None:
        if self.pump is not None:
            self.pump.stop()


class OptionsHandler(DLWHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        # By name: the dialog must open even when the backend itself cannot be reached.
        options = await self.call(job_options, self.dlw.backend_name(), self.dlw.workspace_config or None)
        self.reply(options)


class ParametersHandler(DLWHandler):
    """The notebook's ``parameters`` cell, to prefill the dialog (``?path=`` relative to the root)."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        path = self.confined(self.get_query_argument("path", ""), "path")
        if not path.is_file():
            raise NotFound(f"path: {self.get_query_argument('path')!r} not found")
        from ..convert import describe_parameters
        from ..convert.parameters import as_json

        described = [p for p in await self.call(describe_parameters, path) if p.literal]
        reason = None if described else "the notebook has no cell tagged 'parameters'"
        # ``types``: what each parameter's default (or annotation) says it takes, so the dialog can refuse
        # 5.5 for an int while the user types (JSON cannot tell 5 from 5.0).
        self.reply({"parameters": {p.name: as_json(p.default) for p in described}, "reason": reason,
                    "types": {p.name: {"type": p.type, "optional": p.optional, "help": p.help} for p in described}})
