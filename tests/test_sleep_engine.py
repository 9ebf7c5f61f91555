"""The sleep engine against its numpy oracle, on every Brian2 device this machine has."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from brainsleep.sleep import MaskedMeanImage, SleepParams, load_spikes, run_sleep, save_spikes
from brainsleep.sleep.reference import g_weight
from brainsleep.sleep.spikes import neuron_spike_counts, spike_counts

HAVE_CXX = shutil.which("g++") is not None or shutil.which("c++") is not None
BRIAN_DEVICES = ["runtime", pytest.param("cpp_standalone", marks=pytest.mark.standalone)]


def random_net(sizes, seed, low=-0.3, high=0.6):
    rng = np.random.default_rng(seed)
    return [rng.uniform(low, high, (sizes[k + 1], sizes[k])) for k in range(len(sizes) - 1)]


def deterministic_input(n_steps, n_in, seed, p=0.5):
    """x in {0, 1}: with max_rate >= 500 every firing probability is exactly 0 or 1."""
    return (np.random.default_rng(seed).random((n_steps, n_in)) < p).astype(float)


def det_params(n_layers, threshold=0.8, alpha=1.0, inc=0.01, dec=0.005, model=None):
    return SleepParams.for_model(
        model,
        max_rate=1000.0,
        inc=inc,
        dec=dec,
        v_thresh=[threshold] * n_layers,
        alphas=[alpha] * n_layers,
    )


def published_builds(root) -> set[str]:
    """Names of the compiled builds in a build cache (one per structure)."""
    return {p.name for p in Path(root).glob("*_standalone-*") if p.is_dir()}


def assert_same_spikes(a, b):
    assert a.spikes.sizes["spike"] == b.spikes.sizes["spike"], (
        spike_counts(a.spikes),
        spike_counts(b.spikes),
    )
    for var in ("layer", "neuron", "step"):
        np.testing.assert_array_equal(a.spikes[var].values, b.spikes[var].values)


def assert_weights_close(a, b, atol=1e-12):
    for k, (wa, wb) in enumerate(zip(a.weights, b.weights, strict=True)):
        assert wa.shape == wb.shape
        diff = np.abs(wa - wb).max()
        assert diff <= atol, f"layer {k + 1}: max |dW| {diff}"


def run(device, weights, inputs, params, build_root, **kw):
    if device == "cpp_standalone" and not HAVE_CXX:
        pytest.skip("no C++ compiler")
    return run_sleep(weights, inputs, params, device=device, build_root=build_root, **kw)


# ---------------------------------------------------------------------------- oracle


def test_g_weight_matches_formula_and_limits():
    w = np.array([-1.0, -0.05, -0.001, 0.0, 0.0005, 0.002, 0.05, 1.0])
    expected = np.array([2 * (1 - 1 / (1 + np.exp(-x / 0.001))) for x in w])
    np.testing.assert_allclose(g_weight(w), expected, rtol=1e-15)
    assert g_weight(np.array([0.0]))[0] == 1.0
    assert g_weight(np.array([1.0]))[0] == 0.0  # far right: exactly 0
    assert g_weight(np.array([-1.0]))[0] == 2.0  # far left: exactly 2


def test_reference_by_hand_two_steps():
    """A 2-1 net, input known: potentials, spikes and the Hebbian update by hand."""
    w = [np.array([[0.6, 0.5]])]
    x = np.array([[1.0, 0.0], [1.0, 1.0]])
    p = SleepParams.for_model(
        max_rate=1000, inc=0.1, dec=0.2, v_thresh=[1.0], alphas=[1.0], decay=0.5
    )
    res = run_sleep(w, x, p, device="reference")
    # step 0: v = 0.6 < 1, no spike. step 1: v = 0.5*0.6 + 0.6 + 0.5 = 1.4 >= 1: spike,
    # both inputs fired -> both weights potentiated by inc * g(w).
    steps, layers = res.spikes["step"].values, res.spikes["layer"].values
    assert list(steps[layers == 1]) == [1]
    g = 2 * (1 - 1 / (1 + np.exp(-np.array([0.6, 0.5]) / 0.001)))
    np.testing.assert_allclose(res.weights[0][0], [0.6, 0.5] + 0.1 * g, rtol=0, atol=1e-18)


def test_reference_depresses_silent_inputs():
    w = [np.array([[0.001, 0.0005]])]
    x = np.array([[1.0, 0.0]])
    p = SleepParams.for_model(max_rate=1000, inc=0.1, dec=0.2, v_thresh=[0.0005], alphas=[1.0])
    res = run_sleep(w, x, p, device="reference")
    g = g_weight(np.array([0.001, 0.0005]))
    assert res.weights[0][0, 0] == 0.001 + 0.1 * g[0]
    assert res.weights[0][0, 1] == 0.0005 - 0.2 * g[1]


# ------------------------------------------------------------------ exact agreement


@pytest.mark.parametrize("device", BRIAN_DEVICES)
@pytest.mark.parametrize("sizes", [(20, 15, 10, 5), (12, 30, 4)])
def test_exact_on_deterministic_input(device, sizes, build_root):
    weights = random_net(sizes, seed=len(sizes))
    x = deterministic_input(60, sizes[0], seed=3)
    params = det_params(len(sizes) - 1)
    ref = run_sleep(weights, x, params, device="reference", seed=5)
    counts = spike_counts(ref.spikes)
    assert all(counts[layer] > 0 for layer in counts), counts  # every layer spikes
    got = run(device, weights, x, params, build_root, seed=5)
    assert_same_spikes(ref, got)
    assert_weights_close(ref, got, atol=1e-12 if device == "runtime" else 0.0)
    assert any(not np.array_equal(w0, w1) for w0, w1 in zip(weights, got.weights, strict=True))


@pytest.mark.parametrize("device", BRIAN_DEVICES)
def test_exact_on_masked_mean_image(device, build_root):
    """Masked input generated inside the simulation; intensities 0 or >= 0.25 and a huge
    max_rate make every firing probability exactly 0 or 1."""
    rng = np.random.default_rng(0)
    image = np.where(rng.random((8, 8)) < 0.6, rng.uniform(0.25, 1.0, (8, 8)), 0.0)
    inputs = MaskedMeanImage(image, n_steps=80, patch=3)
    weights = random_net((64, 30, 20, 5), seed=2)
    params = SleepParams.for_model(
        max_rate=1e4, inc=0.02, dec=0.01, v_thresh=[0.9, 0.9, 0.9], alphas=[1.0, 1.0, 1.0]
    )
    ref = run_sleep(weights, inputs, params, device="reference", seed=9)
    assert all(c > 0 for c in spike_counts(ref.spikes).values())
    got = run(device, weights, inputs, params, build_root, seed=9)
    assert_same_spikes(ref, got)
    assert_weights_close(ref, got, atol=1e-12 if device == "runtime" else 0.0)
    # the windows really are 3x3: never more than 9 input spikes in a step
    steps = ref.spikes["step"].values[ref.spikes["layer"].values == 0]
    assert np.bincount(steps).max() <= 9


@pytest.mark.standalone
@pytest.mark.slow
def test_exact_full_size_network(build_root):
    """784-1200-1200-10 with every layer spiking, cpp_standalone vs reference."""
    sizes = (784, 1200, 1200, 10)
    weights = random_net(sizes, seed=11, low=-0.02, high=0.03)
    x = deterministic_input(25, 784, seed=4, p=0.3)
    params = SleepParams.for_model(
        max_rate=1000, inc=0.001, dec=0.0005, v_thresh=[1.0, 1.0, 1.0], alphas=[0.5, 0.5, 0.5]
    )
    ref = run_sleep(weights, x, params, device="reference", seed=1)
    counts = spike_counts(ref.spikes)
    assert all(c > 0 for c in counts.values()), counts
    got = run("cpp_standalone", weights, x, params, build_root, seed=1)
    assert_same_spikes(ref, got)
    assert_weights_close(ref, got, atol=0.0)


# --------------------------------------------------------------- Poisson statistics


@pytest.mark.parametrize("device", BRIAN_DEVICES)
def test_poisson_counts_agree_statistically(device, build_root):
    """Different RNGs: mean spike counts per layer over seeds agree within 4.5 SE."""
    sizes = (20, 15, 10, 5)
    weights = random_net(sizes, seed=4)
    x = np.full((60, 20), 0.5)  # P = 2 * dt * max_rate * x = 0.3 per pixel per step
    params = SleepParams.for_model(
        max_rate=300, inc=0.0, dec=0.0, v_thresh=[0.8] * 3, alphas=[1.0] * 3
    )  # no plasticity: counts are then a clean function of the input statistics
    seeds = range(12)
    ref = np.array(
        [
            list(spike_counts(run_sleep(weights, x, params, "reference", s).spikes).values())
            for s in seeds
        ]
    )
    got = np.array(
        [
            list(spike_counts(run(device, weights, x, params, build_root, seed=s).spikes).values())
            for s in seeds
        ]
    )
    # input layer: binomial with known mean
    expected_input = 0.3 * x.size
    se_input = np.sqrt(x.size * 0.3 * 0.7 / len(seeds))
    assert abs(got[:, 0].mean() - expected_input) < 4.5 * se_input
    se = np.sqrt(ref.var(0, ddof=1) / len(seeds) + got.var(0, ddof=1) / len(seeds)) + 1e-9
    z = np.abs(ref.mean(0) - got.mean(0)) / se
    assert np.all(z < 4.5), (ref.mean(0), got.mean(0), z)
    assert got[:, 1:].sum() > 0


@pytest.mark.parametrize("device", ["reference", *BRIAN_DEVICES])
def test_same_seed_same_result_other_seed_differs(device, build_root):
    sizes = (20, 15, 10, 5)
    weights = random_net(sizes, seed=4)
    x = np.full((60, 20), 0.5)
    params = SleepParams.for_model(
        max_rate=300, inc=0.01, dec=0.005, v_thresh=[0.8] * 3, alphas=[1.0] * 3
    )
    a = run(device, weights, x, params, build_root, seed=3)
    b = run(device, weights, x, params, build_root, seed=3)
    c = run(device, weights, x, params, build_root, seed=4)
    assert_same_spikes(a, b)
    assert_weights_close(a, b, atol=0.0)
    assert not np.array_equal(a.spikes["neuron"].values, c.spikes["neuron"].values)


# --------------------------------------------------------------- compile once, rerun


@pytest.mark.standalone
def test_run_args_reuse_without_recompiling(build_root):
    if not HAVE_CXX:
        pytest.skip("no C++ compiler")
    sizes = (20, 15, 10, 5)
    x = deterministic_input(60, 20, seed=3)
    params = det_params(3)
    run_sleep(random_net(sizes, 1), x, params, "cpp_standalone", seed=5, build_root=build_root)
    before = published_builds(build_root)
    # new weights, thresholds, alphas, rates, input and seed: same binary
    w2 = random_net(sizes, 2)
    x2 = deterministic_input(60, 20, seed=8)
    p2 = SleepParams.for_model(
        max_rate=2000, inc=0.03, dec=0.001, v_thresh=[0.7, 0.9, 0.6], alphas=[1.1, 0.9, 1.2]
    )
    got = run_sleep(w2, x2, p2, "cpp_standalone", seed=6, build_root=build_root)
    assert got.info["binary_reused"] and published_builds(build_root) == before
    ref = run_sleep(w2, x2, p2, "reference", seed=6)
    assert_same_spikes(ref, got)
    assert_weights_close(ref, got, atol=0.0)


@pytest.mark.standalone
def test_one_build_runs_every_sleep_length_exactly(build_root, tmp_path):
    """T is a run argument: one build serves T = 40, 80 and 25 (shorter runs pad the
    per-step input data); each run is exact against the oracle, stops at its own T, and
    a run of another T changes no build. Before T became a run argument each T was a
    build of its own (three compiles here)."""
    if not HAVE_CXX:
        pytest.skip("no C++ compiler")
    from brainsleep.sleep import SleepEngine

    root = tmp_path / "builds"
    rng = np.random.default_rng(1)
    image = np.where(rng.random((8, 8)) < 0.6, rng.uniform(0.25, 1.0, (8, 8)), 0.0)
    weights = random_net((64, 30, 20, 5), seed=2)
    params = SleepParams.for_model(
        max_rate=1e4, inc=0.02, dec=0.01, v_thresh=[0.9, 0.9, 0.9], alphas=[1.0, 1.0, 1.0]
    )
    engine = SleepEngine("cpp_standalone", build_root=root)
    for n_steps in (40, 80, 25):
        inputs = MaskedMeanImage(image, n_steps=n_steps, patch=3)
        ref = run_sleep(weights, inputs, params, device="reference", seed=9)
        got = engine.run(weights, inputs, params, seed=9)
        assert_same_spikes(ref, got)
        assert_weights_close(ref, got, atol=0.0)
        assert got.spikes["step"].values.max() == n_steps - 1  # ran exactly T steps
    assert len(published_builds(root)) == 1


@pytest.mark.parametrize("device", BRIAN_DEVICES)
def test_synapse_storage_order_changes_nothing_but_speed(device, build_root):
    """Each layer in the order the default does not give it (the default is tested by
    every other exactness test): spikes and weights still equal the oracle's bit for bit."""
    from brainsleep.sleep.network import default_synapse_orders

    default = default_synapse_orders(3)
    orders = tuple("post" if o == "pre" else "pre" for o in default)
    from brainsleep.sleep import SleepEngine

    if device == "cpp_standalone" and not HAVE_CXX:
        pytest.skip("no C++ compiler")
    sizes = (20, 15, 10, 5)
    weights = random_net(sizes, seed=3)
    x = deterministic_input(60, sizes[0], seed=3)
    params = det_params(3)
    ref = run_sleep(weights, x, params, device="reference", seed=5)
    engine = SleepEngine(device, build_root=build_root, synapse_orders=orders)
    got = engine.run(weights, x, params, seed=5)
    assert_same_spikes(ref, got)
    assert_weights_close(ref, got, atol=1e-12 if device == "runtime" else 0.0)


