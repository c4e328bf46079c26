"""Profile choice -> pod manifest: DLW's workspace-driven KubeSpawner vs KubeSpawner with no profiles.

What a spawn does after the user submits the form: ``options_from_form`` -> ``load_user_options`` (DLW:
the group-filtered profile list from the admin YAML, the GPU option, per-user volumes) ->
``get_pod_manifest``. Spawner construction is outside the timed region (the hub builds spawners once per
user). Prints one JSON line; goal: ``ratio`` <= 1.2, where the baseline is a KubeSpawner without profiles
configured statically to build the very same pod.

    python benchmarks/bench_profiles.py [--rounds 300]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KUBECONFIG = """apiVersion: v1
kind: Config
current-context: c
clusters: [{name: c, cluster: {server: "http://127.0.0.1:9"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
"""


class _Group:
    name = "research"


class _User:
    name, id, url, groups = "alice", 1, "/user/alice/", [_Group()]


class _Hub:
    public_host, url, base_url, api_url = "hub", "http://hub:8081/hub/", "/hub/", "http://hub:8081/hub/api"


async def measure(make: Any, form: dict[str, list[str]], rounds: int) -> list[float]:
    spawners = [make() for _ in range(rounds)]
    times = []
    for sp in spawners:
        t0 = time.perf_counter()
        sp.user_options = sp.options_from_form(form)
        await sp.load_user_options()
        await sp.get_pod_manifest()
        times.append(time.perf_counter() - t0)
    return times


async def main(rounds: int) -> dict[str, Any]:
    from kubespawner import KubeSpawner
    from traitlets.config import Config

    from dlw_magic.hub.kube import DLWKubeSpawner, configure

    ws = str(ROOT / "hub_config" / "workspace.yaml")
    c = Config()
    configure(c, ws)
    base = Config()

    def dlw() -> Any:
        return DLWKubeSpawner(_mock=True, config=c, user=_User(), hub=_Hub())

    # The fair baseline: a KubeSpawner without profiles configured statically to build the very same pod
    # (image, resources, GPU limit, selector, tolerations, volumes, env), read off a DLW spawner.
    ref = dlw()
    ref.user_options = ref.options_from_form({"profile": ["gpu"], "profile-option-gpu--gpus": ["2"]})
    await ref.load_user_options()
    for trait in ("image", "cpu_guarantee", "cpu_limit", "mem_guarantee", "mem_limit", "extra_resource_limits",
                  "node_selector", "tolerations", "volumes", "volume_mounts", "environment", "service_account",
                  "automount_service_account_token", "allow_privilege_escalation", "uid", "fs_gid", "namespace"):
        setattr(base.KubeSpawner, trait, getattr(ref, trait))
    # DLW derives its DLW_* env from the finished settings; the baseline gets them as static env.
    base.KubeSpawner.environment = {**ref.environment,
                                    **{k: v for k, v in ref.get_env().items() if k.startswith("DLW_")}}
    ref_pod = await ref.get_pod_manifest()

    def plain() -> Any:
        return KubeSpawner(_mock=True, config=base, user=_User(), hub=_Hub())

    # KubeSpawner's own profile machinery with the same profiles written out statically (what an admin
    # would hand-write without DLW; volumes included), to show what profiles cost before DLW adds anything.
    from dlw_magic.hub.profiles import profile_list
    from dlw_magic.workspace import load_workspace

    static_cfg = Config()
    for trait in ("service_account", "automount_service_account_token", "allow_privilege_escalation", "uid",
                  "fs_gid", "namespace"):
        setattr(static_cfg.KubeSpawner, trait, getattr(ref, trait))
    static_cfg.KubeSpawner.environment = dict(c.KubeSpawner.environment)
    static_list = profile_list(load_workspace(ws))
    for entry in static_list:
        entry["kubespawner_override"]["volumes"] = list(ref.volumes)
        entry["kubespawner_override"]["volume_mounts"] = list(ref.volume_mounts)
    static_cfg.KubeSpawner.profile_list = static_list

    def static() -> Any:
        return KubeSpawner(_mock=True, config=static_cfg, user=_User(), hub=_Hub())

    bare_cfg = Config()

    def bare() -> Any:
        return KubeSpawner(_mock=True, config=bare_cfg, user=_User(), hub=_Hub())

    check = plain()
    check.user_options = {}
    await check.load_user_options()
    check_pod = await check.get_pod_manifest()
    same = (
        [v.name for v in check_pod.spec.volumes] == [v.name for v in ref_pod.spec.volumes]
        and sorted(e.name for e in check_pod.spec.containers[0].env)
        == sorted(e.name for e in ref_pod.spec.containers[0].env)
        and check_pod.spec.containers[0].resources.limits == ref_pod.spec.containers[0].resources.limits
        and check_pod.spec.node_selector == ref_pod.spec.node_selector
    )

    form = {"profile": ["gpu"], "profile-option-gpu--gpus": ["2"]}
    for make, f in ((dlw, form), (plain, {}), (bare, {}), (static, form)):
        await measure(make, f, 20)  # warm caches (workspace file, imports)
    # Interleave so drift in machine load hits all three alike; gc off inside the timed region.
    d: list[float] = []
    p: list[float] = []
    b: list[float] = []
    st: list[float] = []
    gc.disable()
    try:
        for _ in range(5):
            d += await measure(dlw, form, rounds // 5)
            p += await measure(plain, {}, rounds // 5)
            b += await measure(bare, {}, rounds // 5)
            st += await measure(static, form, rounds // 5)
            gc.collect()
    finally:
        gc.enable()
    dm, pm, bm, sm = (statistics.median(x) * 1e3 for x in (d, p, b, st))
    return {
        "rounds": len(d),
        "same_pod_as_baseline": same,
        "dlw_profiles_ms_median": dm,
        "kubespawner_no_profiles_same_pod_ms_median": pm,
        "kubespawner_static_profiles_ms_median": sm,
        "kubespawner_bare_ms_median": bm,
        "ratio": dm / pm,
        "ratio_static_profiles_vs_same_pod": sm / pm,
        "ratio_vs_static_profiles": dm / sm,
        "ratio_vs_bare_pod": dm / bm,
        "goal_ratio": 1.2,
        "meets_goal": dm / pm <= 1.2,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=300)
    args, _ = parser.parse_known_args()  # run_all.py passes its own arguments to every benchmark
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "kubeconfig"
        cfg.write_text(KUBECONFIG)
        os.environ["KUBECONFIG"] = str(cfg)
        os.environ.pop("DLW_WORKSPACE_CONFIG", None)
        import logging

        logging.disable(logging.WARNING)  # KubeSpawner logs every override at debug/info
        from _common import report

        report("profile_choice_to_pod_manifest", **asyncio.run(main(args.rounds)))
