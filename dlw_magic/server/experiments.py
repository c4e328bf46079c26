"""REST handlers of sweeps and comparisons (``dlw_magic.experiments``), under ``{base_url}/dlw/api/``:

    GET  experiments                    every experiment (no curves)
    POST experiments                    {notebook, parameters: {name: [values] | {min, max, log}}, search, trials,
                                         seed, parallel, metric, goal, stopIf, failFast, options: JobOptions}
    GET  experiments/NAME               the experiment, every trial with its goal-metric curve, the best named
    POST experiments/NAME/cancel        cancel it (running trials cancelled, waiting ones never start)
    POST experiments/NAME/promote       {name?}: rerun the best trial as an ordinary job
    GET  compare?jobs=A,B,C           jobs side by side: parameter, image, code and package differences, metrics
"""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from .. import experiments
from ..experiments.compare import compare
from ..experiments.results import summary
from ..options import parse_options
from .handlers import BadRequest, DLWHandler
from .outputs import output_link

NAME = r"(?P<name>[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)"
_SETTINGS = {"search": "search", "trials": "trials", "seed": "seed", "parallel": "parallel", "metric": "metric",
             "goal": "goal", "stopIf": "stop_if", "failFast": "fail_fast", "name": "name"}


class ExperimentsHandler(DLWHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply({"experiments": await self.call(experiments.list_experiments)})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.body()
        unknown = sorted(set(body) - {*_SETTINGS, "notebook", "parameters", "options"})
        if unknown:
            raise BadRequest(f"{unknown[0]}: unknown field")
        path = self.confined(body.get("notebook", ""), "notebook")
        if path.suffix.lower() != ".ipynb" or not path.is_file():
            raise BadRequest(f"notebook: {body.get('notebook')!r} is not a notebook under the server root")
        space = body.get("parameters")
        if not isinstance(space, dict):
            raise BadRequest("parameters: expected an object of name -> list of values or {min, max, log}")
        options = body.get("options") or {}
        if not isinstance(options, dict):
            raise BadRequest("options: expected an object of job options")
        settings: dict[str, Any] = {py: body[key] for key, py in _SETTINGS.items() if key in body}
        backend = self.backend()
        exp = await self.call(experiments.build_experiment, path, space, parse_options(options),
                              base_dir=self.root_dir, **settings)
        b_opts = {k: v for k, v in (("kubeconfig", self.dlw.kubeconfig), ("namespace", self.dlw.namespace)) if v}
        record = await self.call(experiments.create, exp, backend, {"name": backend.name, **b_opts})
        self.reply(summary(record), status=201)


class ExperimentHandler(DLWHandler):
    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        self.reply(summary(await self.call(experiments.get, name)))


class ExperimentCancelHandler(DLWHandler):
    @web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        self.reply(summary(await self.call(experiments.cancel, name)))


class ExperimentPromoteHandler(DLWHandler):
    @web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        new_name = self.body().get("name") or None
        if new_name is not None and not isinstance(new_name, str):
            raise BadRequest(f"name: expected text, got {new_name!r}")
        info = await self.call(experiments.promote, name, new_name)
        if info.output_dir and not self.root_relative(info.output_dir):
            output_link(self.root_dir, info.name, info.output_dir)
        self.reply(self.job_dict(info), status=201)


class CompareHandler(DLWHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        names = [n for arg in self.get_arguments("jobs") for n in arg.split(",") if n]
        self.reply(await self.call(compare, names, self.backend()))


HANDLERS: list[tuple[str, type]] = [
    (r"experiments", ExperimentsHandler),
    (rf"experiments/{NAME}", ExperimentHandler),
    (rf"experiments/{NAME}/cancel", ExperimentCancelHandler),
    (rf"experiments/{NAME}/promote", ExperimentPromoteHandler),
    (r"compare", CompareHandler),
]