def test_synapse_orders_are_checked():
    from brainsleep.sleep.network import NetworkSpec

    with pytest.raises(ValueError, match="synapse_orders"):
        NetworkSpec((4, 3, 2), 10, 0.001, "array", synapse_orders=("pre", "diagonal"))
    with pytest.raises(ValueError, match="per weight layer"):
        NetworkSpec((4, 3, 2), 10, 0.001, "array", synapse_orders=("pre",))


# ------------------------------------------------------------------- model variant


def test_additive_variant_behaves_differently():
    """The additive bounded rule changes each weight by exactly +inc or -dec per event."""
    sizes = (20, 15, 10, 5)
    weights = random_net(sizes, seed=1)
    x = deterministic_input(1, 20, seed=3)
    params = det_params(3, inc=0.125, dec=0.0625)  # exact binary fractions
    src = run_sleep(weights, x, params, device="runtime", model="src")
    params_add = det_params(3, inc=0.125, dec=0.0625, model="src_additive")  # w_max default
    add = run_sleep(weights, x, params_add, device="runtime", model="src_additive")
    # one step: every weight changed at most once, by exactly +inc / -dec (not clipped)
    changed = [np.round((a - w) / 0.0625) for a, w in zip(add.weights, weights, strict=True)]
    for d, a, w in zip(changed, add.weights, weights, strict=True):
        assert set(np.unique(d)) <= {-1.0, 0.0, 2.0}
        np.testing.assert_allclose(a - w, d * 0.0625, atol=1e-15)
    assert any((d != 0).any() for d in changed)
    assert any(not np.allclose(a, s) for a, s in zip(add.weights, src.weights, strict=True))


