"""Job output printed by ``dlw logs``: plain blocks pass as they are, anything else line by line, made safe."""

from __future__ import annotations

import io
from pathlib import Path

from dlw_magic import cli, core
from dlw_magic.backends import JobState, get_backend
from dlw_magic.textsafe import is_plain, sanitize_terminal

PLAIN = ["plain line\n", "tab\tseparated\n", "caf\u00e9 \u2192 \u00fcber\n", "no\u00a0break space\n", ""]
CHANGED = ["\x1b[2J\x1b[H", "10%\r50%\r100%\n", "a\x0bb\n", "\x9b2J\n", "x\u2028y\n", "bell\x07\n", "nul\x00\n",
           "del\x7f\n", "caf\u00e9\x1b]0;title\x07\n"]


def test_is_plain_passes_only_text_that_sanitizing_leaves_alone() -> None:
    for sample in PLAIN:
        assert is_plain(sample) and sanitize_terminal(sample) == sample, repr(sample)
    for sample in CHANGED:
        assert not is_plain(sample) and sanitize_terminal(sample) != sample, repr(sample)
    assert not is_plain("\x1b[31mred\x1b[0m\n")  # colours stay, but only the line-by-line way knows
    assert is_plain("".join(PLAIN)) and not is_plain("".join(PLAIN + CHANGED[-1:]))


LOUD = r"""
import sys
print("plain 1")
print("\x1b[31mred\x1b[0m and \x1b[2Jclear")
print("#dlw-metrics [1,1.0,{\"loss\":0.5}]")
sys.stdout.write("10%\r100%\n")
print("caf\u00e9 plain 2")
"""


def test_logs_print_plain_lines_as_they_are_and_the_rest_made_safe(dlw_home: Path, tmp_path: Path) -> None:
    script = tmp_path / "loud.py"
    script.write_text(LOUD)
    name = core.submit(core.build_spec(script, name="loud")).name
    assert core.wait(name, timeout=60).state is JobState.SUCCEEDED
    want = ["plain 1\n", "\x1b[31mred\x1b[0m and ^[[2Jclear\n", "100%\n", "caf\u00e9 plain 2\n"]
    out = io.StringIO()
    cli.stream_logs(name, None, False, get_backend(), out)
    assert out.getvalue() == "".join(want)
    assert list(core.printable_lines(name)) == want
    prefixed = "".join(core.printable_text(name, world_size=2))  # as in a job with several ranks
    assert prefixed == "".join("[rank 0] " + line for line in want)
