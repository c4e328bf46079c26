"""A job's results through the browser: its executed notebook as HTML and its output folder as one zip.

Both are GETs a browser may open in a tab or save (the login cookie authenticates them, as
jupyter-scheduler's downloads). The HTML is the job's output, which the user's code wrote: it is served
sandboxed (scripts, if any, run in an opaque origin without the server's cookies).
"""

from __future__ import annotations

import tempfile

from jupyter_server.auth.decorator import authorized
from tornado import web

from .. import core
from .handlers import DLWHandler

CHUNK = 256 * 1024
SPOOL_BYTES = 16 * 1024 * 1024  # a zip up to this size stays in memory, a bigger one goes to a temp file


class HtmlHandler(DLWHandler):
    """``GET``: the executed notebook as HTML (``?download=1``: as a file named after the job)."""

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        path = await self.call(core.executed_html, name, self.backend())
        body = await self.call(path.read_bytes)
        self.set_header("Content-Security-Policy", "sandbox allow-scripts")
        self.set_header("X-Content-Type-Options", "nosniff")
        if self.get_query_argument("download", "") in ("1", "true"):
            self.set_header("Content-Disposition", f'attachment; filename="{name}.html"')
        self.finish(body, set_content_type="text/html; charset=utf-8")  # APIHandler's default is JSON


class DownloadHandler(DLWHandler):
    """``GET``: the job's output folder as one zip, ``<name>-output.zip`` with the files under ``<name>/``."""

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
            await self.call(core.output_zip, name, spool, self.backend())
            size = spool.tell()
            spool.seek(0)
            self.set_header("Content-Type", "application/zip")
            self.set_header("Content-Length", str(size))
            self.set_header("Content-Disposition", f'attachment; filename="{name}-output.zip"')
            while chunk := spool.read(CHUNK):
                self.write(chunk)
                await self.flush()
        self.finish(set_content_type="application/zip")
