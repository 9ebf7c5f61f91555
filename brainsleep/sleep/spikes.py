"""Spike trains as a sparse xarray Dataset: one row per spike.

The format and its functions live in :mod:`brainsleep.formats` (the normative description,
free of Brian2 so the analysis can read spikes too); the engine uses them from here.
"""

from __future__ import annotations

from brainsleep.formats import (
    LayerNotRecordedError,
    firing_rates,
    layer_spikes,
    load_spikes,
    make_spike_dataset,
    neuron_spike_counts,
    save_spikes,
    spike_counts,
)

__all__ = [
    "LayerNotRecordedError",
    "firing_rates",
    "layer_spikes",
    "load_spikes",
    "make_spike_dataset",
    "neuron_spike_counts",
    "save_spikes",
    "spike_counts",
]
