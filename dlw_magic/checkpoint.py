"""Save a job's state and pick it up again in the next attempt: a preempted or retried job continues.

Every attempt of a job sees the same ``DLW_CHECKPOINT_DIR`` (the backends set it; without it, the
job's ``$DLW_OUTPUT_DIR/checkpoints``)::

    from dlw_magic import checkpoint

    state = checkpoint.load()            # None on the first attempt
    start = state["epoch"] + 1 if state else 1
    for epoch in range(start, epochs + 1):
        ...
        checkpoint.save({"epoch": epoch, "model": net.state_dict(), "optimizer": opt.state_dict()})

``save`` writes on rank 0 only (the other ranks hold the same replicated state), to a temporary file
that is synced and then renamed over the old one: a job killed while saving leaves the previous
checkpoint whole. With torch imported the state goes through ``torch.save`` (tensors, state dicts),
otherwise through pickle; ``load`` reads either. Outside a job both do nothing, so a notebook run by
hand starts fresh every time.
"""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path
from typing import Any

DEFAULT_NAME = "last.pt"
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format is a zip archive


def directory() -> Path | None:
    """The job's checkpoint folder, the same in every attempt; None outside a job."""
    env = os.environ
    if env.get("DLW_CHECKPOINT_DIR"):
        return Path(env["DLW_CHECKPOINT_DIR"])
    if env.get("DLW_OUTPUT_DIR"):
        return Path(env["DLW_OUTPUT_DIR"]) / "checkpoints"
    return None


def path(name: str = DEFAULT_NAME) -> Path | None:
    """Where the checkpoint ``name`` lives (it may not exist yet); None outside a job."""
    if not name or Path(name).name != name or name.startswith("."):
        raise ValueError(f"checkpoint name {name!r}: expected a plain file name such as 'last.pt'")
    folder = directory()
    return None if folder is None else folder / name


def save(state: Any, name: str = DEFAULT_NAME) -> Path | None:
    """Write ``state`` atomically; the path written, or None (not rank 0, or outside a job)."""
    from . import metrics

    metrics.flush()  # the points logged up to this checkpoint reach the file even if the job dies next
    target = path(name)
    if target is None or os.environ.get("RANK", "0") != "0":
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            if "torch" in sys.modules:
                sys.modules["torch"].save(state, f)
            else:
                pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash of the node
    finally:
        os.close(dir_fd)
    return target


def load(name: str = DEFAULT_NAME, **torch_load_args: Any) -> Any | None:
    """The state last saved under ``name``, or None when there is none (first attempt, outside a job).

    ``torch_load_args`` go to ``torch.load`` (``map_location="cpu"``, ``weights_only=False``...).
    """
    target = path(name)
    if target is None or not target.is_file():
        return None
    with open(target, "rb") as f:
        if f.read(4) == _ZIP_MAGIC:
            import torch

            f.seek(0)
            return torch.load(f, **torch_load_args)
        f.seek(0)
        return pickle.load(f)
