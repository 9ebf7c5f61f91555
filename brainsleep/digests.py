"""Content digests of source files, for the keys of caches whose entries code decides
(compiled builds: :mod:`brainsleep.sleep.standalone`; trained baselines:
:mod:`brainsleep.experiment.baselines`). Imports nothing heavy."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path


def files_digest(paths: Iterable[Path]) -> str:
    """SHA-256 (hex) of the names and contents of ``paths``, in the order given.

    Raises
    ------
    OSError
        A file cannot be read.
    """
    h = hashlib.sha256()
    for path in paths:
        h.update(path.name.encode() + b"\0" + Path(path).read_bytes() + b"\0")
    return h.hexdigest()