def test_model_file_copy_is_used(tmp_path):
    """A copied model file with an edited rule runs without engine changes."""
    from brainsleep.sleep.model import MODELS_DIR

    text = (MODELS_DIR / "src.py").read_text()
    edited = text.replace("w += pre_fired * inc * g - (1 - pre_fired) * dec * g", "w += 0 * g")
    assert edited != text
    path = tmp_path / "frozen.py"
    path.write_text(edited)
    weights = random_net((20, 15, 10, 5), seed=1)
    x = deterministic_input(20, 20, seed=3)
    res = run_sleep(weights, x, det_params(3), device="runtime", model=path)
    assert spike_counts(res.spikes)[1] > 0
    for a, w in zip(res.weights, weights, strict=True):
        np.testing.assert_array_equal(a, w)  # frozen weights despite spikes


# ---------------------------------------------------------------- spikes as xarray


def test_spike_dataset_round_trip_and_skip_layers(tmp_path):
    weights = random_net((20, 15, 10, 5), seed=1)
    x = deterministic_input(30, 20, seed=3)
    full = run_sleep(weights, x, det_params(3), device="reference", seed=2)
    hidden = run_sleep(
        weights, x, det_params(3), device="reference", seed=2, record_layers="hidden"
    )
    assert list(hidden.spikes.attrs["recorded_layers"]) == [1, 2, 3]
    assert 0 not in np.unique(hidden.spikes["layer"].values)
    assert spike_counts(hidden.spikes)[1] == spike_counts(full.spikes)[1]
    path = save_spikes(full.spikes, tmp_path / "s.nc")
    back = load_spikes(path)
    for var in ("layer", "neuron", "step"):
        np.testing.assert_array_equal(back[var].values, full.spikes[var].values)
    assert list(back.attrs["layer_sizes"]) == [20, 15, 10, 5]
    assert back.attrs["device"] == "reference" and back.attrs["seed"] == 2
    counts = neuron_spike_counts(back, 1)
    assert counts.shape == (15,) and counts.sum() == spike_counts(back)[1]
    (tmp_path / "bad.nc").write_bytes(b"not netcdf")
    with pytest.raises(ValueError, match="not a readable netCDF"):
        load_spikes(tmp_path / "bad.nc")


