"""The grid of an experiment, its cells, and their data: what every protocol's runner
and the scheduler share, one layer below them (so none of them imports another).

A *cell* is one (data set, fraction, imbalance, seed), a :class:`brainsleep.formats.CellKey`;
its id names its folder (:func:`brainsleep.formats.format_cell_id`).
"""

from __future__ import annotations

import platform

import numpy as np
import xarray as xr

from brainsleep.data import as_float, load_dataset
from brainsleep.formats import CellKey

from .config import ExperimentConfig

__all__ = ["cells", "load_data", "versions"]


def cells(cfg: ExperimentConfig) -> list[CellKey]:
    """The cells of a configuration, data set by fraction by seed."""
    return [
        CellKey(d, float(f), cfg.imbalance, int(s))
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
