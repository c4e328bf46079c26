# Runs first in every job pod (shipped inline as `python -c`, so any image with Python runs it):
# copy the read-only snapshot into a writable folder, derive this pod's rank from the variable the
# engine's controller sets, then exec the entrypoint, or torchrun for several processes per pod.
import os
import shutil
import sys

e = os.environ
snapshot, code = e.get("DLW_SNAPSHOT_DIR", "/dlw/snapshot"), e.get("DLW_CODE_DIR", "/dlw/code")
if os.path.isdir(snapshot):
    shutil.copytree(snapshot, code, dirs_exist_ok=True, ignore=shutil.ignore_patterns("..*"))
os.makedirs(e["DLW_OUTPUT_DIR"], exist_ok=True)
if e.get("DLW_CHECKPOINT_DIR"):  # the same folder in every attempt (see render/pod.py)
    os.makedirs(e["DLW_CHECKPOINT_DIR"], exist_ok=True)
os.chdir(code)
found = [e[k] for k in e.get("DLW_NODE_RANK_FROM", "").split(",") if e.get(k)]
node = int(found[0] if found else 0) + int(e.get("DLW_NODE_RANK_OFFSET", "0"))
nodes, procs = int(e["DLW_WORKERS"]), int(e["DLW_PROCS_PER_WORKER"])
argv = sys.argv[1:]
e["NODE_RANK"] = str(node)
for k in ("MASTER_ADDR", "MASTER_PORT"):  # Kubeflow Trainer sets only the PET_* (torchrun) names
    if not e.get(k) and e.get("PET_" + k):
        e[k] = e["PET_" + k]


# --- GPU sampler -------------------------------------------------------------------------------------
# When the pod has GPUs (DLW_GPU_SAMPLE_SECONDS), a forked child reports their use every N seconds as
# tagged metrics lines on stdout ("#dlw-metrics [step, time, {"gpu.util": %, "gpu.mem_mib": MiB}]",
# dlw_magic.metrics' format), so the pod's log carries them to `dlw status` like the job's own metrics.
# It outlives the exec below and stops once the entrypoint (its parent) has exited.
def gpu_reader():
    """A function giving [(utilization %, used MiB), ...] for this pod's GPUs, or None without NVML."""
    import json

    standin = e.get("DLW_NVML_STANDIN")  # tests: a JSON file [[util, mib], ...], read at every sample
    if standin:
        def read_standin():
            with open(standin) as f:
                return [tuple(d) for d in json.load(f)]
        return read_standin
    import ctypes

    try:
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return None
    count = ctypes.c_uint()
    if nvml.nvmlInit_v2() or nvml.nvmlDeviceGetCount_v2(ctypes.byref(count)):
        return None
    handles = [ctypes.c_void_p() for _ in range(count.value)]
    for i, h in enumerate(handles):
        nvml.nvmlDeviceGetHandleByIndex_v2(ctypes.c_uint(i), ctypes.byref(h))

    class Util(ctypes.Structure):
        _fields_ = [("gpu", ctypes.c_uint), ("memory", ctypes.c_uint)]

    class Memory(ctypes.Structure):
        _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]

    def read_nvml():
        out = []
        for h in handles:
            u, m = Util(), Memory()
            util = None if nvml.nvmlDeviceGetUtilizationRates(h, ctypes.byref(u)) else u.gpu  # none on MIG
            mib = None if nvml.nvmlDeviceGetMemoryInfo(h, ctypes.byref(m)) else m.used >> 20
            out.append((util, mib))
        return out
    return read_nvml


def sample_gpus(parent, every):
    import json
    import time

    read = gpu_reader()
    if read is None:
        print("dlw: no NVML (libnvidia-ml.so.1) in this pod: its GPU use is not reported", file=sys.stderr)
        return
    step = 0
    while os.getppid() == parent:
        try:
            gpus = read()
        except (OSError, ValueError, TypeError):
            gpus = []
        utils = [u for u, _ in gpus if u is not None]
        mibs = [m for _, m in gpus if m is not None]
        values = {}
        if utils:
            values["gpu.util"] = round(sum(utils) / len(utils), 1)
        if mibs:
            values["gpu.mem_mib"] = sum(mibs)
        if values:  # one write: a line shorter than PIPE_BUF never interleaves with the job's output
            line = json.dumps([step, round(time.time(), 3), values], separators=(",", ":"))
            os.write(1, f"#dlw-metrics {line}\n".encode())
        step += 1
        wake = time.monotonic() + every
        while os.getppid() == parent and time.monotonic() < wake:
            time.sleep(min(0.5, every))


if e.get("DLW_GPU_SAMPLE_SECONDS"):
    parent = os.getpid()
    if os.fork() == 0:
        try:
            sample_gpus(parent, float(e["DLW_GPU_SAMPLE_SECONDS"]))
        finally:
            os._exit(0)
# --- end of GPU sampler --------------------------------------------------------------------------------

if procs == 1:
    e.update(RANK=str(node), WORLD_SIZE=str(nodes), LOCAL_RANK="0", LOCAL_WORLD_SIZE="1")
    os.execvp(argv[0], argv)
os.execvp("torchrun", [
    "torchrun", f"--nnodes={nodes}", f"--nproc-per-node={procs}", f"--node-rank={node}",
    f"--master-addr={e.get('MASTER_ADDR', 'localhost')}", f"--master-port={e.get('MASTER_PORT', '29500')}",
    *argv[1:],  # drop "python": torchrun takes the script (or -m module) itself
])
