"""Every DLW_* variable is read in dlw_magic/settings.py, so each is documented and defaulted once."""

from __future__ import annotations

import re
from pathlib import Path

import dlw_magic
from dlw_magic import settings

PACKAGE = Path(dlw_magic.__file__).parent
DIRECT_READ = re.compile(r"""(environ(\.get)?\s*[\(\[]|getenv\()\s*f?["']DLW_""")


def test_no_module_but_settings_reads_a_dlw_variable_from_the_environment():
    readers = [
        f"{path.relative_to(PACKAGE)}:{n}"
        for path in PACKAGE.rglob("*.py")
        if path.name != "settings.py"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if DIRECT_READ.search(line)
    ]
    assert readers == []


def test_runner_tunables_fall_back_to_their_defaults_on_a_typo():
    assert settings.from_env({"DLW_DB_BUSY_SECONDS": "sixty", "DLW_LOG_MAX_BYTES": "-1"}).db_busy_seconds == 60.0
    assert settings.from_env({"DLW_LOG_MAX_BYTES": "nan"}).log_max_bytes == 1 << 30
    tuned = settings.from_env({"DLW_DB_BUSY_SECONDS": "2.5", "DLW_LOG_MAX_BYTES": "10000"})
    assert (tuned.db_busy_seconds, tuned.log_max_bytes) == (2.5, 10000)
