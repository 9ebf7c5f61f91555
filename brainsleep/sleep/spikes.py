"""Spike trains as a sparse xarray Dataset: one row per spike (see docs/formats.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from brainsleep.atomic import atomic_write_with


def make_spike_dataset(per_layer, attrs: dict) -> xr.Dataset:
    """Build the spike Dataset from per-layer (steps, neurons) arrays.

    Parameters
    ----------
    per_layer : list
        For each layer (0 = input) a tuple ``(steps, neurons)`` of int arrays, or None
        when the layer was not recorded.
    attrs : dict
        Dataset attributes (dt, n_steps, device, seed, layer_sizes, params, model).
    """
    layers, neurons, steps = [], [], []
    recorded = []
    for layer, item in enumerate(per_layer):
        if item is None:
            continue
        recorded.append(layer)
        s, n = item
        steps.append(np.asarray(s, dtype=np.int32))
        neurons.append(np.asarray(n, dtype=np.int32))
        layers.append(np.full(len(s), layer, dtype=np.int16))
    if steps:
        step = np.concatenate(steps)
        neuron = np.concatenate(neurons)
        layer_arr = np.concatenate(layers)
        order = np.lexsort((neuron, layer_arr, step))
        step, neuron, layer_arr = step[order], neuron[order], layer_arr[order]
    else:
        step = np.zeros(0, np.int32)
        neuron = np.zeros(0, np.int32)
        layer_arr = np.zeros(0, np.int16)
    ds = xr.Dataset(
        {
            "layer": ("spike", layer_arr),
            "neuron": ("spike", neuron),
            "step": ("spike", step),
        }
    )
    ds.attrs.update(attrs)
    ds.attrs["recorded_layers"] = np.asarray(recorded, dtype=np.int64)
    return ds


def layer_spikes(ds: xr.Dataset, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """(steps, neurons) of one layer's spikes."""
    mask = ds["layer"].values == layer
    return ds["step"].values[mask], ds["neuron"].values[mask]


def spike_counts(ds: xr.Dataset) -> dict[int, int]:
    """Total spike count per recorded layer."""
    counts = np.bincount(
        ds["layer"].values.astype(np.int64), minlength=len(ds.attrs["layer_sizes"])
    )
    return {int(layer): int(counts[layer]) for layer in np.atleast_1d(ds.attrs["recorded_layers"])}


def neuron_counts(ds: xr.Dataset, layer: int) -> np.ndarray:
    """Spike count of every neuron of a layer (length = layer size)."""
    size = int(np.atleast_1d(ds.attrs["layer_sizes"])[layer])
    _, neurons = layer_spikes(ds, layer)
    return np.bincount(neurons, minlength=size)


def firing_rates(ds: xr.Dataset, layer: int) -> np.ndarray:
    """Mean firing rate (Hz) of every neuron of a layer over the whole sleep."""
    duration = float(ds.attrs["n_steps"]) * float(ds.attrs["dt"])
    return neuron_counts(ds, layer) / duration


def save_spikes(ds: xr.Dataset, path: str | Path) -> Path:
    """Write the Dataset to netCDF (h5netcdf) atomically: temp file, then rename."""
    return atomic_write_with(path, lambda tmp: ds.to_netcdf(tmp, engine="h5netcdf"))


def load_spikes(path: str | Path) -> xr.Dataset:
    """Read a spike Dataset written by :func:`save_spikes` (fully loaded, file closed)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no spike file at {path}")
    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            ds = ds.load()
    except Exception as exc:
        raise ValueError(f"spike file {path} is not a readable netCDF file: {exc}") from exc
    for name in ("layer", "neuron", "step"):
        if name not in ds:
            raise ValueError(f"spike file {path} lacks the variable {name!r}")
    return ds
