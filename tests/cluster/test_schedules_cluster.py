"""A schedule on Kubernetes through the real API server, as alice (her ServiceAccount's token, the notebook
role the chart installs): the CronJob is accepted (its schema and defaults are the server's), paused
(suspend) and deleted by `dlw schedule`; and one made to fire every minute is fired by the real CronJob
controller: its pod runs on the process kubelet under alice's ServiceAccount (the API server's projected
token, nothing else), passes DLW's pod policy, reads the notebook from alice's ReadWriteMany home as saved
and submits it; the job runs to Succeeded, and `dlw schedule show`, `dlw jobs` and `dlw logs` show the run
and its output. Once the notebook is deleted, the next fire's pod fails and `show` gives its reason."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.controlplane import ControlPlane
from tests.cluster.support import dlw, hub_kubeconfig, write_notebook


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
    # Gone once the garbage collector has let it go (a busy control plane takes a moment).
    control_plane.wait_for(lambda: control_plane.kubectl("get", "cronjobs.batch", "dlw-schedule-nightly", "-n", ns,
                                                         check=False).returncode != 0, "the CronJob gone", 60)


@pytest.fixture
def rwx_namespace(control_plane: ControlPlane, alice_rwx: dict[str, str]) -> Iterator[dict[str, str]]:
    """Alice's namespace holding the admin YAML with her home (the hub writes the admin's YAML into the
    ``dlw-workspace`` ConfigMap at each spawn), put back as it was afterwards."""
    from dlw_magic.hub import rbac

    ns = alice_rwx["DLW_NAMESPACE"]
    hub = hub_kubeconfig(control_plane)
    before = control_plane.get("configmap", rbac.WORKSPACE_CONFIGMAP, "-n", ns)["data"]
    [key] = before
    text = Path(alice_rwx["DLW_WORKSPACE_CONFIG"]).read_text()
    control_plane.apply([rbac.workspace_configmap(ns, text)], kubeconfig=hub)
    assert control_plane.get("configmap", rbac.WORKSPACE_CONFIGMAP, "-n", ns)["data"][key] == text
    try:
        yield alice_rwx
    finally:
        restored = rbac.workspace_configmap(ns, before[key])
        control_plane.apply([restored], kubeconfig=hub)


def _fire_pod(cp: ControlPlane, ns: str, name: str) -> dict[str, Any] | None:
    """The first fire's pod once it has finished; a failed one fails the test with its log."""
    pods = [p for p in cp.get("pods", "-n", ns, "-l", f"dlw.dev/schedule={name}")["items"]
            if p["status"].get("phase") in ("Succeeded", "Failed")]
    pods.sort(key=lambda p: p["metadata"]["creationTimestamp"])
    if pods and pods[0]["status"]["phase"] == "Failed":
        log = cp.kubectl("logs", pods[0]["metadata"]["name"], "-n", ns, check=False)
        pytest.fail(f"the fire pod failed: {pods[0]['status']}\n{log.stdout[-3000:]}{log.stderr[-1000:]}")
    return pods[0] if pods else None


