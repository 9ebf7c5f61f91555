"""``python -m brainsleep.experiment``: train -> sleep -> evaluate, with controls."""

from .config import ConfigError, ExperimentConfig, validate
from .pipeline import run_experiment

__all__ = ["ConfigError", "ExperimentConfig", "run_experiment", "validate"]
