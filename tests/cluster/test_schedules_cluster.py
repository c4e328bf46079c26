"""A schedule on Kubernetes through the real API server, as alice (her ServiceAccount's token, the notebook
role the chart installs): the CronJob is accepted (its schema and defaults are the server's), paused
(suspend) and deleted by `dlw schedule`. Whether the CronJob controller fires it is not waited for here
(that takes a real minute)."""

from __future__ import annotations

from pathlib import Path

from tests.cluster.controlplane import ControlPlane
from tests.cluster.support import dlw, write_notebook


def test_schedule_is_a_cronjob_the_api_server_accepts(control_plane: ControlPlane, alice: dict[str, str],
                                                      tmp_path: Path) -> None:
    env = {**alice, "DLW_HOME": str(tmp_path / "home"), "DLW_SCHEDULER_AUTOSTART": "0"}
    ns = alice["DLW_NAMESPACE"]
    nb = write_notebook(tmp_path / "nightly.ipynb", ["print('hello')"])
    out = dlw("schedule", "create", str(nb), "--cron", "@daily", "--timezone", "Europe/Berlin", "--name", "nightly",
              "--concurrency", "replace", "--starting-deadline", "10m", "--keep", "2", env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    cj = control_plane.get("cronjobs.batch", "dlw-schedule-nightly", "-n", ns)
    spec = cj["spec"]
    assert (spec["schedule"], spec["timeZone"], spec["concurrencyPolicy"]) == ("0 0 * * *", "Europe/Berlin", "Replace")
    assert (spec["startingDeadlineSeconds"], spec["successfulJobsHistoryLimit"], spec["suspend"]) == (600, 2, False)
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "dlw/notebook:0.1.0"

    assert dlw("schedule", "pause", "nightly", env=env).returncode == 0
    assert control_plane.get("cronjobs.batch", "dlw-schedule-nightly", "-n", ns)["spec"]["suspend"] is True

    bad = dlw("schedule", "create", str(nb), "--cron", "0 0 30 2 *", "--name", "never", env=env)
    assert bad.returncode == 1 and "never fires" in bad.stderr  # refused before the cluster sees it
    assert control_plane.kubectl("get", "cronjobs.batch", "dlw-schedule-never", "-n", ns, check=False).returncode != 0

    assert dlw("schedule", "delete", "nightly", env=env).returncode == 0
    gone = control_plane.kubectl("get", "cronjobs.batch", "dlw-schedule-nightly", "-n", ns, check=False)
    assert gone.returncode != 0
