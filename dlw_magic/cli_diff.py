"""``dlw diff A [B]``: the CLI (and ``%dlw diff``) face over ``dlw_magic.envdiff``.

Registered by ``dlw_magic.cli``; exit 0 whether or not the runs differ (the answer is the output).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any, backend_options: Any, output_option: Any) -> None:
    p = subparsers.add_parser("diff", help="what changed between two jobs, or a job and the notebook now")
    p.add_argument("name", help="a job")
    p.add_argument("other", nargs="?", help="another job (default: the current notebook and environment)")
    backend_options(p)
    output_option(p)
    p.set_defaults(func=cmd_diff)


def cmd_diff(args: argparse.Namespace) -> int:
    from . import format as fmt
    from .cli import backend_from
    from .envdiff import diff_jobs, render_text

    d = diff_jobs(args.name, args.other, backend_from(args))
    if args.output == "json":
        fmt.print_json(d.to_dict(), sys.stdout)
    else:
        sys.stdout.write(render_text(d))
    return 0
