"""Trained baselines shared across runs: a sweep trains each network once, not per run.

A sweep (``studies/input_sweep.toml``: 23 runs of the same cells, only the sleep
differs) would otherwise train the same baseline 23 times; with the strong recipe that is
almost all of its time. A baseline depends only on the training recipe (with its
remedies), the layer sizes, the seed, the training and validation data, the training code
and the machine's numerics, so that is the key (:func:`baseline_key`): an entry holds
exactly what training that cell here would produce, and the stages after it (each seeded
by itself) are unchanged.

The cache lives in ``$BRAINSLEEP_BASELINE_CACHE`` if set (``off`` disables it), else
``<cache root>/baselines`` (:func:`brainsleep.paths.baseline_cache_root`). One entry per
key, ``<key>.npz`` (the weights, float64, and a JSON record) written atomically, its mtime
refreshed on every load (its last use, which ``python -m brainsleep.cache prune
--baselines`` reads); a file lock per key, ``<key>.lock``, makes a second process wait
for the first one's training instead of repeating it. A damaged entry stops the run with
an error naming the file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import platform
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from brainsleep.atomic import atomic_write_bytes
from brainsleep.build_layout import lock_file
from brainsleep.digests import files_digest
from brainsleep.paths import baseline_cache_root

__all__ = ["BaselineCache", "BaselineCacheError", "baseline_key"]

log = logging.getLogger("brainsleep.experiment")

#: Libraries whose version decides a trained baseline besides torch and numpy (kornia:
#: the augmentation remedy).
_TRAINING_LIBRARIES = ("kornia",)


class BaselineCacheError(RuntimeError):
    """An unreadable or inconsistent cache entry (the message names the file)."""


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def training_sources() -> list[Path]:
    """The files whose code decides a trained baseline: every module of
    :mod:`brainsleep.ann` (training imports evaluation for early stopping, recipes and
    remedies; a module listed by hand would be forgotten once)."""
    from brainsleep import ann

    return sorted(Path(ann.__file__).parent.glob("*.py"))


def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in _TRAINING_LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


def _array_digest(*arrays: np.ndarray | None) -> str:
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def baseline_key(
    recipe,
    sizes: Sequence[int],
    seed: int,
    x: np.ndarray,
    y: np.ndarray,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    device: str = "cpu",
) -> str:
    """The identity of a trained baseline: what training depends on, hashed.

    Parameters
    ----------
    recipe : brainsleep.ann.Recipe
        The training recipe, remedies included (a frozen dataclass).
    sizes : sequence of int
        Layer sizes, input first.
    seed : int
        The cell's seed (initialisation and training).
    x, y : numpy.ndarray
        Training images ``(n, 784)`` and labels ``(n,)``.
    x_val, y_val : numpy.ndarray, optional
        The validation split (early stopping reads it), or None.
    device : str, optional
        Where it trains (``--train-device``, resolved by
        :func:`brainsleep.ann.training.resolve_train_device`).

    Returns
    -------
    str
        40 hex digits. Also covers the training code (:func:`training_sources`), the
        torch, numpy and kornia versions and the CPU model: the strong recipe's float32
        arithmetic is not bit-reproducible across CPUs, so machines of another kind get
        their own entries. Trained on a GPU, also the device, the GPU's model and torch's
        CUDA version (a GPU's float32 arithmetic is another still); on the CPU the key is
        what it was before GPUs were offered, so CPU entries stay valid.
    """
    import torch

    from brainsleep.ann.training import resolve_train_device

    ident = {
        "recipe": dataclasses.asdict(recipe),
        "sizes": [int(s) for s in sizes],
        "seed": int(seed),
        "data": _array_digest(x, y, x_val, y_val),
        "code": files_digest(training_sources()),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "libraries": _library_versions(),
        "cpu": _cpu_model(),
    }
    if resolve_train_device(device) != "cpu":
        ident["train_device"] = {
            "device": resolve_train_device(device),
            "gpu": torch.cuda.get_device_name(),
            "cuda": torch.version.cuda,
        }
    text = json.dumps(ident, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:40]


class BaselineCache:
    """Trained baselines by :func:`baseline_key`, shared by runs and processes.

    Parameters
    ----------
    root : path
        The cache directory (created on the first store).
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    @classmethod
    def default(cls) -> BaselineCache | None:
        """``$BRAINSLEEP_BASELINE_CACHE`` (None when ``off``), else the user cache's
        ``baselines`` folder."""
        root = baseline_cache_root()
        return None if root is None else cls(root)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.npz"

    @contextlib.contextmanager
    def claim(self, key: str) -> Iterator[None]:
        """Hold the key's lock: one process trains a baseline, the others then load it."""
        from filelock import FileLock

        self.root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(lock_file(self.root, key))):
            yield

    def load(self, key: str) -> tuple[list[np.ndarray], dict] | None:
        """The entry's weights (float64, layer order) and record, or None if absent.

        Raises
        ------
        BaselineCacheError
            The entry exists but cannot be read, or its record does not match its key or
            its weights.
        """
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                record = json.loads(str(z["record"]))
                weights = [np.array(z[f"layer{k}"]) for k in range(1, record["n_layers"] + 1)]
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
            # a truncated or overwritten .npz fails inside zipfile, not with an OSError
            raise BaselineCacheError(
                f"cannot read the cached baseline {path} ({exc}); delete it to train again"
            ) from exc
        if record.get("key") != key or record.get("weights") != _array_digest(*weights):
            raise BaselineCacheError(
                f"the cached baseline {path} does not match its record; delete it to train again"
            )
        with contextlib.suppress(OSError):  # last use, for pruning only: a read-only cache is fine
            os.utime(path)
        return weights, record

    def load_or_discard(self, key: str) -> tuple[list[np.ndarray], dict] | None:
        """:meth:`load`, but a broken entry is deleted (with a warning) and None returned.

        Call it only while holding :meth:`claim` for ``key``: entries are written
        atomically, so under the lock a broken one is damage (a disk error, a copy cut
        short), never a store in progress, and training it again is safe.
        """
        try:
            return self.load(key)
        except BaselineCacheError as exc:
            log.warning("%s: training it again", exc)
            self.path(key).unlink(missing_ok=True)
            return None

    def store(self, key: str, weights: Sequence[np.ndarray], info: dict) -> Path:
        """Write an entry atomically: the weights and ``info`` (JSON-able) with the key."""
        import io

        weights = [np.asarray(w, dtype=np.float64) for w in weights]
        record = {
            **info,
            "key": key,
            "n_layers": len(weights),
            "weights": _array_digest(*weights),
        }
        buf = io.BytesIO()
        np.savez(
            buf,
            record=np.array(json.dumps(record)),
            **{f"layer{k}": w for k, w in enumerate(weights, start=1)},
        )
        self.root.mkdir(parents=True, exist_ok=True)
        return atomic_write_bytes(self.path(key), buf.getvalue())
