"""``python -m brainsleep.experiment``: train -> sleep -> evaluate, with controls.

Names are imported on first use: ``python -m brainsleep.experiment --help`` and argument
errors load neither torch nor Brian2 (the pipeline imports both).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import ConfigError, ExperimentConfig, validate
    from .pipeline import run_experiment

_EXPORTS = {
    "ConfigError": "config",
    "ExperimentConfig": "config",
    "validate": "config",
    "run_experiment": "pipeline",
}

__all__ = ["ConfigError", "ExperimentConfig", "run_experiment", "validate"]


def __getattr__(name: str) -> Any:
    """Import an exported name from its module on first access (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
