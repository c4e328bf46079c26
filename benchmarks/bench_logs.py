"""(d) Log follow throughput vs reading the file. Goal: at least half the file-read throughput.

A finished job with a 200 MB rank log: `core.logs(..., follow=True)` (the chunks the magic and the lab
panel use) against reading the same file in the same chunk size and decoding it; and what `dlw logs -f`
prints (`cli.stream_logs`: whole lines, metrics lines left out, made terminal-safe, into a sink that
only counts) against reading the file's lines.

Then all ranks of a two-rank job (100 MB each) merged in write order, the ranks taking turns every 16 KiB
(a dated piece each, the worst case for the merge): `core.log_lines` against reading both files by line.
"""

from __future__ import annotations

import os
import struct
import sys
import tempfile
from pathlib import Path

from _common import report, timed

LINES = 2_000_000
LINE = "step 123456 loss 0.123456 acc 0.98765 lr 0.0010 throughput 1234.5 samples/s\n"


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="dlw-bench-") as tmp:
        home = Path(tmp) / "home"
        os.environ.update(DLW_HOME=str(home), DLW_BACKEND="local")
        script = Path(tmp) / "noop.py"
        script.write_text("pass\n")
        from dlw_magic import cli, core
        from dlw_magic.backends import get_backend

        backend = get_backend()

        name = core.submit(core.build_spec(script, name="logs")).name
        job = core.wait(name, timeout=60)
        log = Path(job.output_dir).parent / "logs" / "rank-0.log"
        log.write_text(LINE * LINES)
        size = log.stat().st_size

        def follow() -> None:
            n = sum(len(c.text) for c in core.logs(name, rank=0, follow=True))
            assert n == size

        def read_file() -> None:
            n = 0
            with open(log, "rb") as f:
                while chunk := f.read(1 << 20):
                    n += len(chunk.decode())
            assert n == size

        class Sink:
            n = 0

            def write(self, text: str) -> None:
                self.n += len(text)

            def flush(self) -> None:
                pass

        def follow_lines() -> None:
            sink = Sink()
            cli.stream_logs(name, 0, True, backend, sink)  # type: ignore[arg-type]
            assert sink.n == size

        def read_lines() -> None:
            with open(log, encoding="utf-8") as f:
                assert sum(1 for _ in f) == LINES

        mb = size / 1e6
        t_follow, t_read = timed(follow, 3), timed(read_file, 3)
        t_follow_lines, t_read_lines = timed(follow_lines, 3), timed(read_lines, 3)
        report("log_follow_throughput", follow_mb_s=mb / t_follow, baseline_read_mb_s=mb / t_read,
               ratio=t_read / t_follow, lines_follow_mb_s=mb / t_follow_lines,
               lines_baseline_mb_s=mb / t_read_lines, lines_ratio=t_read_lines / t_follow_lines,
               goal="ratio >= 0.5", met=t_read / t_follow >= 0.5 and t_read_lines / t_follow_lines >= 0.5)
        sys.stdout.flush()

        two = core.submit(core.build_spec(script, name="logs2", workers=2)).name
        logs = Path(core.wait(two, timeout=60).output_dir).parent / "logs"
        half = LINE * (LINES // 2)
        piece = 16 * 1024
        for rank in (0, 1):
            (logs / f"rank-{rank}.log").write_text(half)
            records = [struct.pack("=Qd", at, 1e9 + 2 * (at // piece) + rank) for at in range(0, len(half), piece)]
            (logs / f"rank-{rank}.times").write_bytes(b"".join(records))

        def merged_lines() -> None:
            assert sum(1 for _ in core.log_lines(two, follow=True)) == LINES // 2 * 2

        def read_both() -> None:
            n = 0
            for rank in (0, 1):
                with open(logs / f"rank-{rank}.log", encoding="utf-8") as f:
                    n += sum(1 for _ in f)
            assert n == LINES // 2 * 2

        t_merged, t_both = timed(merged_lines, 3), timed(read_both, 3)
        report("log_all_ranks_merged", merged_mb_s=mb / t_merged, baseline_read_mb_s=mb / t_both,
               ratio=t_both / t_merged)


if __name__ == "__main__":
    main()
