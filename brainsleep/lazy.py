"""Names a package exports, imported from their modules on first use (PEP 562).

A package keeps its import light (no torch, no Brian2) and still offers its public
names: ``__getattr__, __dir__ = lazy_exports(__name__, {"name": "module", ...})``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of a package with lazy exports.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    exports : mapping of str to str
        Each exported name to the submodule (relative to ``package``) that defines it.

    Returns
    -------
    tuple of callables
        ``__getattr__(name)`` imports an exported name on first access and keeps it in the
        package (any other name raises AttributeError); ``__dir__()`` lists both.
    """

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{exports[name]}", package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
