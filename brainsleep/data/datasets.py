"""Data sets as arrays: :func:`load_dataset`, :class:`ImageDataset` and a user's ``data_dir``.

:func:`load_dataset` accepts a canonical name or an alias (:data:`KNOWN_DATASETS`) and
returns read-only uint8 images and int64 labels in the original order, from the user's
``data_dir`` when one is given (header-validated, not checksum-checked), else from the
verified cache, which fetches what it lacks (:mod:`brainsleep.data.store`).
:func:`data_dir_digest` fingerprints a ``data_dir`` and :func:`as_float` turns images
into the float rows a network takes.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brainsleep.names import unknown_name

from .idx import _ROLES, IDX_FILES, _gunzip, _parse_idx
from .sources import _IMAGE_SHAPE, _N_CLASSES, _SPECS, DataUnavailableError, _sha256, _Spec
from .store import _fetch_into_cache, _read_cached, default_cache_dir

logger = logging.getLogger(__name__)

#: Canonical data set names accepted by :func:`load_dataset`.
KNOWN_DATASETS = ("mnist", "fashion-mnist")
_ALIASES = {
    "mnist": "mnist",
    "fashion-mnist": "fashion-mnist",
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "fmnist": "fashion-mnist",
}


@dataclass(frozen=True)
class ImageDataset:
    """Images and labels of one data set, in the original order.

    Parameters
    ----------
    name : str
        Canonical data set name (``"mnist"`` or ``"fashion-mnist"``).
    train_images, test_images : numpy.ndarray
        uint8 arrays of shape (N, 28, 28).
    train_labels, test_labels : numpy.ndarray
        int64 arrays of shape (N,), values 0..9.
    source : str
        Where the data came from (``"data_dir:<path>"``, ``"cache:<path>"``, ...);
        informative only.

    Notes
    -----
    The arrays are made read-only so that one loaded data set can be shared safely;
    index or ``.copy()`` them for a writable array (``images[idx]`` already copies).
    """

    name: str
    train_images: np.ndarray = field(repr=False)
    train_labels: np.ndarray = field(repr=False)
    test_images: np.ndarray = field(repr=False)
    test_labels: np.ndarray = field(repr=False)
    source: str = ""

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            images = getattr(self, f"{split}_images")
            labels = getattr(self, f"{split}_labels")
            if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != _IMAGE_SHAPE:
                raise ValueError(
                    f"{split}_images must be uint8 (N, 28, 28), got {images.dtype} {images.shape}"
                )
            if labels.dtype != np.int64 or labels.shape != (images.shape[0],):
                raise ValueError(
                    f"{split}_labels must be int64 ({images.shape[0]},), "
                    f"got {labels.dtype} {labels.shape}"
                )
            images.setflags(write=False)
            labels.setflags(write=False)

    @property
    def n_classes(self) -> int:
        """Number of classes (10 for both data sets)."""
        return _N_CLASSES

    @property
    def n_train(self) -> int:
        """Number of training images."""
        return int(self.train_images.shape[0])

    @property
    def n_test(self) -> int:
        """Number of test images."""
        return int(self.test_images.shape[0])

    @staticmethod
    def as_float(images: np.ndarray) -> np.ndarray:
        """Alias of :func:`as_float`."""
        return as_float(images)


def as_float(images: np.ndarray) -> np.ndarray:
    """Flatten uint8 images to float32 rows in [0, 1].

    Parameters
    ----------
    images : numpy.ndarray
        uint8 array of shape (N, 28, 28) or (N, 784).

    Returns
    -------
    numpy.ndarray
        float32 array of shape (N, 784): ``images / 255``.
    """
    images = np.asarray(images)
    # Only uint8 is accepted so that already-scaled floats are never divided twice.
    if images.dtype != np.uint8:
        raise TypeError(f"as_float expects uint8 images, got {images.dtype}")
    flat = images.reshape(images.shape[0], -1)
    return flat.astype(np.float32) / np.float32(255.0)


def _canonical_name(name: str) -> str:
    key = str(name).strip().lower()
    if key not in _ALIASES:
        raise ValueError(
            unknown_name("data set", name, KNOWN_DATASETS)
            + f" (aliases: {', '.join(sorted(set(_ALIASES) - set(KNOWN_DATASETS)))})"
        )
    return _ALIASES[key]


def _find_in_dir(data_dir: Path, spec: _Spec) -> tuple[Path, dict[str, Path]]:
    """Find the four IDX files in ``data_dir`` or a per-data-set subdirectory of it."""
    torchvision_dir = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}.get(spec.name, "")
    subdirs = [".", spec.name, spec.name.replace("-", "_"), f"{torchvision_dir}/raw"]
    searched = []
    for sub in dict.fromkeys(subdirs):
        directory = (data_dir / sub).resolve()
        searched.append(str(directory))
        found = {}
        for role, stem in IDX_FILES.items():
            # Some distributions write "train-images.idx3-ubyte"; accept both spellings.
            dotted = stem.replace("-idx", ".idx")
            for cand in (stem, f"{stem}.gz", dotted, f"{dotted}.gz"):
                if (directory / cand).is_file():
                    found[role] = directory / cand
                    break
        if len(found) == len(IDX_FILES):
            return directory, found
    wanted = ", ".join(f"{stem}[.gz]" for stem in IDX_FILES.values())
    raise DataUnavailableError(
        f"{spec.name}: data_dir {data_dir} does not hold the four IDX files {wanted} "
        f"(searched {', '.join(searched)})"
    )


def data_dir_digest(name: str, data_dir: str | Path) -> str:
    """sha256 over the content of a data set's four IDX files in a user's ``data_dir``.

    Recorded in a results directory's fingerprint: results made from other files are
    never resumed as if they were the same data.

    Raises
    ------
    DataUnavailableError
        When ``data_dir`` does not hold the four files.
    """
    _, paths = _find_in_dir(Path(data_dir).expanduser(), _SPECS[name])
    h = hashlib.sha256()
    for role in sorted(paths):
        stat = paths[role].stat()
        h.update(_file_digest(str(paths[role]), stat.st_size, stat.st_mtime_ns).encode())
    return h.hexdigest()


@functools.lru_cache(maxsize=64)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file, remembered per (path, size, mtime)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _load_from_dir(spec: _Spec, data_dir: Path) -> ImageDataset:
    directory, paths = _find_in_dir(data_dir, spec)
    raws = {}
    for role, path in paths.items():
        raws[role] = _gunzip(path.read_bytes(), str(path))
        # Users bring their own files (not required to be the official ones); say which.
        if _sha256(raws[role]) != spec.content_sha256[role]:
            logger.info("%s differs from the official %s %s", path, spec.name, IDX_FILES[role])
    dataset = _assemble(spec, raws, {r: str(p) for r, p in paths.items()}, f"data_dir:{directory}")
    if (dataset.n_train, dataset.n_test) != (spec.n_train, spec.n_test):
        logger.warning(
            "%s: %d train / %d test images in %s (the official set has %d / %d)",
            spec.name,
            dataset.n_train,
            dataset.n_test,
            directory,
            spec.n_train,
            spec.n_test,
        )
    return dataset


def _assemble(
    spec: _Spec, raws: Mapping[str, bytes], labels: Mapping[str, str], source: str
) -> ImageDataset:
    arrays = {role: _parse_idx(raws[role], labels[role]) for role in _ROLES}
    for split in ("train", "test"):
        images, lab = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        where = labels[f"{split}_images"]
        if images.ndim != 3 or images.shape[1:] != _IMAGE_SHAPE:
            raise ValueError(f"{where}: images must be N x 28 x 28, got {images.shape}")
        if lab.ndim != 1:
            raise ValueError(f"{labels[f'{split}_labels']}: labels must be 1-D, got {lab.shape}")
        if images.shape[0] != lab.shape[0]:
            raise ValueError(
                f"{where}: {images.shape[0]} images but {lab.shape[0]} labels in "
                f"{labels[f'{split}_labels']}"
            )
        if lab.size and int(lab.max()) >= _N_CLASSES:
            raise ValueError(f"{labels[f'{split}_labels']}: label {int(lab.max())} is not 0..9")
    return ImageDataset(
        name=spec.name,
        train_images=arrays["train_images"],
        train_labels=arrays["train_labels"].astype(np.int64),
        test_images=arrays["test_images"],
        test_labels=arrays["test_labels"].astype(np.int64),
        source=source,
    )


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> ImageDataset:
    """Load MNIST or Fashion-MNIST in the original order.

    Parameters
    ----------
    name : str
        ``"mnist"`` or ``"fashion-mnist"`` (also ``"fashion_mnist"``, ``"fmnist"``).
    data_dir : str or pathlib.Path, optional
        A directory with the four IDX files ``train-images-idx3-ubyte``,
        ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
        ``t10k-labels-idx1-ubyte`` (each gz or plain), directly or in a subdirectory named
        after the data set (or torchvision's ``MNIST/raw``, ``FashionMNIST/raw``). When
        given, it is the only source used; the files are header-validated, not
        checksum-checked, so a user may bring a modified set.
    cache_dir : str or pathlib.Path, optional
        Cache root; defaults to :func:`brainsleep.paths.cache_root`.

    Returns
    -------
    ImageDataset
        uint8 images (N, 28, 28), int64 labels, read-only.

    Raises
    ------
    ValueError
        Unknown name, or malformed IDX files.
    DataUnavailableError
        ``data_dir`` lacks the files, or neither the registry nor the upstream mirrors
        could provide them.
    """
    spec = _SPECS[_canonical_name(name)]
    if data_dir is not None:
        return _load_from_dir(spec, Path(data_dir).expanduser())
    root = default_cache_dir(cache_dir) / spec.name
    raws, where = _read_cached(spec, root)
    missing = [role for role in _ROLES if role not in raws]
    source = f"cache:{root}"
    if missing:
        fetched, label = _fetch_into_cache(spec, root, missing)
        raws.update(fetched)
        where.update({role: f"{label}:{IDX_FILES[role]}" for role in fetched})
        source = f"{label} -> cache:{root}"
    dataset = _assemble(spec, raws, where, source)
    # Verified digests fix the sizes; this guards a wrong entry in a spec table.
    if (dataset.n_train, dataset.n_test) != (spec.n_train, spec.n_test):
        raise ValueError(
            f"{spec.name}: {dataset.n_train}/{dataset.n_test} images, "
            f"expected {spec.n_train}/{spec.n_test}"
        )
    logger.debug("%s loaded from %s", spec.name, source)
    return dataset
