"""brainsleep: Sleep Replay Consolidation for ANNs, simulated with Brian2.

A results directory in a notebook: :func:`load_run` (:mod:`brainsleep.run`), imported on
first use so that ``import brainsleep`` stays light (no torch, no Brian2).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from .lazy import lazy_exports

if TYPE_CHECKING:
    from .run import Run, RunError, load_run

# Brian2 2.8 imports a private distutils helper on Linux too; the warning is noise here.
warnings.filterwarnings("ignore", message="_get_vc_env is private")

__version__ = "0.1.0"

_EXPORTS = {"Run": "run", "RunError": "run", "load_run": "run"}

__all__ = ["Run", "RunError", "__version__", "load_run"]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
