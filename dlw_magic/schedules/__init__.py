"""Recurring jobs: job definitions on a cron schedule (``dlw schedule``, ``%dlw schedule``, the lab dialog).

``api`` is what the faces call (create, list, show, pause, resume, edit, delete, run now); ``scheduler``
is one pass of the local scheduler, ``service`` the small process that runs it; ``cronjob`` renders a
definition as a Kubernetes CronJob. Definitions and runs live in ``schedules.db`` in the DLW home.
"""
