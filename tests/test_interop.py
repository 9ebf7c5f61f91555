"""The spike table as Neo SpikeTrains (brainsleep.interop): a round trip, exact to the bit."""

from __future__ import annotations

import numpy as np
import pytest

from brainsleep.formats import LayerNotRecordedError, load_spikes, save_spikes
from tests.test_formats import small_spikes

neo = pytest.importorskip("neo")

from brainsleep.interop import to_neo  # noqa: E402 (after the skip: needs Neo)


@pytest.mark.parametrize("through_file", [False, True], ids=["in_memory", "spikes.nc"])
def test_spike_table_to_neo_and_back(tmp_path, through_file):
    """spike table -> Neo -> per neuron, exactly the times step * dt of that neuron."""
    ds = small_spikes(seed=5)
    if through_file:
        ds = load_spikes(save_spikes(ds, tmp_path / "spikes.nc"))
    dt, n_steps = float(ds.attrs["dt"]), int(ds.attrs["n_steps"])
    layer, size = 2, 4
    trains = to_neo(ds, layer)
    assert len(trains) == size
    steps = ds["step"].values[ds["layer"].values == layer]
    neurons = ds["neuron"].values[ds["layer"].values == layer]
    total = 0
    for n, train in enumerate(trains):
        assert isinstance(train, neo.SpikeTrain)
        assert train.annotations == {"layer": layer, "neuron": n}
        assert str(train.units.dimensionality) == "s"
        assert float(train.t_start) == 0.0 and float(train.t_stop) == n_steps * dt
        want = np.sort(steps[neurons == n].astype(np.float64) * dt)
        assert train.magnitude.tobytes() == want.tobytes()  # bit-identical times
        total += len(train)
    assert total == len(steps)  # every spike of the layer, once


def test_silent_neurons_get_empty_trains():
    from brainsleep.formats import make_spike_dataset

    ds = make_spike_dataset(
        [(np.array([3, 1]), np.array([2, 2]))], {"dt": 5e-4, "n_steps": 10, "layer_sizes": [4]}
    )
    trains = to_neo(ds, 0)
    assert [len(t) for t in trains] == [0, 0, 2, 0]
    np.testing.assert_array_equal(trains[2].magnitude, [5e-4, 1.5e-3])


def test_a_layer_not_recorded_is_refused():
    with pytest.raises(LayerNotRecordedError, match="layer 1 was not recorded"):
        to_neo(small_spikes(), 1)
