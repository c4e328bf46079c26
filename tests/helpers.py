"""Small helpers for tests that run real jobs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import psutil


def processes_with_env(key: str, value: str) -> list[psutil.Process]:
    """Live processes whose environment has key=value (how a test finds a job's ranks)."""
    found = []
    for p in psutil.process_iter(["pid", "status"]):
        try:
            if p.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if p.environ().get(key) == value:
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def write_notebook(path: Path, cells: list[str | tuple[str, list[str]]], kernel: str = "python3") -> Path:
    """A notebook whose code cells are ``cells``; a (source, tags) tuple adds cell tags."""
    nb_cells: list[dict[str, Any]] = []
    for cell in cells:
        source, tags = (cell, []) if isinstance(cell, str) else cell
        nb_cells.append({
            "cell_type": "code", "execution_count": None, "outputs": [], "source": source,
            "metadata": {"tags": tags} if tags else {},
        })
    nb = {
        "nbformat": 4, "nbformat_minor": 5, "cells": nb_cells,
        "metadata": {"kernelspec": {"name": kernel, "display_name": "Python 3", "language": "python"}},
    }
    path.write_text(json.dumps(nb, indent=1))
    return path
