"""GPU use per rank, sampled through NVML: one sampler for the Kubernetes pod bootstrap and the local runner.

Every few seconds the sampler reads each rank's GPUs (utilization %, used memory) and hands one metrics
line per rank, ``[step, time, {"gpu.util": mean %, "gpu.mem_mib": MiB together}]`` (the format of
``dlw_magic.metrics``), to a writer: the bootstrap prints it as a tagged log line and keeps it in the
output folder, the local runner appends it to the job's ``metrics/gpu-rank-N.jsonl``. Readers show rank
0's as ``gpu.util`` and the others' as ``gpu.util@rankN``.

NVML is reached through ``ctypes`` (``libnvidia-ml.so.1``, part of the driver): nothing to install in a
job image. Without it, or without GPUs, nothing is sampled and nothing costs anything. Tests point the
sampler at a stand-in instead (``DLW_NVML_STANDIN``): a JSON file ``[[util, used MiB], ...]`` indexed
like NVML's devices, read at every sample.

This file is also shipped inside the pod bootstrap (``render/pod.py`` inlines it), so it imports the
standard library only, has no ``from __future__`` import, and its names do not clash with the bootstrap's.
"""

import ctypes
import json
import os
import time
from collections.abc import Callable, Iterable

GPU_UTIL, GPU_MEM = "gpu.util", "gpu.mem_mib"
Reading = dict[int, tuple[float | None, int | None]]  # NVML index -> (utilization %, used MiB)
Reader = Callable[[Iterable[int] | None], Reading]


def nvml_reader(standin: str | None = None) -> Reader | None:
    """A function reading the GPUs at the given NVML indices (all when None), or None without NVML."""
    if standin:
        def read_standin(indices: Iterable[int] | None) -> Reading:
            with open(standin, encoding="utf-8") as f:
                devices = json.load(f)
            wanted = range(len(devices)) if indices is None else indices
            return {i: (devices[i][0], devices[i][1]) for i in wanted if 0 <= i < len(devices)}
        return read_standin
    try:
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return None
    count = ctypes.c_uint()
    if nvml.nvmlInit_v2() or nvml.nvmlDeviceGetCount_v2(ctypes.byref(count)):
        return None
    handles: dict[int, ctypes.c_void_p] = {}
    for i in range(count.value):
        handle = ctypes.c_void_p()
        if not nvml.nvmlDeviceGetHandleByIndex_v2(ctypes.c_uint(i), ctypes.byref(handle)):
            handles[i] = handle

    class Utilization(ctypes.Structure):
        _fields_ = [("gpu", ctypes.c_uint), ("memory", ctypes.c_uint)]

    class Memory(ctypes.Structure):
        _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]

    def read_nvml(indices: Iterable[int] | None) -> Reading:
        out: Reading = {}
        for i in handles if indices is None else indices:
            handle = handles.get(i)
            if handle is None:
                continue
            u, m = Utilization(), Memory()
            util = None if nvml.nvmlDeviceGetUtilizationRates(handle, ctypes.byref(u)) else u.gpu  # none on MIG
            mib = None if nvml.nvmlDeviceGetMemoryInfo(handle, ctypes.byref(m)) else m.used >> 20
            out[i] = (util, mib)
        return out
    return read_nvml


def gpu_values(devices: Iterable[tuple[float | None, int | None]]) -> dict[str, float]:
    """One rank's metrics from its GPUs' readings: mean utilization, memory used together."""
    devices = list(devices)
    utils = [u for u, _ in devices if u is not None]
    mibs = [m for _, m in devices if m is not None]
    values: dict[str, float] = {}
    if utils:
        values[GPU_UTIL] = round(sum(utils) / len(utils), 1)
    if mibs:
        values[GPU_MEM] = sum(mibs)
    return values


def sample_gpus(
    read: Reader, ranks: dict[int, list[int] | None], every: float,
    write: Callable[[int, str], None], stop: Callable[[float], bool], step: int = 0,
) -> int:
    """Every ``every`` seconds until ``stop(seconds)`` (a wait that says whether to end) is true: one
    metrics line (JSON, with a newline) per rank of ``ranks`` (rank -> its NVML indices, None: all) to
    ``write(rank, line)``. Returns the next step, for a sampler that continues the series later."""
    wanted = None if any(v is None for v in ranks.values()) else sorted({i for v in ranks.values() for i in v or ()})
    while True:
        try:
            reading = read(wanted)
        except (OSError, ValueError, TypeError, IndexError):
            reading = {}
        now = round(time.time(), 3)
        for rank, indices in ranks.items():
            values = gpu_values(reading.values() if indices is None else [reading[i] for i in indices if i in reading])
            if values:
                write(rank, json.dumps([step, now, values], separators=(",", ":")) + "\n")
        step += 1
        if stop(every):
            return step


def append_line(path: str, line: str) -> None:
    """Append one metrics line in one write (the file is the sampler's alone); best effort."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError:
        return
    try:
        os.write(fd, line.encode())
    except OSError:
        pass
    finally:
        os.close(fd)
