"""Non-blocking looks at the file locks of brainsleep (results directories, build and
baseline caches): :func:`try_lock` and :func:`is_locked`.

Every lock is a :class:`filelock.FileLock` on a ``.lock`` file beside what it guards; a
process holds it while it writes there (a run its results directory, a build its key).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["is_locked", "try_lock"]


@contextmanager
def try_lock(lock_path: Path) -> Iterator[bool]:
    """Acquire ``FileLock(lock_path)`` without waiting; yield whether it was acquired
    (released on exit).

    A lock file that did not exist before this look is removed again (while still held):
    a look must leave nothing behind. Without this, a cleaner that lists a run, and locks
    it just after the run finished and removed its own lock file, re-created a lock file
    that no one would ever remove (the CI failure of 2026-12-07).
    """
    from filelock import FileLock, Timeout

    existed = lock_path.exists()
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        if not existed:
            lock_path.unlink(missing_ok=True)
        lock.release()


def is_locked(lock_path: Path) -> bool:
    """Whether somebody holds ``lock_path`` now (a missing lock file is free)."""
    if not lock_path.exists():
        return False
    with try_lock(lock_path) as acquired:
        return not acquired
