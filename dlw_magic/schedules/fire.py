"""What a Kubernetes CronJob's pod runs at each fire: submit the definition's job, once, and exit.

``python -m dlw_magic.schedules.fire /etc/dlw-schedule/definition.json``. The job is named
``NAME-yymmddHHMM`` (the fire's minute in the definition's zone), so the run is linked to its definition
and a second pod for the same minute finds the name taken instead of running twice. A definition whose
notebook was deleted fails this pod with that one line (the CronJob's Job is Failed, its log says why).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from ..errors import DLWError


def fire(path: Path, now: datetime | None = None) -> str:
    from .. import core
    from ..spec import parse_spec
    from . import cron

    data = json.loads(path.read_text(encoding="utf-8"))
    when = (now or datetime.now(UTC)).astimezone(cron.zone(data["timezone"]))
    spec = parse_spec({**data["spec"], "name": f"{data['name']}-{when:%y%m%d%H%M}"}, f"schedule {data['name']}")
    return core.submit(spec).name


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        print(f"submitted {fire(Path(argv[0]))}")
    except DLWError as err:
        print(f"dlw schedule: run failed: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
