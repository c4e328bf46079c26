"""Notebook -> job script: which cells are kept, parameters and their types, IPython syntax, bad notebooks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dlw_magic.convert import convert_notebook, describe_parameters, read_parameters
from dlw_magic.errors import DLWError, NotFound
from dlw_magic.launch import split_cells

PARAMS = "epochs = 3  # passes over the data\nlr = 0.1\nuse_amp = False\nname = 'digits'\nlayers = [64, 32]\n"


def code(source: str, *tags: str) -> dict[str, Any]:
    meta = {"tags": list(tags)} if tags else {}
    return {"cell_type": "code", "execution_count": None, "metadata": meta, "outputs": [], "source": source}


def markdown(source: str) -> dict[str, Any]:
    return {"cell_type": "markdown", "metadata": {}, "source": source}


def write_nb(folder: Path, cells: list[dict[str, Any]], name: str = "nb.ipynb") -> Path:
    path = folder / name
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}
    path.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return path


def run_script(script: str) -> dict[str, Any]:
    """Exec a converted script that needs no IPython; its resulting namespace."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(script, "main.py", "exec"), namespace)
    return namespace


def convert_error(path: Path, params: dict[str, Any] | None = None) -> str:
    with pytest.raises(DLWError) as info:
        convert_notebook(path, params or {})
    message = str(info.value)
    assert "\n" not in message
    return message


# --- which cells end up in the script -------------------------------------------------------------------


def test_skip_tags_drop_cells_and_markdown_becomes_comments(tmp_path: Path) -> None:
    path = write_nb(tmp_path, [
        markdown("# Training\nRead *this* first."),
        code("order = ['a']\n"),
        code("order.append('skipped')\n", "skip"),
        code("order.append('dlw-skipped')\n", "dlw-skip", "other"),
        {"cell_type": "raw", "metadata": {}, "source": "order.append('raw')"},
        code(["order.append(", "'b')\n"]),  # source as a list of strings, as Jupyter writes it
        code("   \n"),
    ])
    script = convert_notebook(path, {}).script
    assert run_script(script)["order"] == ["a", "b"]
    assert "# # Training\n# Read *this* first.\n" in script
    assert "# %% [cell 2] nb.ipynb\n" in script and "# %% [cell 6] nb.ipynb\n" in script
    assert "skipped')" not in script and "raw')" not in script


def test_cell_markers_written_by_the_user_cannot_split_a_cell(tmp_path: Path) -> None:
    path = write_nb(tmp_path, [code("x = 1\n# %% [cell 9] other.ipynb\nx += 1\n")])
    script = convert_notebook(path, {}).script
    assert [name for name, _ in split_cells(script, "main.py")] == ["main.py", "nb.ipynb, cell 1"]
    assert run_script(script)["x"] == 2


# --- parameters -------------------------------------------------------------------------------------------


def test_read_parameters_returns_defaults_with_types_and_comments(tmp_path: Path) -> None:
    device = "device = 'cuda' if os.sep else 'cpu'\n"
    path = write_nb(tmp_path, [code("import os\n"), code(PARAMS + device, "parameters")])
    assert read_parameters(path) == {"epochs": 3, "lr": 0.1, "use_amp": False, "name": "digits", "layers": [64, 32]}
    described = {p.name: p for p in describe_parameters(path)}
    assert described["epochs"].type == "int" and described["epochs"].help == "passes over the data"
    assert not described["device"].literal and described["device"].source == "'cuda' if os.sep else 'cpu'"


def test_overrides_are_injected_after_the_parameters_cell(tmp_path: Path) -> None:
    path = write_nb(tmp_path, [
        code(PARAMS, "parameters"),
        code("seen = (epochs, lr, use_amp, name, layers)\n"),
    ])
    conv = convert_notebook(path, {"epochs": 10, "lr": 1, "layers": [8]})
    script = conv.script
    params_at, injected_at, use_at = (
        script.index("# %% [cell 1]"), script.index("# %% [injected parameters]"), script.index("# %% [cell 2]")
    )
    assert params_at < injected_at < use_at
    assert run_script(script)["seen"] == (10, 1.0, False, "digits", [8])
    assert conv.parameters == {"epochs": 10, "lr": 1.0, "use_amp": False, "name": "digits", "layers": [8]}


