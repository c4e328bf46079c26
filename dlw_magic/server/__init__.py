"""The lab extension's REST API under ``{base_url}/dlw/api/``: a thin face over ``dlw_magic.core``.

The handler table below is the whole server side at a glance; ``DLWServer`` holds what a deployment
may configure (``c.DLWServer.backend = "kubernetes"``, or ``c.DLWServer.backend_class`` for a backend of
its own, as jupyter-scheduler's ``scheduler_class``). Handlers only translate HTTP to core calls.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from jupyter_server.utils import url_path_join
from traitlets import Float, Int, Type, Unicode
from traitlets.config import Configurable

from .. import core
from ..backends import Backend
from ..venv import path_with_scripts
from .downloads import DownloadHandler, HtmlHandler
from .experiments import HANDLERS as EXPERIMENT_HANDLERS
from .gpu_idle import GpuIdleHandler, GpusHandler
from .handlers import (
    CancelHandler,
    JobHandler,
    JobsHandler,
    LogsHandler,
    OptionsHandler,
    OutputHandler,
    ParametersHandler,
    RerunHandler,
)
from .schedules import (
    DiffHandler,
    PauseScheduleHandler,
    ResumeScheduleHandler,
    RunScheduleHandler,
    ScheduleHandler,
    SchedulesHandler,
    start_scheduler,
)
from .tensorboard import HANDLERS as TENSORBOARD_HANDLERS

# Same rule as the spec's job names (DNS-1123 label), so a URL can never carry a path.
JOB_NAME = r"(?P<name>[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)"

HANDLERS: list[tuple[str, type]] = [
    (r"jobs", JobsHandler),
    (rf"jobs/{JOB_NAME}", JobHandler),
    (rf"jobs/{JOB_NAME}/cancel", CancelHandler),
    (rf"jobs/{JOB_NAME}/rerun", RerunHandler),
    (rf"jobs/{JOB_NAME}/output", OutputHandler),
    (rf"jobs/{JOB_NAME}/logs", LogsHandler),
    (rf"jobs/{JOB_NAME}/html", HtmlHandler),
    (rf"jobs/{JOB_NAME}/download", DownloadHandler),
    (r"gpus", GpusHandler),
    (r"gpus/idle", GpuIdleHandler),
    (r"options", OptionsHandler),
    (r"parameters", ParametersHandler),
    *EXPERIMENT_HANDLERS,  # sweeps and comparisons
    *TENSORBOARD_HANDLERS,  # TensorBoard per job, proxied behind the lab's login
    (rf"jobs/{JOB_NAME}/diff", DiffHandler),
    (r"schedules", SchedulesHandler),
    (rf"schedules/{JOB_NAME}", ScheduleHandler),
    (rf"schedules/{JOB_NAME}/pause", PauseScheduleHandler),
    (rf"schedules/{JOB_NAME}/resume", ResumeScheduleHandler),
    (rf"schedules/{JOB_NAME}/run", RunScheduleHandler),
]


class DLWServer(Configurable):
    """Settings of the DLW REST API (``c.DLWServer.*`` in jupyter_server_config.py)."""

    backend = Unicode(
        "", config=True, help="Backend name (local, kubernetes); empty: DLW_BACKEND or auto-detect."
    )
    backend_class = Type(
        None, klass=Backend, allow_none=True, config=True,
        help="A Backend subclass to run jobs with instead of a named backend; built with no arguments.",
    )
    kubeconfig = Unicode("", config=True, help="kubeconfig file of the kubernetes backend; empty: DLW_KUBECONFIG.")
    namespace = Unicode("", config=True, help="Namespace of the kubernetes backend; empty: DLW_NAMESPACE or the pod's.")
    workspace_config = Unicode(
        "", config=True, help="The admin's workspace.yaml; empty: DLW_WORKSPACE_CONFIG, else the shipped default."
    )
    log_batch_bytes = Int(
        256 * 1024, config=True, help="Largest log event sent at once; bigger bursts are split."
    )
    keepalive_seconds = Float(
        15.0, config=True, help="Seconds between SSE keep-alive comments on a quiet log stream."
    )

    _lock = threading.Lock()
    _instance: Backend | None = None

    def backend_name(self) -> str:
        """The active backend's name, without building it (the API may be unreachable)."""
        if self.backend_class is not None:
            return str(self.backend_class.name)
        return core.backend_name_for(self.backend, self.kubeconfig, self.namespace)

    def make_backend(self) -> Backend:
        """The backend every request uses: ``backend_class`` if set, else the named one with its options."""
        if self.backend_class is not None:
            with self._lock:
                if self._instance is None:
                    factory: Callable[[], Backend] = self.backend_class
                    self._instance = factory()
                return self._instance
        return core.backend_for(self.backend, self.kubeconfig, self.namespace, self.workspace_config)


def _load_jupyter_server_extension(serverapp: Any) -> None:
    # `.venv/bin/jupyter lab` with .venv off PATH: terminals and `!dlw`, `!pip` in kernels get this environment.
    os.environ["PATH"] = path_with_scripts(os.environ.get("PATH"))
    config = DLWServer(parent=serverapp)
    web_app = serverapp.web_app
    base = url_path_join(web_app.settings["base_url"], "dlw", "api")
    web_app.settings["dlw"] = config
    web_app.settings["dlw_root_dir"] = serverapp.root_dir
    web_app.add_handlers(".*$", [(url_path_join(base, pattern), cls) for pattern, cls in HANDLERS])
    serverapp.log.info("DLW REST API at %s", base)
    try:  # recurring jobs keep running while JupyterLab is up (and after: the scheduler is its own process)
        if start_scheduler():
            serverapp.log.info("DLW: started the local scheduler (dlw schedule list)")
    except Exception as err:  # a broken schedules database must not stop the lab
        serverapp.log.warning("DLW: local scheduler not started: %s", err)


# Older jupyter_server looked the loader up without the underscore.
load_jupyter_server_extension = _load_jupyter_server_extension
