"""A local-process spawner that offers the workspace's notebook profiles (``dlw hub``).

The same profiles as on Kubernetes, filtered by the user's groups, applied where a local process can
have them: ``CUDA_VISIBLE_DEVICES`` for the GPU choice (refused when this machine has fewer GPUs), CPU
affinity for the CPU limit, ``MEM_LIMIT``/``CPU_LIMIT`` env (and an address-space cap when
``enforce_memory_limit`` is on), the profile's env, and ``DLW_PROFILE``/``DLW_GPUS``/``DLW_NAMESPACE``.
Kernels load ``dlw_magic`` (an IPython profile under the hub's data dir), so ``%dlw train`` works at once
and runs jobs on the local backend, outside the notebook server (culling a server never ends a job).

With ``system_users`` on and the hub running as root (``dlw hub``'s default for several users, see
``system_users.py``), each user's server runs as a system account of their own (``dlw-<name>``,
created on first start, as JupyterHub's LocalProcessSpawner runs each user as their Unix account),
with a home (their notebooks folder), a DLW data folder and an IPython profile of their own: users
cannot read each other's notebooks, jobs, logs or secrets. A new home starts with the example notebook.
"""

from __future__ import annotations

import html
import math
import os
import pwd
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jupyterhub.spawner import SimpleLocalProcessSpawner
from traitlets import Bool, Unicode, default

from .. import settings
from ..errors import DLWError
from ..venv import find_command, path_with_scripts
from ..workspace import Profile, Workspace, safe_name
from .profiles import cpu_float, gpu_label, quantity_bytes
from .workspace_cache import cached_workspace, user_groups

EXAMPLE = "digits_ddp.ipynb"  # what a new user's home starts with


