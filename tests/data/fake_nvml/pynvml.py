"""An NVML stand-in for machines without an NVIDIA GPU: the part of nvidia-ml-py that dlw_magic.gpus uses.

Tests copy this file into a folder put first on PYTHONPATH, next to a ``gpus.json`` they rewrite to change
what the "GPUs" report: ``{"gpus": [{"name": ..., "utilization": 0-100 or null, "memory_used_mib": ...}]}``
(null utilization: the device reports none, as MIG slices do).
"""

import json
from pathlib import Path
from types import SimpleNamespace

NVML_TEMPERATURE_GPU = 0


class NVMLError(Exception):
    pass


def _gpus():
    return json.loads(Path(__file__).with_name("gpus.json").read_text())["gpus"]


def nvmlInit():
    if not Path(__file__).with_name("gpus.json").is_file():
        raise NVMLError("Driver Not Loaded")


def nvmlShutdown():
    pass


def nvmlDeviceGetCount():
    return len(_gpus())


def nvmlDeviceGetHandleByIndex(index):
    return _gpus()[index] | {"index": index}


def nvmlDeviceGetMemoryInfo(h):
    return SimpleNamespace(total=h.get("memory_total_mib", 24576) << 20, used=h.get("memory_used_mib", 0) << 20)


def nvmlDeviceGetUtilizationRates(h):
    if h.get("utilization") is None:
        raise NVMLError("Not Supported")
    return SimpleNamespace(gpu=h["utilization"], memory=0)


def nvmlDeviceGetTemperature(h, sensor):
    return 40


def nvmlDeviceGetName(h):
    return h.get("name", "NVIDIA L4")


def nvmlDeviceGetUUID(h):
    return f"GPU-fake-{h['index']}"
