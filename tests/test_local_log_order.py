"""The "all ranks" log of a local job lists the ranks' lines in the order they were written.

The ranks take turns: each prints its line, waits until the runner has put it in its log, sleeps a
little (longer than the runner's time resolution, ``logcap.MARK_EVERY``) and hands the turn on. So the
order is fixed by the ranks themselves, not by timing.
"""

from __future__ import annotations

from pathlib import Path

from dlw_magic import core
from dlw_magic.backends import JobState
from dlw_magic.backends.local.logcap import MARK_EVERY

TURNS = 10

TAKE_TURNS = f"""
import os, pathlib, time
rank, out = int(os.environ["RANK"]), pathlib.Path(os.environ["DLW_OUTPUT_DIR"])
log = out.parent / "logs" / f"rank-{{rank}}.log"
end = time.time() + 60
for turn in range(rank, {TURNS}, 2):  # rank 0 has the even turns, rank 1 the odd ones
    while turn and not (out / f"turn-{{turn}}").exists() and time.time() < end:
        time.sleep(0.005)
    time.sleep({MARK_EVERY * 4})
    line = f"turn {{turn}} from rank {{rank}}"
    print(line, flush=True)
    while line not in log.read_text() and time.time() < end:
        time.sleep(0.005)
    (out / f"turn-{{turn + 1}}").touch()
"""

EXPECTED = [(t % 2, f"turn {t} from rank {t % 2}\n") for t in range(TURNS)]


def test_all_ranks_are_merged_in_write_order_followed_and_after_the_end(dlw_home: Path, tmp_path: Path) -> None:
    script = tmp_path / "turns.py"
    script.write_text(TAKE_TURNS)
    name = core.submit(core.build_spec(script, workers=2)).name
    followed = list(core.log_lines(name, follow=True))  # from the start, while the ranks write
    job = core.wait(name, timeout=60)
    assert job.state is JobState.SUCCEEDED, job
    assert followed == EXPECTED
    assert list(core.log_lines(name)) == EXPECTED  # read once the job has ended
    assert list(core.printable_lines(name)) == [f"[rank {r}] {line}" for r, line in EXPECTED]  # `dlw logs NAME`


def test_one_ranks_log_is_unchanged_and_resumes_from_an_offset(dlw_home: Path, tmp_path: Path) -> None:
    script = tmp_path / "turns.py"
    script.write_text(TAKE_TURNS)
    name = core.submit(core.build_spec(script, workers=2)).name
    assert core.wait(name, timeout=60).state is JobState.SUCCEEDED
    chunks = list(core.logs(name, rank=1))
    text = "".join(c.text for c in chunks)
    assert text == "".join(line for r, line in EXPECTED if r == 1)
    first = len("turn 1 from rank 1\n")
    assert "".join(c.text for c in core.logs(name, rank=1, offset=first)) == text[first:]
