"""Hostile specs, --param values and notebooks, generated: every one is accepted or refused with a
one-line DLWError, never a traceback, through the core and through the ``dlw`` CLI."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import yaml
from fuzzing import SOURCE_FIELDS, SPEC_FIELDS, TIMEOUT, nested, python_literals, scalars, yaml_text
from hypothesis import given
from hypothesis import strategies as st

from dlw_magic import cli, core
from dlw_magic.errors import DLWError
from dlw_magic.spec import TrainingJob, parse_spec

pytestmark = pytest.mark.timeout(TIMEOUT)

NOTEBOOK = {
    "nbformat": 4, "nbformat_minor": 5, "metadata": {},
    "cells": [
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "x = 1\ny = 'a'\n",
         "outputs": [], "execution_count": None},
        {"cell_type": "code", "metadata": {}, "source": "print(x, y)\n", "outputs": [], "execution_count": None},
    ],
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    (root / "nb.ipynb").write_text(json.dumps(NOTEBOOK))
    (root / "train.py").write_text("print('hi')\n")
    return root


def accepted_or_refused(fn, *args, **kwargs):
    """The result, or None for a DLWError whose message is one line; anything else fails the test."""
    try:
        return fn(*args, **kwargs)
    except DLWError as err:
        assert "\n" not in str(err), str(err)
        return None


def round_trips(spec: TrainingJob) -> None:
    """An accepted spec can be written as YAML and JSON and read back the same."""
    data = spec.to_yaml_dict()
    json.dumps(data, allow_nan=False)
    again = parse_spec(yaml.safe_load(yaml.safe_dump(data)), "round trip")
    assert again.to_yaml_dict() == data


@given(text=yaml_text)
def test_any_yaml_text_as_an_inline_spec(text, workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    spec = accepted_or_refused(core.build_spec, spec_text=text)
    if spec is not None:
        round_trips(spec)


@given(
    fields=st.dictionaries(st.sampled_from(SPEC_FIELDS), nested(), max_size=4),
    source=st.dictionaries(st.sampled_from(SOURCE_FIELDS), nested(6), max_size=3),
)
def test_any_values_in_spec_fields(fields, source, workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    data = {"name": "fuzz", "source": {"script": "train.py", **source}, **fields}
    spec = accepted_or_refused(parse_spec, data, "fuzz.yaml")
    if spec is not None:
        round_trips(spec)


@given(value=st.one_of(yaml_text, st.text(max_size=60)))
def test_any_param_value_through_the_cli(value, workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main(["convert", "nb.ipynb", "--param", f"x={value}"])
    assert rc in (0, 1)
    if rc:
        assert err.getvalue().startswith("dlw convert: ") and err.getvalue().count("\n") == 1, err.getvalue()


@given(value=scalars)
def test_any_typed_param_value_converts_to_a_script_that_compiles(value, workdir):
    converted = accepted_or_refused(core.convert, workdir / "nb.ipynb", {"x": value})
    if converted is not None:
        compile(converted.script, "main.py", "exec")


@given(default=python_literals, override=st.one_of(st.none(), python_literals.map(repr), st.text(max_size=20)))
def test_any_literal_default_in_a_parameters_cell(default, override, tmp_path_factory):
    """Whatever literal a parameters cell holds, reading it for a form and converting the notebook give JSON
    (the job record, REST) or a one-line refusal, never a TypeError."""
    from dlw_magic.convert import read_parameters

    folder = tmp_path_factory.mktemp("lit")
    cell = f"x = {default!r}\n"
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": cell, "outputs": [],
         "execution_count": None}]}
    (folder / "p.ipynb").write_text(json.dumps(nb))
    json.dumps(accepted_or_refused(read_parameters, folder / "p.ipynb"), allow_nan=True)
    converted = accepted_or_refused(core.convert, folder / "p.ipynb", {} if override is None else {"x": override})
    if converted is not None:
        json.dumps(converted.parameters, allow_nan=True)
        compile(converted.script, "main.py", "exec")


notebook_json = st.recursive(
    scalars.filter(lambda v: not isinstance(v, float)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.sampled_from(["cells", "nbformat", "source", "cell_type", "metadata",
                                                             "tags", "x"]), inner, max_size=4)),
    max_leaves=25,
)


@given(nb=notebook_json, cells=st.lists(st.dictionaries(
    st.sampled_from(["cell_type", "source", "metadata"]),
    st.one_of(st.sampled_from(["code", "markdown", "raw"]), nested(6)), max_size=3), max_size=3))
def test_any_notebook_json(nb, cells, tmp_path_factory):
    path = tmp_path_factory.mktemp("nb") / "fuzz.ipynb"
    doc = nb if not cells else {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}
    try:
        path.write_text(json.dumps(doc))
    except UnicodeEncodeError:  # a lone surrogate: write the escape, as a JSON file would hold it
        path.write_text(json.dumps(doc, ensure_ascii=True))
    converted = accepted_or_refused(core.convert, path)
    if converted is not None:
        compile(converted.script, "main.py", "exec")