def test_no_overrides_means_no_injected_block_and_the_defaults(tmp_path: Path) -> None:
    path = write_nb(tmp_path, [code(PARAMS, "parameters")])
    conv = convert_notebook(path, {})
    assert "injected" not in conv.script
    assert conv.parameters["epochs"] == 3


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"epochs": "12"}, 12),  # text from `--param epochs=12` or a form field
        ({"epochs": 4.0}, 4),
        ({"lr": 2}, 2.0),
        ({"use_amp": "true"}, True),
        ({"name": 123}, "123"),  # YAML reads `name: 123` as an int
        ({"layers": (1, 2)}, [1, 2]),
        ({"lr": float("inf")}, float("inf")),
    ],
)
def test_overrides_are_coerced_to_the_type_of_the_default(tmp_path: Path, override: dict, expected: Any) -> None:
    path = write_nb(tmp_path, [code(PARAMS, "parameters")])
    conv = convert_notebook(path, override)
    (name,) = override
    assert conv.parameters[name] == expected
    assert run_script(conv.script)[name] == expected


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"epochs": "abc"}, "nb.ipynb: parameter 'epochs' expects int, got 'abc' (str)"),
        ({"epochs": 2.5}, "nb.ipynb: parameter 'epochs' expects int, got 2.5 (float)"),
        ({"epochs": True}, "nb.ipynb: parameter 'epochs' expects int, got True (bool)"),
        ({"use_amp": 1}, "nb.ipynb: parameter 'use_amp' expects bool, got 1 (int)"),
        ({"lr": None}, "nb.ipynb: parameter 'lr' expects float, got None (NoneType)"),
        ({"layers": {"a": 1}}, "nb.ipynb: parameter 'layers' expects list, got {'a': 1} (dict)"),
        ({"name": [1]}, "nb.ipynb: parameter 'name' expects str, got [1] (list)"),
    ],
)
def test_overrides_of_the_wrong_type_are_refused(tmp_path: Path, override: dict, message: str) -> None:
    path = write_nb(tmp_path, [code(PARAMS, "parameters")])
    assert convert_error(path, override) == message


def test_annotations_decide_the_type(tmp_path: Path) -> None:
    source = "ckpt: str | None = None\nsteps: 'int' = 0\nanything = None\nrate: Optional[float] = 0.5\n"
    path = write_nb(tmp_path, [code(source, "parameters")])
    conv = convert_notebook(path, {"ckpt": "last.pt", "steps": "7", "anything": {"k": [1, None]}, "rate": None})
    assert conv.parameters == {"ckpt": "last.pt", "steps": 7, "anything": {"k": [1, None]}, "rate": None}
    assert "anything = {'k': [1, None]}\n" in conv.script
    assert convert_error(path, {"ckpt": [1]}) == "nb.ipynb: parameter 'ckpt' expects str or None, got [1] (list)"


def test_a_parameter_the_cell_does_not_define_is_injected_after_it_with_a_notice(tmp_path: Path) -> None:
    path = write_nb(tmp_path, [code("print('setup')\n"), code(PARAMS, "parameters"),
                               code("print(epoch, seed)\n")])
    conv = convert_notebook(path, {"epoch": 5, "seed": 7, "epochs": "2"})
    assert conv.parameters["seed"] == 7 and conv.parameters["epochs"] == 2
    # as papermill does: after the parameters cell, before the cell that reads them
    injected = conv.script.index("seed = 7\n")
    assert conv.script.index("epoch = 5\n") > conv.script.index("# %% [cell 2]") and injected > 0
    assert injected < conv.script.index("print(epoch, seed)")
    assert conv.notes == [
        "parameter 'epoch' is not in the parameters cell: set as a new variable after it; did you mean 'epochs'?",
        "parameter 'seed' is not in the parameters cell: set as a new variable after it",
    ]
    ns: dict = {}
    exec(compile(conv.script.replace("print(epoch, seed)", "got = (epoch, seed, epochs)"), "main.py", "exec"), ns)
    assert ns["got"] == (5, 7, 2)


