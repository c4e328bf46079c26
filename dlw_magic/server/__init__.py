"""The lab extension's REST API under ``{base_url}/dlw/api/``: a thin face over ``dlw_magic.core``.

The handler table below is the whole server side at a glance; ``DLWServer`` holds what a deployment
may configure (``c.DLWServer.backend = "kubernetes"``). Handlers only translate HTTP to core calls.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.utils import url_path_join
from traitlets import Float, Int, Unicode
from traitlets.config import Configurable

from .handlers import (
    CancelHandler,
    GpusHandler,
    JobHandler,
    JobsHandler,
    LogsHandler,
    OptionsHandler,
    OutputHandler,
    ParametersHandler,
    RerunHandler,
)

# Same rule as the spec's job names (DNS-1123 label), so a URL can never carry a path.
JOB_NAME = r"(?P<name>[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)"

HANDLERS: list[tuple[str, type]] = [
    (r"jobs", JobsHandler),
    (rf"jobs/{JOB_NAME}", JobHandler),
    (rf"jobs/{JOB_NAME}/cancel", CancelHandler),
    (rf"jobs/{JOB_NAME}/rerun", RerunHandler),
    (rf"jobs/{JOB_NAME}/output", OutputHandler),
    (rf"jobs/{JOB_NAME}/logs", LogsHandler),
    (r"gpus", GpusHandler),
    (r"options", OptionsHandler),
    (r"parameters", ParametersHandler),
]


class DLWServer(Configurable):
    """Settings of the DLW REST API (``c.DLWServer.*`` in jupyter_server_config.py)."""

    backend = Unicode(
        "", config=True, help="Backend name (local, kubernetes); empty: DLW_BACKEND or auto-detect."
    )
    log_batch_bytes = Int(
        256 * 1024, config=True, help="Largest log event sent at once; bigger bursts are split."
    )
    keepalive_seconds = Float(
        15.0, config=True, help="Seconds between SSE keep-alive comments on a quiet log stream."
    )


def _load_jupyter_server_extension(serverapp: Any) -> None:
    config = DLWServer(parent=serverapp)
    web_app = serverapp.web_app
    base = url_path_join(web_app.settings["base_url"], "dlw", "api")
    web_app.settings["dlw"] = config
    web_app.settings["dlw_root_dir"] = serverapp.root_dir
    web_app.add_handlers(".*$", [(url_path_join(base, pattern), cls) for pattern, cls in HANDLERS])
    serverapp.log.info("DLW REST API at %s", base)


# Older jupyter_server looked the loader up without the underscore.
load_jupyter_server_extension = _load_jupyter_server_extension
