"""The names a job's ``engine`` may take: the built-ins and every ``dlw_magic.engines`` entry point.

Names only, without importing any engine: the job spec checks a name here (it sits below the engines,
which render with it); ``dlw_magic.engines`` loads the engines themselves by the same names.
"""

from __future__ import annotations

import functools
from importlib.metadata import entry_points

BUILTIN: dict[str, str] = {
    "job": "dlw_magic.engines.job",
    "volcano": "dlw_magic.engines.volcano",
    "pytorchjob": "dlw_magic.engines.pytorchjob",
    "trainjob": "dlw_magic.engines.trainjob",
}
ENTRY_POINT_GROUP = "dlw_magic.engines"


@functools.cache
def names() -> list[str]:
    """Every engine a job may name, built-ins first (a built-in keeps its name over an entry point's)."""
    found = list(BUILTIN)
    found += [ep.name for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name not in BUILTIN]
    return list(dict.fromkeys(found))