class DLWLocalSpawner(SimpleLocalProcessSpawner):
    workspace_config = Unicode("", config=True, help="Admin YAML; empty: $DLW_WORKSPACE_CONFIG or the default.")
    ipython_dir = Unicode("", config=True, help="IPYTHONDIR whose kernel config loads dlw_magic.")
    enforce_memory_limit = Bool(
        False, config=True,
        help="Cap the server's address space at the profile's memory limit (RLIMIT_AS). Off by default: "
        "CUDA and PyTorch reserve far more address space than they use.",
    )
    gpu_indices = Unicode(
        "auto", config=True, help="Comma-separated GPU indices this hub may hand out; 'auto' asks NVML.",
    )
    system_users = Bool(
        False, config=True,
        help="When the hub runs as root, run each user's server as a system account of their own (dlw-NAME), "
        "with its own home and DLW data folder.",
    )
    system_home_template = Unicode(
        "/home/dlw-{username}", config=True, help="Home of a user's system account ({username}: a safe name).",
    )

    @default("cmd")
    def _cmd_default(self) -> list[str]:
        # The hub's own environment's server, even when that environment is not on PATH (.venv/bin/dlw hub).
        return [find_command("jupyterhub-singleuser") or "jupyterhub-singleuser"]

    def _system_account(self) -> pwd.struct_passwd | None:
        return getattr(self, "_dlw_account", None)

    @property
    def workspace(self) -> Workspace:
        return cached_workspace(self.workspace_config or None)

    def allowed_profiles(self) -> list[Profile]:
        return self.workspace.profiles_for(user_groups(self.user))

    def _default_options_form(self) -> str:  # noqa: D401 - a form, not a docstring
        return render_form(self.allowed_profiles(), self.workspace.default_profile.name, len(self._gpu_pool()))

    @default("options_form")
    def _options_form_default(self) -> Any:
        return lambda spawner: spawner._default_options_form()

    def options_from_form(self, formdata: dict[str, list[str]]) -> dict[str, str]:
        return options_from_form(formdata)

    @default("apply_user_options")
    def _apply_user_options_default(self) -> Any:
        # profile and gpus are read (and refused, with a one-line message) in start(); saying so here
        # keeps JupyterHub from warning that the options went unhandled.
        return lambda spawner, user_options: None

    # -- the chosen profile ------------------------------------------------------------------------------

    def chosen(self) -> tuple[Profile, int]:
        """The profile and GPU count from user_options (defaults when absent); refuses what the user may not use."""
        opts = self.user_options or {}
        allowed = self.allowed_profiles()
        if not allowed:
            raise DLWError(f"no notebook profile is open to user {self.user.name!r} (check the profiles' groups)")
        slug = opts.get("profile") or self.workspace.default_profile.name
        profile = next((p for p in allowed if p.name == slug), None)
        if profile is None:
            names = ", ".join(p.name for p in allowed)
            raise DLWError(f"profile {slug!r} is not available to {self.user.name!r} (choose from {names})")
        raw = opts.get("gpus", profile.default_gpus)
        try:
            gpus = int(raw)
        except (TypeError, ValueError):
            raise DLWError(f"profile {profile.name!r}: GPU count {raw!r} is not a number") from None
        if gpus not in profile.gpus:
            raise DLWError(f"profile {profile.name!r} offers {profile.gpus} GPUs, not {gpus}")
        return profile, gpus

    def _gpu_pool(self) -> list[int]:
        if self.gpu_indices != "auto":
            return [int(i) for i in self.gpu_indices.split(",") if i.strip()]
        from ..gpus import visible_gpu_indices

        return visible_gpu_indices()

    async def start(self) -> Any:
        try:
            profile, gpus = self.chosen()
            pool = self._gpu_pool() if gpus else []
            if gpus > len(pool):
                raise DLWError(
                    f"profile {profile.name!r} with {gpu_label(gpus)}: this machine has {len(pool)} usable GPUs"
                )
        except DLWError as err:
            raise refusal(str(err)) from None
        self._dlw_profile, self._dlw_gpus = profile, pool[:gpus]
        self.cpu_limit = cpu_float(profile.cpu.limit) if profile.cpu.limit else None
        self.mem_limit = quantity_bytes(profile.memory.limit) if profile.memory.limit else None
        self.home_dir = self.home_dir_template.format(username=safe_name(self.user.name))
        account = None
        if self.system_users and os.geteuid() == 0:
            home = Path(self.system_home_template.format(username=safe_name(self.user.name, max_len=27)))
            new_home = not home.exists()
            account = system_account(self.user.name, home)
            self._dlw_account = account
            self.home_dir = account.pw_dir
            problem = own_ipython_profile(account)
            if problem:  # the server still starts (the user can fix their home); %dlw needs %load_ext then
                self.log.warning("dlw hub: %s", problem)
        else:
            new_home = not Path(self.home_dir).exists()
        if new_home:
            seed_home(Path(self.home_dir), account)
        self.notebook_dir = self.home_dir
        return await super().start()

    def get_env(self) -> dict[str, str]:
        env = super().get_env()
        env["PATH"] = path_with_scripts(env.get("PATH"))  # `dlw`, `jupyter` in terminals and `!` lines
        profile: Profile | None = getattr(self, "_dlw_profile", None)
        if profile is None:
            return env
        devices = getattr(self, "_dlw_gpus", [])
        env.update(profile.env)
        env.update({
            "DLW_PROFILE": profile.name,
            "DLW_GPUS": str(len(devices)),
            "DLW_IMAGE": profile.image,
            "DLW_GPU_TYPE": profile.gpu_type or "",
            "DLW_NAMESPACE": self.workspace.namespace_for(self.user.name),
            "DLW_GROUPS": ",".join(user_groups(self.user)),  # budgets by group (dlw_magic.usage)
            "DLW_BACKEND": settings.current().backend or "local",
            "CUDA_VISIBLE_DEVICES": ",".join(str(i) for i in devices),
        })
        if self.workspace_config:
            env["DLW_WORKSPACE_CONFIG"] = self.workspace_config
        if self.ipython_dir:
            env["IPYTHONDIR"] = self.ipython_dir
        account = self._system_account()
        if account is not None:  # everything of the user's under their own home
            env.update(HOME=account.pw_dir, USER=account.pw_name, IPYTHONDIR=f"{account.pw_dir}/.ipython",
                       DLW_HOME=f"{account.pw_dir}/.local/share/dlw")
        return env

    def make_preexec_fn(self, name: str) -> Any:
        account = self._system_account()
        base = run_as(account) if account is not None else super().make_preexec_fn(name)
        cpus = self.cpu_limit
        mem = self.mem_limit if self.enforce_memory_limit else None

        def preexec() -> None:
            base()
            if cpus and hasattr(os, "sched_setaffinity"):
                have = sorted(os.sched_getaffinity(0))
                os.sched_setaffinity(0, have[: max(1, min(len(have), math.ceil(cpus)))])
            if mem:
                import resource

                resource.setrlimit(resource.RLIMIT_AS, (mem, mem))

        return preexec


def system_account(username: str, home: Path) -> pwd.struct_passwd:
    """The system account (``dlw-<name>``) that runs ``username``'s server, created on first use.

    Its home is private (0700) and owned by the account; the name comes from ``safe_name``, so two hub
    users never share an account.
    """
    name = f"dlw-{safe_name(username, max_len=27)}"
    if not _account_exists(name):
        useradd = shutil.which("useradd")
        if useradd is None:
            raise DLWError("system_users needs useradd (the passwd package) on this machine")
        done = subprocess.run(
            [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", str(home),
             "--shell", "/usr/sbin/nologin", name],
            capture_output=True, text=True, timeout=60,
        )
        if done.returncode != 0:
            raise DLWError(f"could not create the system account {name}: {done.stderr.strip()}")
    account = pwd.getpwnam(name)
    _own_home(account)
    return account


