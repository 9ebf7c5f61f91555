"""The grid of an experiment, its cells, and their data: what every protocol's runner
and the scheduler share, one layer below them (so none of them imports another).

A *cell* is one (data set, fraction, imbalance, seed); its id names its folder
(:func:`brainsleep.formats.format_cell_id`).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

import numpy as np
import xarray as xr

from brainsleep.data import as_float, load_dataset
from brainsleep.formats import format_cell_id

from .config import ExperimentConfig

__all__ = ["Cell", "cells", "load_data", "versions"]


@dataclass(frozen=True)
class Cell:
    """One cell of the grid: data set, training fraction, imbalance spec and seed."""

    dataset: str
    fraction: float
    imbalance: str
    seed: int

    @property
    def cell_id(self) -> str:
        return format_cell_id(self.dataset, self.fraction, self.imbalance, self.seed)


def cells(cfg: ExperimentConfig) -> list[Cell]:
    """The cells of a configuration, data set by fraction by seed."""
    return [
        Cell(d, float(f), cfg.imbalance, int(s))
        for d in cfg.datasets
        for f in cfg.fractions
        for s in cfg.seeds
    ]


def versions() -> dict:
    """The versions a result records: brainsleep, brian2, torch, numpy, xarray, python."""
    import brian2
    import torch

    import brainsleep

    return {
        "brainsleep": brainsleep.__version__,
        "brian2": brian2.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "xarray": xr.__version__,
        "python": platform.python_version(),
    }


def load_data(cfg: ExperimentConfig) -> dict:
    """Every data set of the run, as float inputs (N, 784) in [0, 1] and int labels."""
    out = {}
    for name in cfg.datasets:
        ds = load_dataset(name, data_dir=cfg.data_dir)
        out[name] = {
            "x_train": as_float(ds.train_images),
            "y_train": np.asarray(ds.train_labels),
            "x_test": as_float(ds.test_images),
            "y_test": np.asarray(ds.test_labels),
        }
    return out
