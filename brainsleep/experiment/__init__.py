"""``python -m brainsleep.experiment``: train -> sleep -> evaluate, with controls.

Names are imported on first use: ``python -m brainsleep.experiment --help`` and argument
errors load neither torch nor Brian2 (the pipeline imports both).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from brainsleep.lazy import lazy_exports

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


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
