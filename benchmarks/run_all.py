"""Run every benchmark (bench_*.py) in its own process; each prints one JSON line per measurement."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

here = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog="Other arguments are passed to every benchmark (bench_*.py --help lists them).")
    parser.add_argument("--only", metavar="NAME", action="append",
                        help="run only bench_NAME.py (repeatable), e.g. --only jobs")
    args, rest = parser.parse_known_args(argv)
    benches = sorted(here.glob("bench_*.py"))
    if args.only:
        wanted = {f"bench_{n.removeprefix('bench_').removesuffix('.py')}.py" for n in args.only}
        unknown = wanted - {b.name for b in benches}
        if unknown:
            parser.error(f"--only: no {', '.join(sorted(unknown))} (choose from "
                         f"{', '.join(b.stem.removeprefix('bench_') for b in benches)})")
        benches = [b for b in benches if b.name in wanted]
    failed = 0
    for bench in benches:
        result = subprocess.run([sys.executable, str(bench), *rest], cwd=here)
        failed += result.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
