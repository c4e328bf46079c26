"""Hypothesis settings and strategies shared by the fuzz suites (tests/test_fuzz_*.py).

Profiles: ``ci`` (the default, modest example counts so the suites stay well under a minute on two
cores) and ``thorough`` (``HYPOTHESIS_PROFILE=thorough``, for a long local run).
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

settings.register_profile(
    "ci", max_examples=60, deadline=None, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile(
    "thorough", max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "3000")), deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Text a person or an attacker might type: YAML syntax, escapes, controls, surrogates, huge digits.
YAML_TOKENS = [
    ": ", "- ", "\n", "  ", "{", "}", "[", "]", ",", "&a ", "*a", "!!set ", "!!binary ", "!!python/name:os.system ",
    "!x ", "? ", "|", ">", '"', "'", "\\0", "\\ud800", "\\x1b", "#", "---", "...", "<<: ", "~", "null", "true",
    ".nan", ".inf", "0x1F", "1e999", "9" * 30, "2024-01-01", "name", "source", "notebook", "script", "parameters",
    "workers", "secrets", "files", "env", "timeout", "priority", "../", "/etc/hostname", "nb.ipynb", "train.py",
]
yaml_text = st.lists(
    st.one_of(st.sampled_from(YAML_TOKENS), st.text(max_size=8)), max_size=40
).map("".join)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**120, max_value=10**130),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.sampled_from(["\x00", "\ud800", "a\udcffb", "\x1b[2J", "../../etc"]),
    st.builds(lambda: "x" * 100_001),  # over the string limit (built, so reports stay short)
)


def nested(max_leaves: int = 20) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
        max_leaves=max_leaves,
    )


SPEC_FIELDS = [
    "name", "source", "parameters", "image", "build", "resources", "workers", "processesPerWorker", "engine",
    "queue", "priority", "volumes", "env", "secrets", "retries", "timeout", "apiVersion", "kind",
]
SOURCE_FIELDS = ["notebook", "script", "args", "workdir", "files"]

# A test's time limit: generous for a thorough run, which tries thousands of inputs per test.
TIMEOUT = 120 if settings.default.max_examples <= 100 else 3600


# Literals a parameters cell may hold as a default: JSON's values and Python's others (sets, tuples, bytes,
# complex numbers, Ellipsis), nested; written into a cell with repr().
python_literals = st.recursive(
    st.one_of(scalars.filter(lambda v: not (isinstance(v, str) and len(v) > 1000)), st.binary(max_size=8),
              st.complex_numbers(max_magnitude=1e6, allow_nan=False), st.just(...),
              st.integers(min_value=10**300, max_value=10**310)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.tuples(inner, inner),
        st.frozensets(st.one_of(st.integers(), st.text(max_size=4)), max_size=4).map(set),
        st.dictionaries(st.one_of(st.text(max_size=4), st.integers()), inner, max_size=3)),
    max_leaves=12,
)
