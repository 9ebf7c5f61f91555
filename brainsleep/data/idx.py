"""The IDX file format: the four standard files of a data set, encoded, written and read.

MNIST and Fashion-MNIST ship as four IDX files of unsigned bytes (:data:`IDX_FILES`):
a big-endian header (magic number, dimensions) and the raw pixels or labels, often
gzipped. This module turns uint8 arrays into such files (:func:`encode_idx`,
:func:`write_idx`) and back (:func:`read_idx`, :func:`_parse_idx`), with a one-line
error naming the file for every malformed header, payload or gzip stream; it knows
nothing about where the files come from.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

#: Role -> standard IDX file name (without ``.gz``).
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_ROLES = tuple(IDX_FILES)

_IMAGE_MAGIC = 0x00000803
_LABEL_MAGIC = 0x00000801
_UBYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"


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
