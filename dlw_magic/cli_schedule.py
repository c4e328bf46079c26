"""``dlw schedule ...``: the CLI (and ``%dlw schedule``) face over ``dlw_magic.schedules.api``.

    dlw schedule create NOTEBOOK --cron '0 3 * * *' [--name NAME] [--timezone TZ] [--concurrency forbid|replace|allow]
                                 [--starting-deadline 10m] [--keep N] [job options: --workers, --param, ...]
    dlw schedule list | show NAME | pause NAME | resume NAME | delete NAME | run NAME
    dlw schedule edit NAME [--cron ...] [--timezone ...] [--concurrency ...] [--starting-deadline ...] [--keep N]
                           [job options]
    dlw schedule serve                 the local scheduler in the foreground (systemd, or by hand)

Registered by ``dlw_magic.cli``; job options only load (pydantic) when the command is ``schedule``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _policy_options(p: argparse.ArgumentParser, creating: bool) -> None:
    p.add_argument("--cron", required=creating, help="five cron fields ('0 3 * * *') or @hourly, @daily, @weekly, ...")
    p.add_argument("--timezone", "--tz", dest="timezone", default="UTC" if creating else None,
                   help="IANA time zone the cron fields mean (default UTC), e.g. Europe/Berlin")
    p.add_argument("--concurrency", default="Forbid" if creating else None, metavar="POLICY",
                   help="when a run is still active at the next fire: forbid (skip, default), replace, allow")
    p.add_argument("--starting-deadline", default=None, metavar="DURATION",
                   help="a fire missed by more than this is skipped (e.g. 10m); default: run the newest missed fire")
    p.add_argument("--keep", type=int, default=5 if creating else None, metavar="N",
                   help="finished runs kept (older ones are deleted; default 5)")


def register(subparsers: Any, backend_options: Any, output_option: Any, command: str | None) -> None:
    with_options = command in (None, "schedule")  # `dlw jobs` need not import pydantic
    sched = subparsers.add_parser("schedule", help="run a notebook on a schedule (job definitions)")
    sub = sched.add_subparsers(dest="schedule_command", metavar="ACTION", required=True)

    p = sub.add_parser("create", help="a new job definition: a notebook, its job options and a cron schedule")
    p.add_argument("target", help="notebook (.ipynb), script (.py) or job spec (.yaml)")
    _policy_options(p, creating=True)
    if with_options:
        from .options import add_arguments

        add_arguments(p)  # --name names the schedule; each run is NAME-yymmddHHMM
    backend_options(p)
    output_option(p)
    p.set_defaults(func=cmd_create)

    p = sub.add_parser("list", help="your job definitions, their next run and last job")
    backend_options(p)
    output_option(p)
    p.set_defaults(func=cmd_list)

    for action, helptext, func in (
        ("show", "one definition and its runs", cmd_show),
        ("pause", "stop firing (runs in progress go on)", cmd_pause),
        ("resume", "fire again from the next time on (missed fires are not made up)", cmd_resume),
        ("delete", "forget the definition (its runs stay, as ordinary jobs)", cmd_delete),
        ("run", "start a run now, outside the schedule", cmd_run),
    ):
        p = sub.add_parser(action, help=helptext)
        p.add_argument("schedule", metavar="NAME")
        backend_options(p)
        output_option(p)
        p.set_defaults(func=func)

    p = sub.add_parser("edit", help="change the schedule, its policies or the job's options")
    p.add_argument("schedule", metavar="NAME")
    _policy_options(p, creating=False)
    if with_options:
        from .options import add_arguments

        add_arguments(p)
    backend_options(p)
    output_option(p)
    p.set_defaults(func=cmd_edit)

    p = sub.add_parser("serve", help="run the local scheduler in the foreground (for systemd or a terminal)")
    p.set_defaults(func=cmd_serve)


def _backend(args: argparse.Namespace) -> Any:
    from .cli import backend_from

    return backend_from(args)


def _options(args: argparse.Namespace) -> Any:
    from .cli import job_options

    saved, args.name = args.name, None  # --name is the schedule's
    try:
        return job_options(args)
    finally:
        args.name = saved


def _print(shown: Any, args: argparse.Namespace) -> None:
    from . import format as fmt

    fmt.print_json(shown.to_dict(), sys.stdout)


def cmd_create(args: argparse.Namespace) -> int:
    from .schedules import api, service

    backend = _backend(args)
    d = api.create(args.target, args.cron, name=args.name, tz=args.timezone, concurrency=args.concurrency,
                   starting_deadline=args.starting_deadline, keep=args.keep, options=_options(args), backend=backend)
    shown = api.show(d.name, backend=backend)
    if args.output == "json":
        _print(shown, args)
        return 0
    print(f"Scheduled {d.name}: {api.describe(d)}; next run {api.stamp(_ts(shown.next_fire), d.timezone)}")
    if d.backend == "local":
        home = api.store_for().path.parent
        started = service.ensure_running(home) if _autostart() else False
        print("the local scheduler " + ("started" if started else "runs") + " while this machine is up "
              f"(log: {home}/scheduler.log; see docs/schedules.md for a systemd unit)")
    return 0


def _autostart() -> bool:
    from . import settings

    return settings.current().scheduler_autostart


def _ts(when: Any) -> float | None:
    return when.timestamp() if when is not None else None


def cmd_list(args: argparse.Namespace) -> int:
    from . import format as fmt
    from .schedules import api

    shown = api.list_definitions(backend=_backend(args))
    if args.output == "json":
        fmt.print_json([s.to_dict() for s in shown], sys.stdout)
        return 0
    if not shown:
        print("No schedules. Create one with: dlw schedule create NOTEBOOK.ipynb --cron '0 3 * * *'")
        return 0
    rows = [("NAME", "SCHEDULE", "NEXT RUN", "LAST JOB", "STATE")]
    for s in shown:
        d = s.definition
        last = next((r for r in s.runs), None)
        rows.append((d.name, api.describe(d), "paused" if d.paused else api.stamp(_ts(s.next_fire), d.timezone),
                     (last.get("job") or "-") if last else "-", last["state"] if last else "-"))
    widths = [max(len(str(r[i])) for r in rows) for i in range(5)]
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from .schedules import api

    s = api.show(args.schedule, backend=_backend(args))
    if args.output == "json":
        _print(s, args)
        return 0
    d = s.definition
    print(f"Name:        {d.name}")
    print(f"Schedule:    {api.describe(d)}")
    print(f"Next run:    {'paused' if d.paused else api.stamp(_ts(s.next_fire), d.timezone)}")
    print(f"Source:      {d.notebook}")
    print(f"Policies:    concurrency {d.concurrency}, starting deadline "
          f"{d.starting_deadline if d.starting_deadline is not None else 'none'}, keep {d.keep}")
    print(f"Backend:     {d.backend}" + (f" (CronJob {d.extra.get('cronJob')})" if d.extra.get("cronJob") else ""))
    print("Runs:" if s.runs else "Runs:        none yet")
    for r in s.runs:
        why = ": ".join(str(x) for x in (r.get("reason"), r.get("message")) if x)
        why = f"  {why}" if why else ""
        why += f"  {r['metrics']}" if r.get("metrics") else ""
        print(f"  {api.stamp(r['scheduled'], d.timezone)}  {r.get('job') or '-'}  {r['state']}{why}")
    return 0


def cmd_pause(args: argparse.Namespace) -> int:
    from .schedules import api

    d = api.set_paused(args.schedule, True, backend=_backend(args))
    print(f"{d.name}: paused")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from .schedules import api

    d = api.set_paused(args.schedule, False, backend=_backend(args))
    print(f"{d.name}: resumed ({api.describe(d)})")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from .schedules import api

    api.delete(args.schedule, backend=_backend(args))
    print(f"{args.schedule}: deleted (its runs stay: dlw jobs)")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from . import format as fmt
    from .schedules import api

    job = api.run_now(args.schedule, backend=_backend(args))
    if args.output == "json":
        fmt.print_json(job.to_dict(), sys.stdout)
    else:
        print(f"Submitted {job.name} (schedule {args.schedule}); follow with: dlw logs -f {job.name}")
    return 0


def cmd_edit(args: argparse.Namespace) -> int:
    from .errors import DLWError
    from .schedules import api

    if args.name:
        raise DLWError("--name: a schedule keeps its name (create a new one, then delete this one)")
    d = api.edit(args.schedule, cron_expr=args.cron, tz=args.timezone, concurrency=args.concurrency,
                 starting_deadline=args.starting_deadline, keep=args.keep, options=_options(args),
                 backend=_backend(args))
    print(f"{d.name}: {api.describe(d)}, concurrency {d.concurrency}, keep {d.keep}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .schedules import service

    return service.main([])
