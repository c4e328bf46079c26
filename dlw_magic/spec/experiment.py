"""The sweep spec: ``apiVersion: dlw/v1``, ``kind: Experiment``, in the job YAML family.

An experiment is a job template (a ``TrainingJob`` without its name) plus a search space over the
notebook's parameters; each point of the space runs as an ordinary job (a *trial*)::

    apiVersion: dlw/v1
    kind: Experiment
    name: lr-sweep
    job: {source: {notebook: digits.ipynb}}
    parameters:
      lr: [0.01, 0.03, 0.1]             # a list: grid values, or choices for random search
      batch: [32, 64]
      weight_decay: {min: 1.0e-5, max: 1.0e-2, log: true}   # a range: random search only
    search: grid                        # or random (then `trials: N`)
    parallel: 2                         # at most 2 trials at once; the rest wait in DLW
    metric: accuracy                    # from dlw_magic.log_metrics
    goal: max
    stopIf: loss > 2 after 3 steps      # or: median after 3 steps
    failFast: false                     # a failed trial cancels the others only when true

Only the shape is checked here (``validate`` names the field); that each trial is a valid job, and that
its values fit the notebook's parameter types, is checked by ``dlw_magic.experiments`` before anything runs.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import (
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from .model import DNS1123_LABEL, ParamValue, _Model

MAX_TRIALS = 1000  # trial names are NAME-000 .. NAME-999
MAX_NAME = 52 - 4  # a job name is at most 52 characters; "-NNN" follows

_RULE = re.compile(
    r"^\s*(?:(?P<metric>[A-Za-z_][\w./-]*)\s*(?P<op>>=|<=|>|<)\s*(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
    r"|(?P<median>median))\s+after\s+(?P<steps>\d+)\s+steps?\s*$"
)


@dataclass(frozen=True)
class StopRule:
    """Stop a running trial once it has logged ``after`` steps and

    - threshold: the last value of ``metric`` compares ``op`` ``value`` (``loss > 2 after 3 steps``), or
    - median: its best goal value so far is worse than the median of the other trials' best values up to
      the same step (``median after 3 steps``; needs the experiment's ``metric`` and two other trials there).
    """

    kind: Literal["threshold", "median"]
    after: int
    metric: str | None = None
    op: str | None = None
    value: float | None = None

    def __str__(self) -> str:
        if self.kind == "median":
            return f"median after {self.after} steps"
        return f"{self.metric} {self.op} {self.value:g} after {self.after} steps"


def parse_stop_rules(text: str) -> list[StopRule]:
    """``loss > 2 after 3 steps or median after 5 steps`` -> rules; ValueError naming the bad part."""
    rules = []
    for part in re.split(r"\s+or\s+", text.strip()):
        m = _RULE.match(part)
        if not m:
            raise ValueError(f"{part!r} is not a stop rule (e.g. 'loss > 2 after 3 steps' or 'median after 3 steps')")
        steps = int(m["steps"])
        if m["median"]:
            rules.append(StopRule("median", steps))
        else:
            rules.append(StopRule("threshold", steps, m["metric"], m["op"], float(m["value"])))
    return rules


class Range(_Model):
    """A range to sample from (random search): uniform, or uniform in log space with ``log: true``.
    Integer ends give integers (``{min: 1, max: 4}``: 1, 2, 3 or 4)."""

    min: StrictInt | StrictFloat
    max: StrictInt | StrictFloat
    log: StrictBool = False

    @field_validator("min", "max", mode="before")
    @classmethod
    def _number(cls, v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"expected a number, got {v!r}")
        return v

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if not (math.isfinite(self.min) and math.isfinite(self.max)):
            raise ValueError("min and max must be finite numbers")
        if self.min >= self.max:
            raise ValueError(f"min ({self.min}) must be below max ({self.max})")
        if self.log and self.min <= 0:
            raise ValueError("a log range needs min > 0")
        return self

    @property
    def integer(self) -> bool:
        return isinstance(self.min, int) and isinstance(self.max, int)


class Experiment(_Model):
    api_version: Literal["dlw/v1"] = "dlw/v1"
    kind: Literal["Experiment"] = "Experiment"
    name: str = Field(description=f"DNS-1123 label of at most {MAX_NAME} characters; trials are NAME-000, NAME-001...")
    job: dict[str, Any] = Field(description="The trials' TrainingJob, without a name (its parameters are fixed ones).")
    parameters: dict[str, list[ParamValue] | Range] = Field(
        description="Search space: a list of values (grid, or choices for random search) or a range {min, max, log}."
    )
    search: Literal["grid", "random"] = "grid"
    trials: int | None = Field(None, ge=1, le=MAX_TRIALS, description="How many points random search draws.")
    seed: int | None = Field(None, description="Random search seed (default: drawn once, kept in the record).")
    parallel: int = Field(1, ge=1, le=MAX_TRIALS, description="Trials running at once; the others wait in DLW.")
    metric: str | None = Field(None, description="The goal metric, as logged with dlw_magic.log_metrics.")
    goal: Literal["max", "min"] = "max"
    stop_if: str | None = Field(None, description="Early stopping: 'loss > 2 after 3 steps' or 'median after 3 steps'.")
    fail_fast: bool = Field(False, description="A failed trial cancels the others (default: they go on).")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if len(v) > MAX_NAME or not DNS1123_LABEL.match(v):
            raise ValueError(f"{v!r} is not a valid experiment name (lowercase letters, digits and '-', "
                             f"at most {MAX_NAME} characters)")
        return v

    @field_validator("job")
    @classmethod
    def _job(cls, v: dict[str, Any]) -> dict[str, Any]:
        if "name" in v:
            raise ValueError("the trials are named after the experiment: leave job.name out")
        return v

    @field_validator("parameters", mode="before")
    @classmethod
    def _ranges(cls, v: Any) -> Any:
        # A mapping is a range, a list holds values: say which rule failed, not every branch of the union.
        if not isinstance(v, dict):
            return v
        out = {}
        for name, values in v.items():
            if isinstance(values, dict):
                try:
                    values = Range.model_validate(values)
                except ValidationError as err:
                    first = err.errors(include_url=False)[0]
                    where = ".".join(str(p) for p in first["loc"])
                    msg = str(first["msg"]).removeprefix("Value error, ")
                    raise ValueError(f"{name}: {where + ': ' if where else ''}{msg}") from None
            elif not isinstance(values, list):
                raise ValueError(f"{name}: expected a list of values or a range {{min, max, log}}")
            out[name] = values
        return out

    @field_validator("parameters")
    @classmethod
    def _space(cls, v: dict[str, Any]) -> dict[str, Any]:
        if not v:
            raise ValueError("give at least one parameter to sweep")
        for name, values in v.items():
            if not name.isidentifier():
                raise ValueError(f"{name!r} is not a parameter name (a Python identifier)")
            if isinstance(values, list) and not values:
                raise ValueError(f"{name}: give at least one value")
        return v

    @field_validator("stop_if")
    @classmethod
    def _rule(cls, v: str | None) -> str | None:
        if v is not None:
            parse_stop_rules(v)
        return v

    @model_validator(mode="after")
    def _search(self) -> Experiment:
        ranges = [n for n, v in self.parameters.items() if isinstance(v, Range)]
        if self.search == "grid":
            if ranges:
                raise ValueError(f"parameters.{ranges[0]}: a range needs search: random "
                                 "(a grid takes a list of values)")
            if self.trials is not None:
                raise ValueError("trials: only random search takes a number of trials (a grid runs every point)")
            if self.grid_size > MAX_TRIALS:
                raise ValueError(f"parameters: the grid has {self.grid_size} points, over {MAX_TRIALS}")
        elif self.trials is None:
            raise ValueError("trials: random search needs the number of trials to draw")
        if self.stop_if and any(r.kind == "median" for r in self.stop_rules) and not self.metric:
            raise ValueError("stopIf: the median rule compares the goal metric: set metric too")
        return self

    @property
    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.parameters.values() if isinstance(v, list))

    @property
    def stop_rules(self) -> list[StopRule]:
        return parse_stop_rules(self.stop_if) if self.stop_if else []

    def to_yaml_dict(self) -> dict[str, Any]:
        data = self.model_dump(by_alias=True, exclude_defaults=True, mode="json")
        return {"apiVersion": self.api_version, "kind": self.kind, **data}
