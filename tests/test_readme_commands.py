"""The README's commands, run as a newcomer types them: from the checkout, in a new shell whose PATH does
not have ``.venv/bin`` (only ``source .venv/bin/activate`` puts it there), with a home of their own.

Every command in the README's ``bash`` blocks must be listed in COVERED with the test that runs it, so a
README that gains or changes a command fails here until a test runs the new one. Servers listen on
127.0.0.1 on free ports (the README's ``--port 8000`` becomes a free port; nothing else changes).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from test_hub_local import run_in_kernel, wait_ready, xsrf

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
VENV_BIN = ROOT / ".venv" / "bin"
NEW_SHELL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # Debian's, root or not

# Each README command -> the test below that runs it as typed.
COVERED = {
    "dlw train examples/digits_ddp.ipynb --workers 2 --param epochs=5 --follow": "test_train_and_jobs_activated",
    "dlw jobs": "test_train_and_jobs_activated",
    "bash scripts/run-example.sh": "test_run_example_then_dlw_by_full_path",
    "bash scripts/test.sh": "CI itself: .ci/run runs it, and it runs this suite",
    "source .venv/bin/activate": "test_train_and_jobs_activated, test_jupyter_lab",
    "jupyter lab --allow-root": "test_jupyter_lab",
    ".venv/bin/dlw hub --port 8000 --user alice": "test_hub_by_full_path_spawns_the_cpu_profile",
}


def readme_commands() -> list[str]:
    """The command lines of the README's ``bash`` blocks, comments left out."""
    blocks = re.findall(r"^```bash\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.S | re.M)
    lines = (line.split(" #")[0].strip() for block in blocks for line in block.splitlines())
    return list(dict.fromkeys(line for line in lines if line and not line.startswith("#")))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


MACHINE_TLS = ("SSL_CERT_FILE", "SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS", "PIP_CERT", "REQUESTS_CA_BUNDLE")


@pytest.fixture
def shell_env(tmp_path: Path) -> dict[str, str]:
    """A new shell's environment: Debian's PATH, a home of its own, no DLW_* or virtualenv settings; the
    machine's own proxy and certificate settings, which a login shell here has too (npm, pip need them)."""
    home = tmp_path / "home"
    home.mkdir()
    machine = {k: v for k, v in os.environ.items()
               if k.lower().endswith("_proxy") or k in MACHINE_TLS}
    return {**machine, "PATH": NEW_SHELL_PATH, "HOME": str(home), "LANG": "C.UTF-8",
            "USER": os.environ.get("USER", "root")}


def sh(command: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``command`` typed into bash in the checkout."""
    return subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_every_readme_command_has_a_newcomer_test() -> None:
    assert readme_commands() == list(COVERED), "a README command changed: run it as typed in a test here"


def test_the_new_shell_does_not_have_the_venv(shell_env: dict[str, str]) -> None:
    assert sh("command -v dlw || echo none", shell_env).stdout.strip() == "none"
    assert sh("source .venv/bin/activate && command -v dlw", shell_env).stdout.strip() == str(VENV_BIN / "dlw")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_train_and_jobs_activated(shell_env: dict[str, str]) -> None:
    train = sh(
        "source .venv/bin/activate && dlw train examples/digits_ddp.ipynb --workers 2 --param epochs=5 --follow",
        shell_env,
    )
    assert train.returncode == 0, train.stdout[-2000:] + train.stderr[-2000:]
    assert "Submitted digits-ddp" in train.stdout and "[rank 1]" in train.stdout
    assert re.search(r"accuracy: 0\.9\d", train.stdout), train.stdout[-2000:]
    jobs = sh("source .venv/bin/activate && dlw jobs", shell_env)
    assert jobs.returncode == 0 and "digits-ddp" in jobs.stdout and "Succeeded" in jobs.stdout, jobs


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_run_example_then_dlw_by_full_path(shell_env: dict[str, str]) -> None:
    run = sh("bash scripts/run-example.sh", shell_env, timeout=1100)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert re.search(r"accuracy: 0\.9\d", run.stdout), run.stdout[-2000:]
    jobs = sh(".venv/bin/dlw jobs", shell_env)  # the README: "or call .venv/bin/dlw ... directly"
    assert jobs.returncode == 0 and "digits-ddp" in jobs.stdout and "Succeeded" in jobs.stdout, jobs


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_job_started_by_full_path_runs_in_the_venv(tmp_path: Path, shell_env: dict[str, str]) -> None:
    """`.venv/bin/dlw train` from a shell without the venv: the job's `python` and `pip` are the venv's."""
    script = tmp_path / "where.py"
    script.write_text("import shutil\nprint('python', shutil.which('python'))\nprint('pip', shutil.which('pip'))\n")
    run = sh(f".venv/bin/dlw train {script} --name where --wait && .venv/bin/dlw logs where", shell_env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"python {VENV_BIN / 'python'}" in run.stdout and f"pip {VENV_BIN / 'pip'}" in run.stdout, run.stdout


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120, **kw: object) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=5, **kw).status_code == 200:  # type: ignore[arg-type]
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer in {timeout}s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture
def started(tmp_path: Path, shell_env: dict[str, str]) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        stop(proc)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "typed", ["source .venv/bin/activate && jupyter lab --allow-root", ".venv/bin/jupyter lab --allow-root"]
)
def test_jupyter_lab(
    typed: str, tmp_path: Path, shell_env: dict[str, str], started: list[subprocess.Popen[bytes]]
) -> None:
    port, token = free_port(), "newcomer-token"
    log = tmp_path / "lab.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                "bash",
                "-c",
                f"{typed.replace('&& jupyter', '&& exec jupyter') if '&&' in typed else 'exec ' + typed} "
                "--no-browser "
                f"--ServerApp.ip=127.0.0.1 --ServerApp.port={port} --IdentityProvider.token={token}",
            ],
            cwd=ROOT,
            env=shell_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started.append(proc)
    base, auth = f"http://127.0.0.1:{port}", {"Authorization": f"token {token}"}
    wait_http(f"{base}/api/status", proc, log, headers=auth)
    lab = requests.get(f"{base}/lab", headers=auth, timeout=30)
    assert lab.status_code == 200 and "dlw-labextension" in lab.text  # the extension is in the page's list
    jobs = requests.get(f"{base}/dlw/api/jobs", headers=auth, timeout=60)  # DLW's REST API answers
    assert jobs.status_code == 200, jobs.text


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_hub_by_full_path_spawns_the_cpu_profile(
    tmp_path: Path, shell_env: dict[str, str], started: list[subprocess.Popen[bytes]]
) -> None:
    port = free_port()
    log = tmp_path / "hub.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["bash", "-c", f"exec .venv/bin/dlw hub --port {port} --user alice"],
            cwd=ROOT,
            env=shell_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started.append(proc)
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/hub/api", proc, log)
    # The password where the README says it is.
    password = (Path(shell_env["HOME"]) / ".local/share/dlw/hub/passwords/alice").read_text().strip()
    s = requests.Session()
    s.get(f"{base}/hub/login", timeout=10)
    page = s.post(
        f"{base}/hub/login",
        data={"username": "alice", "password": password, "_xsrf": s.cookies.get("_xsrf", "")},
        timeout=30,
    )
    assert page.status_code == 200, page.text[-500:]
    form = s.get(f"{base}/hub/spawn", timeout=30).text
    assert '<select name="profile-option-cpu--gpus"' not in form  # one GPU count: nothing to choose
    # What the browser posts for the CPU profile (its hidden GPU count included).
    r = s.post(
        f"{base}/hub/spawn/alice",
        data={"profile": "cpu", "profile-option-cpu--gpus": "0", "_xsrf": s.cookies.get("_xsrf", "")},
        timeout=180,
    )
    assert r.status_code == 200, r.text[-500:] + log.read_text()[-3000:]
    wait_ready(s, base, "alice", timeout=180)
    token = s.post(f"{base}/hub/api/users/alice/tokens", headers=xsrf(s), json={"note": "readme"}, timeout=30).json()[
        "token"
    ]
    auth = {"Authorization": f"token {token}"}
    lab = requests.get(f"{base}/user/alice/lab", headers=auth, timeout=60)
    assert lab.status_code == 200 and "JupyterLab" in lab.text
    # A new user's home has the example notebook to try.
    example = requests.get(f"{base}/user/alice/api/contents/digits_ddp.ipynb?content=0", headers=auth, timeout=30)
    assert example.status_code == 200 and example.json()["type"] == "notebook", example.text
    # The environment's commands are on the server's PATH (a terminal, `!dlw jobs`), as if activated.
    out, err = run_in_kernel(base, "alice", token, "import shutil; print(shutil.which('dlw'))")
    assert out.strip() == str(VENV_BIN / "dlw"), out + err