def test_overrides_without_a_parameters_cell_are_refused(tmp_path: Path) -> None:
    path = write_nb(tmp_path, [code("epochs = 3\n")])
    assert convert_error(path, {"epochs": 5}) == (
        "nb.ipynb: parameters given (epochs) but the notebook has no cell tagged 'parameters'"
    )


def test_parameters_cell_is_kept_even_if_tagged_skip(tmp_path: Path) -> None:
    path = write_nb(tmp_path, [code("epochs = 3\n", "parameters", "skip"), code("seen = epochs\n")])
    assert run_script(convert_notebook(path, {"epochs": 9}).script)["seen"] == 9


def test_unsupported_value_types_are_refused(tmp_path: Path) -> None:
    import datetime

    path = write_nb(tmp_path, [code("when = None\n", "parameters")])
    assert convert_error(path, {"when": datetime.date(2026, 1, 1)}) == (
        "nb.ipynb: parameter 'when': unsupported value type date (use int, float, bool, str, list, dict or None)"
    )


# --- IPython syntax ---------------------------------------------------------------------------------------


def test_ipython_syntax_becomes_get_ipython_calls(tmp_path: Path) -> None:
    path = write_nb(tmp_path, [
        code("import os\n"),
        code("%pip install -q tqdm\nfiles = !ls\nif files:\n    !echo many\n%time n = len(files)\n"),
        code("%%bash\necho from bash\n"),
    ])
    conv = convert_notebook(path, {})
    assert conv.uses_ipython
    assert "get_ipython().run_line_magic('pip', 'install -q tqdm')\n" in conv.script
    assert "files = get_ipython().getoutput('ls')\n" in conv.script
    assert "    get_ipython().system('echo many')\n" in conv.script
    assert "get_ipython().run_cell_magic('bash', '', 'echo from bash\\n')" in conv.script
    compile(conv.script, "main.py", "exec")  # valid Python on its own


def test_plain_python_notebook_needs_no_ipython(tmp_path: Path) -> None:
    path = write_nb(tmp_path, [code("x = 5 % 3\ny = (x\n% 2)\n")])
    conv = convert_notebook(path, {})
    assert not conv.uses_ipython and "get_ipython" not in conv.script
    assert run_script(conv.script)["y"] == 0


def test_dlw_magics_are_removed(tmp_path: Path) -> None:
    path = write_nb(tmp_path, [
        code("%load_ext dlw_magic\n"),
        code("%%dlw train\nworkers: 2\n"),
        code("x = 1\n%dlw train --workers 2\nif x:\n    %dlw status\n"),
    ])
    conv = convert_notebook(path, {})
    assert "'dlw'" not in conv.script and "dlw_magic')" not in conv.script and "workers: 2" not in conv.script
    assert "# %% [cell 1]" not in conv.script and "# %% [cell 2]" not in conv.script
    assert run_script(conv.script)["x"] == 1  # `pass` keeps the `if` block valid; nothing needs IPython
    assert any("cell 2: dropped the %%dlw cell" in note for note in conv.notes)


def test_display_only_magics_are_dropped(tmp_path: Path) -> None:
    path = write_nb(tmp_path, [
        code("%matplotlib inline\nimport math\n"),
        code("%%html\n<b>bold</b>\n"),
        code("%config InlineBackend.figure_format = 'retina'\n"),
    ])
    conv = convert_notebook(path, {})
    assert "matplotlib" not in conv.script.replace("dropped %matplotlib inline", "")
    assert "<b>" not in conv.script and "InlineBackend" not in conv.script
    assert "math" in run_script(conv.script)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("x = 1\n%debug\n", "nb.ipynb: cell 1: %debug at line 2 cannot run in a job: it opens an interactive debugger"),
        ("%store x\n", "nb.ipynb: cell 1: %store x at line 1 cannot run in a job: a job starts fresh"),
    ],
)
def test_interactive_magics_are_refused(tmp_path: Path, source: str, message: str) -> None:
    path = write_nb(tmp_path, [code(source)])
    assert convert_error(path).startswith(message)