# ------------------------------------------------------------------------ bad input

GOOD_W = [np.zeros((3, 4)), np.zeros((2, 3))]
GOOD_X = np.zeros((5, 4))
GOOD_P = SleepParams.for_model(max_rate=10, inc=0.1, dec=0.1, v_thresh=[1, 1], alphas=[1, 1])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"weights": [np.zeros((3, 4)), np.zeros((2, 5))]}, "weights\\[1\\] has 5 inputs"),
        ({"weights": [np.zeros(4)]}, "must be 2-D"),
        ({"weights": [np.full((3, 4), np.nan), np.zeros((2, 3))]}, "NaN or inf"),
        ({"inputs": np.zeros((5, 3))}, "3 columns"),
        ({"inputs": np.full((5, 4), np.inf)}, "NaN or inf"),
        ({"inputs": -np.ones((5, 4))}, "negative"),
        ({"inputs": np.zeros((0, 4))}, "0 steps"),
        ({"device": "gpu"}, "unknown device 'gpu'"),
        ({"model": "no_such_model"}, "unknown sleep model"),
        ({"seed": -1}, "seed"),
        (
            {
                "params": SleepParams.for_model(
                    max_rate=10, inc=0.1, dec=0.1, v_thresh=[1], alphas=[1]
                )
            },
            "2 weight layers but 1",
        ),
    ],
)
def test_bad_input_is_a_clear_value_error(kwargs, match, tmp_path):
    args = {"weights": GOOD_W, "inputs": GOOD_X, "params": GOOD_P, "device": "cpp_standalone"}
    args.update(kwargs, build_root=tmp_path / "builds")
    with pytest.raises(ValueError, match=match):
        run_sleep(**args)
    assert not (tmp_path / "builds").exists()  # nothing generated or compiled


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_rate": -1.0}, "max_rate must be >= 0"),
        ({"inc": float("nan")}, "finite"),
        ({"v_thresh": [1.0], "alphas": [1.0, 2.0]}, "v_thresh has 1 values but the network has 2"),
        ({"alphas": [float("inf"), 1.0]}, "alphas must hold finite numbers"),
        ({"w_max": 1.0}, r"unknown sleep parameter\(s\) \['w_max'\]"),
        ({"dt": 0.0}, "dt must be > 0"),
    ],
)
def test_bad_params(kwargs, match):
    base = {"max_rate": 10, "inc": 0.1, "dec": 0.1, "v_thresh": [1, 1], "alphas": [1, 1]}
    base.update(kwargs)
    with pytest.raises(ValueError, match=match):
        SleepParams.for_model(**base)


def test_bad_model_file(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("INPUT = {}\n")
    with pytest.raises(ValueError, match="lacks"):
        run_sleep(GOOD_W, GOOD_X, GOOD_P, device="runtime", model=bad)
    broken = tmp_path / "broken.py"
    broken.write_text("this is not python\n")
    with pytest.raises(ValueError, match="does not load"):
        run_sleep(GOOD_W, GOOD_X, GOOD_P, device="runtime", model=broken)


def test_runtime_results_never_view_brian2_memory():
    """Brian2 2.10 hands out views of its C++ dynamic arrays, freed with the network: the
    runtime results must be copies (the Python 3.12 stack read freed memory as spikes)."""
    from brainsleep.sleep.devices import _owned

    for dtype in (np.int32, np.float64):
        brian_array = np.arange(5, dtype=dtype)  # what a view of matching dtype looks like
        got = _owned(brian_array, dtype)
        assert not np.shares_memory(got, brian_array)
        np.testing.assert_array_equal(got, brian_array)
    assert not np.shares_memory(_owned(brian_array, None), brian_array)