def test_the_cronjob_controller_fires_a_schedule_whose_job_runs(control_plane: ControlPlane,
                                                                rwx_namespace: dict[str, str],
                                                                tmp_path: Path) -> None:
    cp, ns = control_plane, rwx_namespace["DLW_NAMESPACE"]
    env = {**rwx_namespace, "DLW_HOME": str(tmp_path / "dlw-home"), "DLW_SCHEDULER_AUTOSTART": "0"}
    home = Path(env["DLW_HOME_MOUNT"])
    # The notebook in alice's home, where her notebook pod and the fire pod both see it (the claim's folder).
    nb = write_notebook(home / "minutely.ipynb", ["import os", "print('fired at', os.environ['HOSTNAME'])"])
    out = dlw("schedule", "create", str(nb), "--cron", "* * * * *", "--name", "minutely", env=env, cwd=home)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    try:
        # The CronJob controller fires at the next full minute; the Job controller makes the pod, the
        # scheduler puts it on the CPU node, the process kubelet runs it.
        pod = cp.wait_for(lambda: _fire_pod(cp, ns, "minutely"), "the first fire's pod finished", 150, every=2)
        spec = pod["spec"]
        assert spec["serviceAccountName"] == "dlw-notebook" and spec["nodeName"] == "cpu-0"
        [owner] = pod["metadata"]["ownerReferences"]
        fire_job = cp.get("jobs.batch", owner["name"], "-n", ns)
        assert fire_job["metadata"]["ownerReferences"][0]["name"] == "dlw-schedule-minutely"  # the CronJob's
        # Its only credential is the projected token the API server's ServiceAccount admission put there.
        [api_access] = [v for v in spec["volumes"] if v["name"].startswith("kube-api-access-")]
        assert any("serviceAccountToken" in s for s in api_access["projected"]["sources"])
        assert not [e for e in spec["containers"][0]["env"] if "KUBECONFIG" in e["name"]]
        log = cp.kubectl("logs", pod["metadata"]["name"], "-n", ns).stdout
        m = re.fullmatch(r"submitted (minutely-\d{10})", log.strip().splitlines()[-1])
        assert m, log
        job = m.group(1)
        [made] = cp.get("jobs.batch", "-n", ns, "-l", f"dlw.dev/job={job}")["items"]
        assert made["metadata"]["labels"]["dlw.dev/user"] == "alice"

        def finished() -> dict[str, Any] | None:
            st = dlw("status", job, "-o", "json", env=env)
            assert st.returncode == 0, st.stderr
            got = json.loads(st.stdout)
            return got if got["state"] in ("Succeeded", "Failed") else None

        final = cp.wait_for(finished, f"{job} finished", 180, every=3)
        assert final["state"] == "Succeeded", final
        logs = dlw("logs", job, env=env)
        assert logs.returncode == 0 and "fired at" in logs.stdout, logs.stdout[-2000:] + logs.stderr[-2000:]
        jobs = dlw("jobs", env=env).stdout
        assert re.search(rf"^{job}\s.*Succeeded", jobs, re.M), jobs
        shown = dlw("schedule", "show", "minutely", env=env)
        assert shown.returncode == 0, shown.stderr
        assert re.search(rf"^\s+\S+ \S+ \S+\s+{job}\s+Succeeded", shown.stdout, re.M), shown.stdout
        listed = json.loads(dlw("schedule", "list", "-o", "json", env=env).stdout)
        assert {s["name"]: s["runs"] != [] for s in listed}["minutely"], listed

        # A fire whose notebook is gone fails its pod with the reason, and `dlw schedule show` lists it so.
        nb.unlink()
        failed = re.compile(r"^\s+\S+ \S+ \S+\s+-\s+Failed\s+SubmitFailed: .*minutely\.ipynb: notebook not found", re.M)

        seen: list[str] = []

        def failed_fire_shown() -> str | None:
            seen.append(dlw("schedule", "show", "minutely", env=env).stdout)
            return seen[-1] if failed.search(seen[-1]) else None

        try:
            shown_text = cp.wait_for(failed_fire_shown, "show: a failed fire with its reason", 150, every=5)
        except AssertionError:
            pods = cp.get("pods", "-n", ns, "-l", "dlw.dev/schedule=minutely")["items"]
            logs = [cp.kubectl("logs", p["metadata"]["name"], "-n", ns, check=False).stdout[-1500:] for p in pods
                    if p["status"].get("phase") == "Failed"]
            pytest.fail(f"show said:\n{seen[-1]}\nfailed fire pods' logs: {logs}")
        assert re.search(rf"^\s+\S+ \S+ \S+\s+{job}\s+Succeeded", shown_text, re.M), shown_text  # still there
    finally:
        deleted = dlw("schedule", "delete", "minutely", env=env)
    assert deleted.returncode == 0, deleted.stderr
    # Deleted in the foreground: the CronJob goes once the garbage collector has removed its fire Jobs.
    cp.wait_for(lambda: cp.kubectl("get", "cronjobs.batch", "dlw-schedule-minutely", "-n", ns,
                                   check=False).returncode != 0, "the CronJob gone", 60)
    assert re.search(rf"^{job}\s", dlw("jobs", env=env).stdout, re.M)  # its runs stay as ordinary jobs
