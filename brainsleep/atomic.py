"""Atomic file writes: a temporary file in the target's directory, renamed when complete.

A killed process leaves at most a ``*.tmp`` file, never a half-written result (the
experiment deletes such leftovers when it resumes).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np


def atomic_write_with(path: str | Path, writer: Callable[[str], None]) -> Path:
    """Call ``writer(tmp_name)`` to fill a temporary file, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` atomically, flushed to disk before the rename."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    return atomic_write_with(path, write)


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-able: {type(o).__name__}")


def atomic_write_json(path: str | Path, obj) -> Path:
    """``obj`` as indented, key-sorted JSON (numpy scalars and arrays allowed)."""
    text = json.dumps(obj, indent=2, sort_keys=True, default=_json_default)
    return atomic_write_bytes(path, text.encode())
