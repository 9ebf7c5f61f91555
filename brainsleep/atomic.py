"""Atomic file writes: a temporary file in the target's directory, renamed when complete.

A killed process leaves at most a ``*.tmp`` file, never a half-written result (the
experiment deletes such leftovers when it resumes). A write that fails (disk full, no
permission) removes its temporary file and raises an :class:`OSError` that names the
target file. Finished files get the permissions the umask gives an ordinary file
(``0o666 & ~umask``), not the ``0o600`` of a temporary file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

_UMASK_FALLBACK: int | None = None
_UMASK_LOCK = threading.Lock()


def _umask_from_proc() -> int | None:
    """The umask from ``/proc/self/status`` (Linux >= 4.7), or None where unavailable."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        return None
    return None


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows.

    Linux reports it in ``/proc/self/status``, which is read on every call (cheap, and
    it follows a later ``os.umask``). Elsewhere the only way is ``os.umask``, which sets
    it; that is done once per process, under a lock, and the value is kept.

    Returns
    -------
    int
        The umask bits, e.g. ``0o022``.
    """
    global _UMASK_FALLBACK
    value = _umask_from_proc()
    if value is not None:
        return value
    with _UMASK_LOCK:
        if _UMASK_FALLBACK is None:
            old = os.umask(0o022)
            os.umask(old)
            _UMASK_FALLBACK = old
        return _UMASK_FALLBACK


def _naming(exc: OSError, path: Path) -> OSError:
    """The same error (same errno, so the same subclass) naming the target, not the temp file."""
    return OSError(exc.errno, exc.strerror or str(exc), str(path))


def atomic_write_with(path: str | Path, writer: Callable[[str], None]) -> Path:
    """Call ``writer(tmp_name)`` to fill a temporary file, then rename it over ``path``.

    Parameters
    ----------
    path : str or Path
        The file to write; its directory is created when missing.
    writer : callable
        Writes the complete content to the file name it is given.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    OSError
        When the directory, the temporary file or the rename fails (no space, no
        permission, ...): the temporary file is gone and the error's ``filename`` is
        ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise _naming(exc, path) from exc
    try:
        writer(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except OSError as exc:
        raise _naming(exc, path) from exc
    finally:
        if os.path.exists(tmp):
            with contextlib.suppress(OSError):
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


def json_default(o):
    """``json.dumps`` ``default=``: numpy scalars and arrays, paths."""
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
    text = json.dumps(obj, indent=2, sort_keys=True, default=json_default)
    return atomic_write_bytes(path, text.encode())
