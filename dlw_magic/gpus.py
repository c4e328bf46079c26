"""GPUs on this machine through NVML (nvidia-ml-py). No NVIDIA driver means an empty list and a reason."""

from __future__ import annotations

import os

from . import settings
from .types import GpuInfo


def local_gpus() -> tuple[list[GpuInfo], str | None]:
    if settings.current().fake_no_nvml:
        return [], "NVML disabled by DLW_FAKE_NO_NVML"
    try:
        import pynvml
    except ImportError:
        return [], "nvidia-ml-py is not installed"
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as err:
        return [], f"no NVIDIA driver on this machine ({err})"
    try:
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            try:
                util: int | None = pynvml.nvmlDeviceGetUtilizationRates(h).gpu
            except pynvml.NVMLError:
                util = None  # MIG devices and some vGPUs do not report utilization
            try:
                temp: int | None = pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU)
            except pynvml.NVMLError:
                temp = None
            name = pynvml.nvmlDeviceGetName(h)
            uuid = pynvml.nvmlDeviceGetUUID(h)
            gpus.append(GpuInfo(
                index=i,
                name=name.decode() if isinstance(name, bytes) else name,
                uuid=uuid.decode() if isinstance(uuid, bytes) else uuid,
                memory_total_mib=mem.total >> 20,
                memory_used_mib=mem.used >> 20,
                utilization_pct=util,
                temperature_c=temp,
            ))
        return gpus, (None if gpus else "the NVIDIA driver reports no GPU")
    finally:
        pynvml.nvmlShutdown()


def visible_gpu_indices() -> list[int]:
    """GPU indices jobs may use: all NVML GPUs, narrowed by CUDA_VISIBLE_DEVICES when it lists indices."""
    return [g.index for g in visible_gpus(local_gpus()[0])]


def visible_gpus(gpus: list[GpuInfo]) -> list[GpuInfo]:
    """``gpus`` narrowed by CUDA_VISIBLE_DEVICES when it lists indices (NVML itself ignores it)."""
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cvd is not None and all(p.strip().isdigit() for p in cvd.split(",") if p.strip()):
        allowed = {int(p) for p in cvd.split(",") if p.strip()}
        return [g for g in gpus if g.index in allowed]
    return gpus
