"""TensorBoard event files from ``log_metrics``, with the standard library only (jobs need no TensorBoard).

With ``DLW_TENSORBOARD=1`` in a job's environment, rank 0's ``log_metrics`` also writes each value as a
scalar summary to ``$DLW_OUTPUT_DIR/tensorboard/events.out.tfevents.*``, which TensorBoard (``dlw
tensorboard NAME``, or the panel's TensorBoard button) reads. The format is TFRecord framing (length,
masked CRC-32C, data, masked CRC-32C) around ``tensorflow.Event`` protocol buffers, encoded by hand here:
only wall_time, step, file_version and ``summary.value {tag, simple_value}`` are written.
The CRC is computed in Python: about 2 µs per value, so this is opt-in.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import time
from pathlib import Path
from typing import Any

FOLDER = "tensorboard"  # under DLW_OUTPUT_DIR


def _table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC = _table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    table = _CRC
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked(data: bytes) -> bytes:
    crc = crc32c(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int64 as protobuf writes it
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(key: int, payload: bytes) -> bytes:
    return bytes([key]) + _varint(len(payload)) + payload


def event(wall_time: float, step: int, values: dict[str, float] | None = None, version: str | None = None) -> bytes:
    """One serialized ``Event`` with a scalar per value (non-numbers left out)."""
    data = b"\x09" + struct.pack("<d", wall_time) + b"\x10" + _varint(step)
    if version is not None:
        data += _field(0x1A, version.encode())
    if values:
        summary = b"".join(
            _field(0x0A, _field(0x0A, str(tag).encode()) + b"\x15" + struct.pack("<f", float(value)))
            for tag, value in values.items() if isinstance(value, (int, float)) or hasattr(value, "__float__")
        )
        data += _field(0x2A, summary)
    return data


def record(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return length + _masked(length) + data + _masked(data)


class EventWriter:
    """Appends events to one file; ``add`` buffers, ``flush`` writes (the metrics recorder calls both)."""

    def __init__(self, folder: str | Path) -> None:
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}.dlw"
        self.file = open(path / name, "ab")  # noqa: SIM115 (closed with the recorder at exit)
        self.pending: list[bytes] = [record(event(time.time(), 0, version="brain.Event:2"))]

    def add(self, step: int, wall_time: float, values: dict[str, Any]) -> None:
        # A value TensorBoard cannot hold (text, a tensor of many elements) is left out: DLW's file keeps it.
        with contextlib.suppress(TypeError, ValueError, OverflowError):
            self.pending.append(record(event(wall_time, step, values)))

    def flush(self) -> None:
        if self.pending and not self.file.closed:
            self.file.write(b"".join(self.pending))
            self.pending.clear()
            self.file.flush()
