"""Why a job failed, in one line: the last exception line of the failing rank's log.

A researcher should not have to open the log to learn that rank 1 hit ``ValueError: lr must be
positive``. The local backend calls ``exception_line`` on the failing rank's log when it records the
failure, so ``dlw status``, the panel row and the widget all show it.
"""

from __future__ import annotations

import re
from pathlib import Path

TAIL_BYTES = 16 * 1024
MAX_CHARS = 200
# ``ValueError: boom``, ``torch.cuda.OutOfMemoryError: ...``, ``KeyboardInterrupt``: how Python ends a traceback.
_EXCEPTION = re.compile(r"^(?:[A-Za-z_][\w]*\.)*[A-Za-z_]\w*(?:Error|Exception|Interrupt|Exit)(?::\s.*)?$")


def exception_line(text: str) -> str | None:
    """The last line of ``text`` that ends a Python traceback, shortened to one readable line."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if _EXCEPTION.match(line):
            return line if len(line) <= MAX_CHARS else line[: MAX_CHARS - 1] + "…"
    return None


def log_exception_line(log: Path) -> str | None:
    """``exception_line`` of the end of a log file (None when it cannot be read)."""
    try:
        with open(log, "rb") as f:
            f.seek(0, 2)
            f.seek(max(f.tell() - TAIL_BYTES, 0))
            return exception_line(f.read().decode("utf-8", errors="replace"))
    except OSError:
        return None
