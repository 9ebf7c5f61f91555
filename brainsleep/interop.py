"""The spike table as the objects of other tools: Neo ``SpikeTrain`` (and so Elephant).

:func:`to_neo` turns a spike table (:mod:`brainsleep.formats`, ``spikes.nc``) into one
:class:`neo.core.SpikeTrain` per neuron of a layer, so that the spike-train statistics of
Elephant (``elephant.statistics``, ``elephant.spike_train_correlation``, ...) apply
directly::

    from brainsleep import load_run
    from brainsleep.interop import to_neo
    import elephant.statistics

    trains = to_neo(load_run("results/default").spikes("mnist_f0.1_none_s0"), layer=1)
    rates = [elephant.statistics.mean_firing_rate(t) for t in trains]   # in 1/s

Neo (and its unit library, ``quantities``) is imported only when :func:`to_neo` is
called, so the rest of brainsleep works without it.

Source: Garcia S. et al. (2014), "Neo: an object model for handling electrophysiology
data in multiple formats", Front. Neuroinform. 8:10; https://neo.readthedocs.io.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from brainsleep.formats import layer_spikes, spike_info

if TYPE_CHECKING:
    import neo

__all__ = ["to_neo"]


def to_neo(ds: xr.Dataset, layer: int) -> list[neo.SpikeTrain]:
    """One Neo ``SpikeTrain`` per neuron of a layer of a spike table.

    Spike ``i`` of neuron ``n`` is at ``step_i * dt`` seconds, computed exactly as
    :func:`brainsleep.formats.spike_times` does; the train spans ``[0, n_steps * dt)``.

    Parameters
    ----------
    ds : xarray.Dataset
        Spike table (``dt`` in seconds, ``n_steps``, ``layer_sizes`` in its attributes),
        e.g. ``load_spikes(path)`` or ``load_run(DIR).spikes(cell)``.
    layer : int
        Layer index (0 = input, 1..L = weight-layer outputs); it must be recorded.

    Returns
    -------
    list of neo.SpikeTrain
        ``layer_sizes[layer]`` trains, index ``n`` for neuron ``n`` (a silent neuron has an
        empty train). Times in seconds (units ``s``), ``t_start`` 0 s, ``t_stop``
        ``n_steps * dt`` s, ``sampling_rate`` ``1 / dt`` Hz; ``annotations`` hold
        ``layer`` and ``neuron``, ``name`` is ``"layer<k> neuron<n>"``.

    Raises
    ------
    ModuleNotFoundError
        Neo is not installed (``pip install neo``).
    IndexError
        ``layer`` is not a layer of ``layer_sizes``.
    brainsleep.formats.LayerNotRecordedError
        The layer was not recorded.
    """
    try:
        import neo
        import quantities as pq
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            f"to_neo needs Neo ({exc.name} is not installed); pip install neo"
        ) from exc
    info = spike_info(ds)
    steps, neurons = layer_spikes(ds, layer)  # in (step, neuron) order within the layer
    times = steps.astype(np.float64) * info.dt
    order = np.argsort(neurons, kind="stable")  # group by neuron, times stay sorted
    bounds = np.searchsorted(neurons[order], np.arange(info.layer_sizes[layer] + 1))
    t_stop = info.duration_s * pq.s
    rate = (1.0 / info.dt) * pq.Hz
    return [
        neo.SpikeTrain(
            times[order[bounds[n] : bounds[n + 1]]],
            units="s",
            t_start=0.0 * pq.s,
            t_stop=t_stop,
            sampling_rate=rate,
            name=f"layer{layer} neuron{n}",
            layer=int(layer),
            neuron=int(n),
        )
        for n in range(info.layer_sizes[layer])
    ]
