"""TensorBoard per job behind Jupyter's login: ``POST tensorboard`` {jobs: [...]} starts (or reuses) a
TensorBoard on 127.0.0.1 for those jobs and answers its URL, ``{base_url}dlw/api/tensorboard/VIEW/``;
every request under it is authenticated by jupyter_server and proxied to that TensorBoard.

TensorBoard's own POSTs carry ``X-XSRF-Protected: 1`` (a header a cross-site form cannot set), which
stands in for Jupyter's XSRF token there. The processes end with the server.
"""

from __future__ import annotations

import atexit
import hashlib
import subprocess
import threading
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import httpclient, web

from .. import tensorboard
from ..errors import NotFound
from .handlers import BadRequest, DLWHandler

VIEW = r"(?P<view>[a-f0-9]{12})"
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "cookie",
                "authorization", "content-encoding"}


class _Views:
    """view id -> (TensorBoard process, port); one per set of jobs."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
        atexit.register(self.stop_all)

    def ensure(self, names: list[str], backend: Any, prefix_of: Any) -> str:
        view = hashlib.sha256(",".join(sorted(set(names))).encode()).hexdigest()[:12]
        with self.lock:
            known = self.running.get(view)
            if known is not None and known[0].poll() is None:
                return view
            dirs = tensorboard.logdirs(names, backend)
            self.running[view] = tensorboard.start(dirs, prefix_of(view))
        return view

    def port(self, view: str) -> int:
        known = self.running.get(view)
        if known is None or known[0].poll() is not None:
            raise NotFound("this TensorBoard is no longer running: open it again from the job")
        return known[1]

    def stop_all(self) -> None:
        for proc, _ in self.running.values():
            proc.terminate()


VIEWS = _Views()


class TensorBoardHandler(DLWHandler):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        jobs = self.body().get("jobs")
        if not isinstance(jobs, list) or not jobs or not all(isinstance(j, str) for j in jobs):
            raise BadRequest("jobs: expected a list of job names")
        view = await self.call(VIEWS.ensure, jobs, self.backend(), self.prefix)
        self.reply({"view": view, "url": self.prefix(view) + "/"}, status=201)

    def prefix(self, view: str) -> str:
        return url_path_join(self.base_url, "dlw", "api", "tensorboard", view)


class TensorBoardProxyHandler(JupyterHandler):
    """Not an APIHandler: that one forces a JSON content type and a CSP that blocks TensorBoard's scripts."""

    auth_resource = "dlw"

    def get_login_url(self) -> str:
        # Without the lab's login: 403, as every DLW handler answers (not a redirect to the login page).
        raise web.HTTPError(403)

    def check_xsrf_cookie(self) -> None:
        if self.request.headers.get("X-XSRF-Protected") == "1":
            return None
        return super().check_xsrf_cookie()

    @web.authenticated
    @authorized
    async def get(self, view: str, path: str) -> None:
        await self.proxy(view, path)

    @web.authenticated
    @authorized
    async def post(self, view: str, path: str) -> None:
        await self.proxy(view, path)

    async def proxy(self, view: str, path: str) -> None:
        try:
            port = VIEWS.port(view)
        except NotFound as err:
            raise web.HTTPError(404, str(err)) from None
        prefix = url_path_join(self.base_url, "dlw", "api", "tensorboard", view)
        url = f"http://127.0.0.1:{port}{prefix}/{path}"
        if self.request.query:
            url += "?" + self.request.query
        headers = {k: v for k, v in self.request.headers.items() if k.lower() not in _HOP_HEADERS}
        request = httpclient.HTTPRequest(url, method=self.request.method or "GET", headers=headers,
                                         body=self.request.body if self.request.method == "POST" else None,
                                         follow_redirects=False, request_timeout=120, decompress_response=True)
        response = await httpclient.AsyncHTTPClient().fetch(request, raise_error=False)
        self.set_status(response.code if response.code != 599 else 502)
        for key, value in response.headers.get_all():
            if key.lower() not in _HOP_HEADERS and key.lower() != "set-cookie":
                self.set_header(key, value)
        self.finish(response.body or b"")


HANDLERS: list[tuple[str, type]] = [
    (r"tensorboard", TensorBoardHandler),
    (rf"tensorboard/{VIEW}/(?P<path>.*)", TensorBoardProxyHandler),
]
