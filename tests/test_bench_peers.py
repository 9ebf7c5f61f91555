"""The benchmark peers: the torch sleep loop against the numpy oracle, and the traffic floor."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from brainsleep.sleep import SleepParams
from brainsleep.sleep.inputs import ArrayInput
from brainsleep.sleep.reference import simulate_reference

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from floor import floor_seconds, measure_bandwidth, traffic_bytes  # noqa: E402

torch_peer = pytest.importorskip("torch_peer", reason="torch is not installed")
simulate_torch = torch_peer.simulate_torch


# Small helpers of tests/test_sleep_engine.py, copied (test modules do not import each other).
def random_net(sizes, seed, low=-0.3, high=0.6):
    rng = np.random.default_rng(seed)
    return [rng.uniform(low, high, (sizes[k + 1], sizes[k])) for k in range(len(sizes) - 1)]


def deterministic_input(n_steps, n_in, seed, p=0.5):
    """x in {0, 1}: with max_rate >= 500 every firing probability is exactly 0 or 1."""
    return (np.random.default_rng(seed).random((n_steps, n_in)) < p).astype(float)


def det_params(n_layers, threshold=0.8, alpha=1.0, inc=0.01, dec=0.005):
    return SleepParams.for_model(
        max_rate=1000.0,
        inc=inc,
        dec=dec,
        v_thresh=[threshold] * n_layers,
        alphas=[alpha] * n_layers,
    )


# ---------------------------------------------------------------------------- torch peer


# DENSE_FRACTION 0: every step with a presynaptic spike takes the dense product; inf:
# every step gathers the spiking columns; the default mixes both on this input.
@pytest.mark.parametrize("dense_fraction", [None, 0.0, math.inf])
@pytest.mark.parametrize("sizes", [(20, 15, 10, 5), (12, 30, 4)])
def test_torch_peer_matches_oracle_on_deterministic_input(sizes, dense_fraction, monkeypatch):
    if dense_fraction is not None:
        monkeypatch.setattr(torch_peer, "DENSE_FRACTION", dense_fraction)
    weights = random_net(sizes, seed=len(sizes))
    before = [w.copy() for w in weights]
    x = ArrayInput(deterministic_input(60, sizes[0], seed=3))
    params = det_params(len(sizes) - 1)
    ref_w, ref_s = simulate_reference(weights, x, params, seed=5, exact_exp=False)
    got_w, got_s = simulate_torch(weights, x, params, seed=5)
    assert all(s[0].size > 0 for s in ref_s), [s[0].size for s in ref_s]  # every layer
    for layer, (a, b) in enumerate(zip(ref_s, got_s, strict=True)):
        assert b[0].dtype == np.int32 and b[1].dtype == np.int32
        np.testing.assert_array_equal(a[0], b[0], err_msg=f"steps of layer {layer}")
        np.testing.assert_array_equal(a[1], b[1], err_msg=f"neurons of layer {layer}")
    for k, (a, b) in enumerate(zip(ref_w, got_w, strict=True)):
        assert b.shape == a.shape and b.dtype == np.float64
        assert np.abs(a - b).max() <= 1e-12, f"layer {k + 1}"
    assert any(not np.array_equal(w0, w1) for w0, w1 in zip(before, got_w, strict=True))
    # The caller's weights are copied, not modified.
    assert all(np.array_equal(w0, w) for w0, w in zip(before, weights, strict=True))


def test_torch_peer_same_seed_same_result_and_restores_threads():
    import torch

    sizes = (30, 20, 6)
    weights = random_net(sizes, seed=1, low=-0.1, high=0.4)
    x = ArrayInput(np.random.default_rng(0).random((80, sizes[0])))
    params = SleepParams.for_model(
        max_rate=300.0, inc=0.01, dec=0.005, v_thresh=[0.5, 0.5], alphas=[1.0, 1.0]
    )
    threads = torch.get_num_threads()
    a_w, a_s = simulate_torch(weights, x, params, seed=7, threads=1)
    assert torch.get_num_threads() == threads
    b_w, b_s = simulate_torch(weights, x, params, seed=7)
    c_w, c_s = simulate_torch(weights, x, params, seed=8)
    assert a_s[0][0].size > 0 and a_s[1][0].size > 0
    for a, b in zip(a_s, b_s, strict=True):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    for a, b in zip(a_w, b_w, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a_s[0][1], c_s[0][1])  # another seed, other input spikes


def test_torch_peer_record_layers():
    sizes = (12, 8, 3)
    weights = random_net(sizes, seed=2)
    x = ArrayInput(deterministic_input(20, sizes[0], seed=1))
    params = det_params(2)
    ref_w, ref_s = simulate_reference(weights, x, params, record_layers=(1,), exact_exp=False)
    got_w, got_s = simulate_torch(weights, x, params, record_layers=(1,))
    assert got_s[0] is None and got_s[2] is None
    np.testing.assert_array_equal(ref_s[1][1], got_s[1][1])


# ---------------------------------------------------------------------------- floor


def test_traffic_bytes_by_hand():
    # sizes 4-3-2, spikes 5 (input), 2, 1.
    # layer 1: fan-out 5 * 3 * 8 = 120; rows 2 * 2 * 4 * 8 = 128; flags 2 * 4 = 8;
    #          events 5 * 3 + 2 * 4 = 23.
    # layer 2: fan-out 2 * 2 * 8 = 32; rows 1 * 2 * 3 * 8 = 48; flags 1 * 3 = 3;
    #          events 2 * 2 + 1 * 3 = 7.
    t = traffic_bytes((4, 3, 2), [5, 2, 1], n_steps=10)
    assert t["layers"] == [
        {"layer": 1, "pre_read_bytes": 120, "post_rw_bytes": 128, "flag_bytes": 8, "events": 23},
        {"layer": 2, "pre_read_bytes": 32, "post_rw_bytes": 48, "flag_bytes": 3, "events": 7},
    ]
    assert t["read_bytes"] == 120 + 8 + 32 + 3
    assert t["rw_bytes"] == 128 + 48
    assert t["total_bytes"] == 339
    assert t["events"] == 30
    assert t["n_steps"] == 10


def test_traffic_bytes_rejects_mismatched_counts():
    with pytest.raises(ValueError, match="one spike count per layer"):
        traffic_bytes((4, 3, 2), [5, 2], n_steps=10)


def test_floor_seconds_arithmetic():
    t = traffic_bytes((4, 3, 2), [5, 2, 1], n_steps=10)
    bw = {"read_Bps": 100.0, "copy_Bps": 50.0}
    assert floor_seconds(t, bw) == pytest.approx(163 / 100 + 176 / 50, rel=1e-15)
    assert floor_seconds(traffic_bytes((4, 3), [0, 0], 5), bw) == 0.0


def test_measure_bandwidth_small():
    bw = measure_bandwidth(n_bytes=2**20, repeats=2)
    assert bw["bytes"] == 2**20
    for key in ("read_Bps", "copy_Bps"):
        assert math.isfinite(bw[key]) and bw[key] > 0