def example_notebook() -> Path | None:
    """``examples/digits_ddp.ipynb`` in a source checkout, else the copy shipped in the wheel."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package.parent / "examples" / EXAMPLE, package / "_data" / "examples" / EXAMPLE):
        if candidate.is_file():
            return candidate
    return None


def seed_home(home: Path, account: pwd.struct_passwd | None) -> None:
    """A new user's home: created with the example notebook in it, so the first lab has a job to try.
    The copy is made new (never over a file or through a link someone put there) and given to the account."""
    home.mkdir(parents=True, exist_ok=True)
    example = example_notebook()
    if example is None:
        return
    try:
        fd = os.open(home / EXAMPLE, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except FileExistsError:
        return
    with os.fdopen(fd, "wb") as target:
        target.write(example.read_bytes())
        if account is not None:
            os.fchown(target.fileno(), account.pw_uid, account.pw_gid)


def _own_home(account: pwd.struct_passwd) -> None:
    """The account's home made (if missing), its own and 0700; a link in its place is refused, not followed."""
    path = Path(account.pw_dir)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        os.fchown(fd, account.pw_uid, account.pw_gid)
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


def _account_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def own_ipython_profile(account: pwd.struct_passwd) -> str | None:
    """The kernel profile that loads ``dlw_magic``, in the account's home (the hub's data dir is root's).

    Written by a process running as the account, never by root: the home is the user's, and any link
    they planted there (``~/.ipython/profile_default -> /etc``) then leads only where they could write anyway.
    Returns the one-line problem when it could not be written, else None.
    """
    from .local import KERNEL_CONFIG

    script = ('mkdir -p "$HOME/.ipython/profile_default" && '
              'cat > "$HOME/.ipython/profile_default/ipython_kernel_config.py"')
    env = {"HOME": account.pw_dir, "PATH": os.defpath, "LANG": "C.UTF-8"}
    done = subprocess.run(
        ["/bin/sh", "-c", script], input=KERNEL_CONFIG, text=True, capture_output=True,
        env=env, cwd="/", user=account.pw_uid, group=account.pw_gid, extra_groups=[], timeout=60,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return f"could not write {account.pw_name}'s kernel profile: {last}"
    return None


def run_as(account: pwd.struct_passwd) -> Callable[[], None]:
    """A preexec function that drops root for ``account`` (groups, gid, then uid) and enters its home."""

    def preexec() -> None:
        os.setgid(account.pw_gid)
        os.initgroups(account.pw_name, account.pw_gid)
        os.setuid(account.pw_uid)
        os.chdir(account.pw_dir)

    return preexec


def refusal(message: str) -> Exception:
    """A 400 whose one line the hub shows the user (spawn page and REST API) instead of a bare 500."""
    from tornado import web

    err = web.HTTPError(400, message)
    err.jupyterhub_message = message  # type: ignore[attr-defined]
    return err


def render_form(profiles: list[Profile], default: str, gpus_here: int | None = None) -> str:
    """Radio buttons for the profiles, a GPU select for each (field names as KubeSpawner's form).

    With ``gpus_here`` (the GPUs this machine can hand out), GPU counts above it are shown disabled with
    the reason, and a profile with no count left is disabled as a whole, so the form offers only what
    can start.
    """

    def usable(n: int) -> bool:
        return gpus_here is None or n <= gpus_here

    here = f"this machine has {gpu_label(gpus_here)}" if gpus_here is not None else ""
    open_profiles = [p for p in profiles if any(usable(n) for n in p.gpus)]
    names = [p.name for p in open_profiles]
    first = default if default in names else (names[0] if names else "")
    rows = []
    for p in profiles:
        can = p in open_profiles
        checked = " checked" if p.name == first else ""
        default_gpus = p.default_gpus if usable(p.default_gpus) else max((n for n in p.gpus if usable(n)), default=0)
        options = "".join(
            f'<option value="{n}"{" selected" if n == default_gpus else ""}'
            f'{"" if usable(n) else " disabled"}>{html.escape(gpu_label(n))}'
            f'{"" if usable(n) else html.escape(f" ({here})")}</option>'
            for n in p.gpus
        )
        if can and len(p.gpus) == 1:  # one count: say it, there is nothing to choose
            choice = (f'<input type="hidden" name="profile-option-{p.name}--gpus" value="{p.gpus[0]}">'
                      f'<span class="dlw-gpus">{html.escape(gpu_label(p.gpus[0]))}</span>')
        elif can:
            choice = (f'<select name="profile-option-{p.name}--gpus" '
                      f'aria-label="GPUs for {html.escape(p.display_name)}">{options}</select>')
        else:  # nothing to choose: say why instead of an empty list
            choice = f'<em class="dlw-unavailable">not available: {html.escape(here)}</em>'
        rows.append(
            f'<label class="dlw-profile"><input type="radio" name="profile" value="{p.name}"{checked}'
            f'{"" if can else " disabled"}> <strong>{html.escape(p.display_name)}</strong> '
            f"<span>{html.escape(p.description)}</span></label> {choice}<br>"
        )
    return "\n".join(rows) or "<p>No notebook profile is open to you; ask the admin.</p>"


def options_from_form(formdata: dict[str, list[str]]) -> dict[str, str]:
    slug = (formdata.get("profile") or [""])[0]
    opts = {"profile": slug} if slug else {}
    gpus = formdata.get(f"profile-option-{slug}--gpus")
    if slug and gpus:
        opts["gpus"] = gpus[0]
    return opts
