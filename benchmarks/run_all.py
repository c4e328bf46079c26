"""Run every benchmark (bench_*.py) in its own process; each prints one JSON line per measurement."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

here = Path(__file__).resolve().parent
failed = 0
for bench in sorted(here.glob("bench_*.py")):
    result = subprocess.run([sys.executable, str(bench), *sys.argv[1:]], cwd=here)
    failed += result.returncode != 0
sys.exit(1 if failed else 0)