def test_syntax_errors_name_the_cell_and_line(tmp_path: Path) -> None:
    path = write_nb(tmp_path, [code("x = 1\n"), markdown("text"), code("y = 2\nprint(y))\n")])
    assert convert_error(path) == "nb.ipynb: cell 3: invalid syntax at line 2: unmatched ')': print(y))"
    bad_magic = write_nb(tmp_path, [code("!echo ok\nfor i in range(3)\n    pass\n")], name="magic.ipynb")
    assert convert_error(bad_magic).startswith("magic.ipynb: cell 1: invalid syntax at line 2: ")


# --- bad notebooks ----------------------------------------------------------------------------------------


def test_missing_notebook(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=r"nope\.ipynb: notebook not found$"):
        convert_notebook(tmp_path / "nope.ipynb", {})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"cells": [\n  {"cell_type": "code",,}]}',
         "nb.ipynb: not a valid notebook: invalid JSON at line 2, column 24"),
        ("[1, 2]", "nb.ipynb: not a valid notebook: expected a JSON object, got list"),
        ('{"metadata": {}}', "nb.ipynb: not a valid notebook: no 'nbformat' and no 'cells'"),
        ('{"nbformat": 3, "worksheets": []}', "nb.ipynb: unsupported nbformat 3 (DLW reads nbformat 4"),
        ('{"nbformat": 4, "cells": {}}', "nb.ipynb: not a valid notebook: 'cells' must be a list"),
        ('{"nbformat": 4, "cells": [{"cell_type": "code", "source": 5}]}',
         "nb.ipynb: cell 1: 'source' must be a string or a list of strings"),
        ('{"nbformat": 4, "cells": [{"cell_type": "widget"}]}', "nb.ipynb: cell 1: unknown cell_type 'widget'"),
    ],
)
def test_malformed_notebooks_give_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "nb.ipynb"
    path.write_text(text, encoding="utf-8")
    assert convert_error(path).startswith(message)
    with pytest.raises(DLWError):
        read_parameters(path)


def test_notebook_is_never_modified(tmp_path: Path) -> None:
    path = write_nb(tmp_path, [code(PARAMS, "parameters"), code("%time x = 1\n!echo hi\n%dlw train\n")])
    before, stat = path.read_bytes(), path.stat()
    convert_notebook(path, {"epochs": 7})
    read_parameters(path)
    assert path.read_bytes() == before
    assert path.stat().st_mtime_ns == stat.st_mtime_ns
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nb.ipynb"]


def test_every_parameters_cell_gets_its_overrides(tmp_path: Path) -> None:
    path = write_nb(tmp_path, [
        code("epochs = 3\n", "parameters"),
        code("first = epochs\n"),
        code("lr = 0.1\nepochs = 4\n", "parameters"),
        code("second = (epochs, lr)\n"),
    ])
    conv = convert_notebook(path, {"epochs": 8, "lr": 0.5})
    namespace = run_script(conv.script)
    assert (namespace["first"], namespace["second"]) == (8, (8, 0.5))
    assert read_parameters(path) == {"lr": 0.1, "epochs": 4}


def _imports_after_converting(path: Path) -> str:
    """Convert in a fresh interpreter; report whether `!echo` became a shell call and what got imported."""
    import subprocess
    import sys

    probe = (
        "import sys; from pathlib import Path; from dlw_magic.convert import convert_notebook; "
        f"script = convert_notebook(Path({str(path)!r}), {{}}).script; "
        "print(\"get_ipython().system('echo hi')\" in script, "
        "sorted(m for m in ('IPython', 'nbformat', 'nbconvert') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_plain_python_notebooks_convert_without_ipython_or_nbformat(tmp_path: Path) -> None:
    # `dlw train` pays for every import: a notebook of plain Python needs json and nothing more.
    assert _imports_after_converting(write_nb(tmp_path, [code("x = 1\n"), code("print(x)\n")])) == "False []\n"


def test_magics_convert_without_nbformat_or_nbconvert(tmp_path: Path) -> None:
    # IPython's transformer is loaded alone where IPython allows it (8.x); 9.x's needs the package.
    path = write_nb(tmp_path, [code("x = 1\n"), code("!echo hi\n%time y = 2\n")])
    out = _imports_after_converting(path)
    assert out.startswith("True [")
    assert "nbformat" not in out and "nbconvert" not in out
