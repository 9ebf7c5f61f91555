"""brainsleep: Sleep Replay Consolidation for ANNs, simulated with Brian2.

A results directory in a notebook: :func:`load_run` (:mod:`brainsleep.run`), imported on
first use so that ``import brainsleep`` stays light (no torch, no Brian2).
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .run import Run, RunError, load_run

# Brian2 2.8 imports a private distutils helper on Linux too; the warning is noise here.
warnings.filterwarnings("ignore", message="_get_vc_env is private")

__version__ = "0.1.0"

_EXPORTS = {"Run": "run", "RunError": "run", "load_run": "run"}

__all__ = ["Run", "RunError", "__version__", "load_run"]


def __getattr__(name: str) -> Any:
    """Import an exported name from its module on first access (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value
