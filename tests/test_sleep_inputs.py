"""Sleep input kinds (issue 14): mean, samples, class-means, noise.

Each kind is checked for its data (compact, never a (T, n_in) array), its options, its
input statistics on every device, and exact agreement of the compiled network with the
numpy oracle on deterministic input.
"""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import xarray as xr

from brainsleep.models.inputs import INPUT_KINDS
from brainsleep.sleep import SleepParams, run_sleep
from brainsleep.sleep.inputs import (
    DEFAULT_POOL_SIZE,
    DEFAULT_SLEEP_INPUT,
    INPUT_CLASSES,
    SLEEP_INPUTS,
    ClassMeanImages,
    MaskedMeanImage,
    MeanImage,
    SampledImages,
    UniformNoise,
    make_sleep_input,
    sleep_input_options,
)
from brainsleep.sleep.spikes import spike_counts

HAVE_CXX = shutil.which("g++") is not None or shutil.which("c++") is not None
DEVICES = [
    "reference",
    "runtime",
    pytest.param("cpp_standalone", marks=[pytest.mark.standalone, pytest.mark.slow]),
]
NEW_KINDS = ("mean", "samples", "class-means", "noise")

# A tiny network: 8 x 8 images, 64-10-8-4. Every test of one kind on one device uses the
# same structure (sizes, T, the kind's structure, recorded layers), so cpp_standalone
# compiles once per kind and reruns with run arguments.
SIDE = 8
N_IN = SIDE * SIDE
SIZES = (N_IN, 10, 8, 4)
T = 400
BLOCK = 50  # statistics are checked per block of this many steps and per pixel


def training_set(n_images=30, n_classes=3, seed=0):
    """Images whose pixels are 0 or in [0.25, 1] (so with a huge max_rate every firing
    probability is exactly 0 or 1), each class lighting its own region more often."""
    rng = np.random.default_rng(seed)
    y = np.arange(n_images) % n_classes
    region = (np.arange(N_IN)[None, :] * n_classes // N_IN) == y[:, None]
    lit = rng.random((n_images, N_IN)) < np.where(region, 0.8, 0.15)
    x = np.where(lit, rng.uniform(0.25, 1.0, (n_images, N_IN)), 0.0)
    return x, y


X_TRAIN, Y_TRAIN = training_set()


def kind_input(kind: str):
    """The input of each kind that the device tests share (one build per kind)."""
    options = {
        "mean": {},
        "samples": {"every": 3, "pool_size": 40},
        "class-means": {"every": 2},
        "noise": {"level": 0.5},
    }[kind]
    inp = make_sleep_input(kind, X_TRAIN, Y_TRAIN, T, **options)
    if kind == "mean":  # a mean image with dark pixels, so P = 0 is checked too
        img = inp.mean_image.copy()
        img[::5] = 0.0
        inp = MeanImage(img, T)
    return inp


def random_net(sizes, seed, low=-0.3, high=0.6):
    rng = np.random.default_rng(seed)
    return [rng.uniform(low, high, (sizes[k + 1], sizes[k])) for k in range(len(sizes) - 1)]


def params(max_rate, inc=0.02, dec=0.01):
    n = len(SIZES) - 1
    return SleepParams.for_model(
        max_rate=max_rate, inc=inc, dec=dec, v_thresh=[0.9] * n, alphas=[1.0] * n
    )


def run(device, weights, inputs, p, build_root, seed):
    if device == "cpp_standalone" and not HAVE_CXX:
        pytest.skip("no C++ compiler")
    return run_sleep(weights, inputs, p, device=device, seed=seed, build_root=build_root)


def input_counts(result, n_steps, block=BLOCK):
    """Input spikes per (block of steps, pixel)."""
    s = result.spikes
    layer0 = s["layer"].values == 0
    steps, neurons = s["step"].values[layer0], s["neuron"].values[layer0]
    counts = np.zeros((math.ceil(n_steps / block), N_IN))
    np.add.at(counts, (steps // block, neurons), 1)
    return counts


def assert_binomial(counts, p, block=BLOCK):
    """Counts per (block, pixel) agree with per-step firing probabilities p (T, n_in).

    Where p = 0 no spike may occur; the rest is tested in total and per pixel over all
    steps (each |z| < 5, z from the binomial sd) and per (block, pixel) jointly
    (chi-square within 5 of its own sd of the number of cells).
    """
    n_blocks = counts.shape[0]
    pad = n_blocks * block - len(p)
    pb = np.concatenate([p, np.zeros((pad, p.shape[1]))]).reshape(n_blocks, block, -1)
    mean, var = pb.sum(1), (pb * (1 - pb)).sum(1)
    dark = var == 0
    np.testing.assert_array_equal(counts[dark], mean[dark])
    z_pix = (counts.sum(0) - mean.sum(0)) / np.sqrt(np.maximum(var.sum(0), 1e-300))
    lit_pix = var.sum(0) > 0
    assert np.abs(z_pix[lit_pix]).max() < 5, np.round(z_pix, 1)
    z_all = (counts.sum() - mean.sum()) / math.sqrt(var.sum())
    assert abs(z_all) < 5, z_all
    chi2 = (((counts - mean) ** 2)[~dark] / var[~dark]).sum()
    df = (~dark).sum()
    assert abs(chi2 - df) < 5 * math.sqrt(2 * df), (chi2, df)


# ------------------------------------------------------------ registry and factory


def test_every_kind_is_registered_once_with_its_equations():
    assert DEFAULT_SLEEP_INPUT == "masked-mean"
    assert set(SLEEP_INPUTS) == {"masked-mean", *NEW_KINDS}
    for name in SLEEP_INPUTS:
        if name in NEW_KINDS:
            inp = kind_input(name)
        else:
            inp = make_sleep_input(name, X_TRAIN, None, T, patch=3)
        assert INPUT_CLASSES[inp.kind] is type(inp) and inp.kind == name
        kind = INPUT_KINDS[inp.kind]
        assert set(inp.timed_values(0)) == set(kind["timed"])
        assert set(inp.namespace()) == set(kind["constants"])
        inp.check(N_IN)


def test_factory_masked_mean_is_todays_input():
    got = make_sleep_input("masked-mean", X_TRAIN, None, T, patch=3)
    want = MaskedMeanImage.from_images(X_TRAIN, n_steps=T, patch=3)
    assert got.structure() == want.structure()
    np.testing.assert_array_equal(got.run_values()["mean_px"], want.run_values()["mean_px"])
    for name, values in want.timed_values(4).items():
        np.testing.assert_array_equal(got.timed_values(4)[name], values)
    assert make_sleep_input("masked-mean", X_TRAIN, None, T, patch=5).patch == 5
    assert sleep_input_options("masked-mean") == {"patch": 11}  # the reference's window


def test_options_and_defaults():
    assert sleep_input_options("samples") == {"every": 1, "pool_size": DEFAULT_POOL_SIZE}
    assert sleep_input_options("class-means") == {"every": 1, "classes": None}
    assert sleep_input_options("noise") == {"level": None}
    assert sleep_input_options("mean") == {}
    # noise defaults to the mean pixel value: the same total drive as the mean image
    noise = make_sleep_input("noise", X_TRAIN, None, T)
    assert noise.level == pytest.approx(X_TRAIN.mean())
    mean = make_sleep_input("mean", X_TRAIN.reshape(-1, SIDE, SIDE), None, T)
    np.testing.assert_allclose(mean.mean_image, X_TRAIN.mean(0))
    assert noise.to_array(0).sum() == pytest.approx(mean.to_array(0).sum())


@pytest.mark.parametrize("kind", NEW_KINDS)
def test_placeholder_has_the_same_interface(kind):
    """A build is made from the placeholder: same structure, names and sizes of data."""
    inp = kind_input(kind)
    ph = type(inp).placeholder(N_IN, T, inp.structure())
    assert ph.structure() == inp.structure() and ph.shape == inp.shape
    assert ph.timed_steps() == inp.timed_steps()
    for got, want in (
        (ph.timed_values(0), inp.timed_values(7)),
        (ph.run_values(), inp.run_values()),
    ):
        assert {k: np.shape(v) for k, v in got.items()} == {k: np.shape(v) for k, v in want.items()}


@pytest.mark.parametrize("kind", NEW_KINDS)
def test_no_dense_input_array(kind):
    """Reference length on MNIST-sized images: the data of a run stay far below T x n_in."""
    n_steps, n_in = 20_000, 784
    rng = np.random.default_rng(1)
    x = rng.random((1500, n_in))  # more images than the default pool
    y = np.arange(1500) % 10
    inp = make_sleep_input(kind, x, y, n_steps)
    arrays = [*inp.timed_values(3).values(), *inp.run_values().values()]
    total = sum(np.size(a) for a in arrays)
    bound = {
        "mean": n_in,
        "noise": 1,
        "samples": DEFAULT_POOL_SIZE * n_in + n_steps,
        "class-means": 10 * n_in + n_steps,
    }[kind]
    assert total == bound
    assert all(np.size(a) < n_steps * n_in / 10 for a in arrays)


def test_frames_are_the_timed_data():
    """What the oracle sees step by step is what the equations read from the data."""
    for kind in NEW_KINDS:
        inp = kind_input(kind)
        full = inp.to_array(5)
        assert full.shape == (T, N_IN)
        np.testing.assert_array_equal(np.stack(list(inp.frames(5))), full)
    inp = kind_input("samples")
    data = inp.timed_values(5)
    pool, index = data["pool_images"], data["pool_index"].astype(int)
    assert len(index) == math.ceil(T / inp.every) and len(pool) == inp.pool_size
    steps = np.arange(T)
    np.testing.assert_array_equal(inp.to_array(5), pool[index[steps // inp.every]])


def test_samples_pool_and_windows():
    # N <= pool size: the pool is the training set (zeros after it), every image used
    inp = SampledImages(X_TRAIN, 3000, every=1, pool_size=40)
    pool, index = inp.draw(2)
    np.testing.assert_array_equal(pool[:30], X_TRAIN)
    assert not pool[30:].any() and index.max() < 30
    counts = np.bincount(index, minlength=30)
    assert counts.min() > 0 and abs(counts - 100).max() < 5 * 10  # uniform: 100 +- 10
    # N > pool size: a seeded pool of distinct training images
    small = SampledImages(X_TRAIN, 40, every=4, pool_size=8)
    pool, index = small.draw(2)
    rows = [np.flatnonzero((X_TRAIN == r).all(1)) for r in pool]
    assert all(len(r) == 1 for r in rows) and len({int(r[0]) for r in rows}) == 8
    assert len(index) == 10 and index.max() < 8
    again, other = small.draw(2), small.draw(3)
    np.testing.assert_array_equal(again[0], pool)
    assert not np.array_equal(other[0], pool) or not np.array_equal(other[1], index)
    # windows: every step of a window shows the same image; the last window is shorter
    odd = SampledImages(X_TRAIN, 10, every=4, pool_size=40)
    full = odd.to_array(0)
    assert len(odd.draw(0)[1]) == 3
    assert (full[0:4] == full[0]).all() and (full[4:8] == full[4]).all()


def test_class_means_from_labels():
    inp = ClassMeanImages.from_labelled(X_TRAIN, Y_TRAIN, T)
    assert inp.labels == (0, 1, 2)
    for c in range(3):
        np.testing.assert_allclose(inp.class_means[c], X_TRAIN[Y_TRAIN == c].mean(0))
    one = make_sleep_input("class-means", X_TRAIN, Y_TRAIN, T, classes=[2])
    assert one.labels == (2,) and one.structure() == {"every": 1, "n_classes": 1}
    np.testing.assert_array_equal(one.to_array(0), np.tile(inp.class_means[2], (T, 1)))
    _, index = make_sleep_input("class-means", X_TRAIN, Y_TRAIN, 3000).draw(1)
    assert abs(np.bincount(index, minlength=3) - 1000).max() < 5 * 26  # uniform over classes


@pytest.mark.parametrize(
    "name, options, x, match",
    [
        ("samples", {}, np.zeros((0, N_IN)), "empty set of images"),
        ("mean", {}, np.zeros((0, N_IN)), "empty set of images"),
        ("samples", {"every": 0}, None, "every must be an integer >= 1"),
        ("samples", {"every": -2}, None, "every must be an integer >= 1"),
        ("samples", {"every": 1.5}, None, "every=1.5 must be a whole number"),
        ("class-means", {"every": 0}, None, "every must be an integer >= 1"),
        ("samples", {"pool_size": 0}, None, "pool_size must be an integer >= 1"),
        ("noise", {"level": -0.1}, None, r"noise level must be in \[0, 1\]"),
        ("noise", {"level": 1.5}, None, r"noise level must be in \[0, 1\]"),
        ("noise", {"level": float("nan")}, None, r"noise level must be in \[0, 1\]"),
        ("noise", {"level": "high"}, None, "level=.high. must be a number"),
        ("class-means", {"classes": [7]}, None, "class 7 has no training image"),
        ("class-means", {"classes": []}, None, "no class to replay"),
        ("samples", {"level": 0.3}, None, r"no option 'level' \(its options: every, pool_size"),
        ("mean", {"every": 2}, None, r"no option 'every' \(its options: none\)"),
        ("dreams", {}, None, "unknown sleep input 'dreams'; known: masked-mean, mean"),
    ],
)
def test_bad_options_are_clear_value_errors(name, options, x, match):
    with pytest.raises(ValueError, match=match):
        make_sleep_input(name, X_TRAIN if x is None else x, Y_TRAIN, T, **options)


def test_bad_data_are_clear_value_errors():
    with pytest.raises(ValueError, match="needs the training labels"):
        make_sleep_input("class-means", X_TRAIN, None, T)
    with pytest.raises(ValueError, match="labels must be"):
        make_sleep_input("class-means", X_TRAIN, Y_TRAIN[:5], T)
    with pytest.raises(ValueError, match="negative"):
        make_sleep_input("samples", -X_TRAIN, None, T)
    with pytest.raises(ValueError, match="n_steps must be a positive integer"):
        make_sleep_input("noise", X_TRAIN, None, 0)
    with pytest.raises(ValueError, match="n_inputs must be an integer >= 1"):
        UniformNoise(0.5, 0, T)
    with pytest.raises(ValueError, match="expects 10 inputs"):
        kind_input("samples").check(10)


# ------------------------------------------------------------- statistics per device


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", NEW_KINDS)
def test_input_rates_match_intensities(kind, device, build_root):
    """Per-pixel input spikes follow P = min(1, 2 dt max_rate x) of the kind's images: the
    mean image, the images shown (samples), the class means shown, the level."""
    inp = kind_input(kind)
    p = params(max_rate=100.0, inc=0.0, dec=0.0)  # P = 0.2 x <= 0.2
    res = run(device, random_net(SIZES, 2), inp, p, build_root, seed=11)
    prob = np.minimum(1.0, 2 * p.dt * p["max_rate"] * inp.to_array(11))
    if kind == "noise":
        assert np.all(prob == pytest.approx(0.1))
    assert_binomial(input_counts(res, T), prob)


@pytest.mark.parametrize("device", ["reference", "runtime"])
def test_single_class_rate_is_its_class_mean(device):
    inp = make_sleep_input("class-means", X_TRAIN, Y_TRAIN, T, classes=[1])
    p = params(max_rate=100.0, inc=0.0, dec=0.0)
    res = run(device, random_net(SIZES, 2), inp, p, None, seed=12)
    prob = np.tile(0.2 * X_TRAIN[Y_TRAIN == 1].mean(0), (T, 1))
    np.testing.assert_allclose(inp.to_array(12), prob / 0.2)
    assert_binomial(input_counts(res, T), prob)


# -------------------------------------------------------- exact agreement per kind


@pytest.mark.parametrize("device", DEVICES[1:])
@pytest.mark.parametrize("kind", NEW_KINDS)
def test_exact_against_the_oracle(kind, device, build_root):
    """Every intensity is 0 or >= 0.25 / 30 (a mean over 30 images of pixels 0 or >= 0.25)
    and P = min(1, 200 x) at max_rate 1e5, so every firing probability is 0 or 1: spikes
    and weights of the Brian2 device equal the numpy oracle's."""
    inp = kind_input(kind)
    weights = random_net(SIZES, 3)
    p = params(max_rate=1e5)
    assert inp.to_array(9)[inp.to_array(9) > 0].min() >= 0.25 / 30
    ref = run_sleep(weights, inp, p, device="reference", seed=9)
    counts = spike_counts(ref.spikes)
    assert all(c > 0 for c in counts.values()), counts
    got = run(device, weights, inp, p, build_root, seed=9)
    for var in ("layer", "neuron", "step"):
        np.testing.assert_array_equal(ref.spikes[var].values, got.spikes[var].values)
    for wr, wg in zip(ref.weights, got.weights, strict=True):
        assert np.abs(wr - wg).max() <= (1e-12 if device == "runtime" else 0.0)
    assert any(not np.array_equal(w0, w1) for w0, w1 in zip(weights, got.weights, strict=True))
    # the input really follows the kind's frames: pixel i spikes at t iff x[t, i] > 0
    frames = inp.to_array(9)
    layer0 = ref.spikes["layer"].values == 0
    want = np.zeros_like(frames, dtype=bool)
    want[ref.spikes["step"].values[layer0], ref.spikes["neuron"].values[layer0]] = True
    np.testing.assert_array_equal(want, frames > 0)
    if kind in ("samples", "class-means"):  # the windows really change the image
        assert len({r.tobytes() for r in frames}) > 1


# ------------------------------------------------------------------ --sleep-input (CLI)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--sleep-input", "dreams"],
            "--sleep-input: unknown sleep input 'dreams'; known: masked-mean",
        ),
        (
            ["--sleep-input", "noise", "--sleep-input-option", "level=2"],
            "noise level must be in [0, 1], got 2",
        ),
        (
            ["--sleep-input", "samples", "--sleep-input-option", "evry=2"],
            "has no option 'evry' (its options: every, pool_size)",
        ),
        (["--sleep-input-option", "patch"], "expected KEY=VALUE"),
    ],
)
def test_cli_refuses_bad_sleep_input_before_anything(extra, message, tmp_path, capsys):
    from tests.test_experiment import refusal

    assert message in refusal([*extra, "--device", "reference"], tmp_path, capsys)


def test_fingerprint_keeps_the_default_input_and_changes_with_another():
    from brainsleep.experiment.config import ExperimentConfig

    base = ExperimentConfig(device="reference").fingerprint()
    assert ExperimentConfig(device="reference", sleep_input="masked-mean").fingerprint() == base
    noise = ExperimentConfig(device="reference", sleep_input="noise").fingerprint()
    other = ExperimentConfig(
        device="reference", sleep_input="noise", sleep_input_options={"level": 0.2}
    ).fingerprint()
    assert len({base, noise, other}) == 3


def test_experiment_sleeps_on_the_chosen_input(data_dir, build_root, tmp_path):
    import json

    from brainsleep.experiment.__main__ import main

    out = tmp_path / "run"
    args = [
        "--data-dir", str(data_dir), "--fractions", "0.5", "--hidden", "24", "16",
        "--epochs", "2", "--finetune-epochs", "0", "--sleep-steps", "40",
        "--sleep-preset", "mnist_class_incremental", "--record-spikes", "all",
        "--device", "reference", "--build-root", str(build_root), "--no-progress",
        "--sleep-input", "noise", "--sleep-input-option", "level=0.0", "--out", str(out),
    ]  # fmt: skip
    assert main(args) == 0
    cfg = json.loads((out / "config.json").read_text())["config"]
    assert cfg["sleep_input"] == "noise" and cfg["sleep_input_options"] == {"level": 0.0}
    spikes = xr.open_dataset(next(out.glob("cells/*/spikes.nc")))
    # level 0: no input spike at all, so nothing downstream fires either
    assert int((spikes["layer"].values == 0).sum()) == 0


# ------------------------------------------------------------ cuda_standalone: every kind

CUDA_KINDS_SCRIPT = """
import json, sys
from pathlib import Path
import numpy as np
from brainsleep.sleep import SleepParams, standalone
from brainsleep.sleep.devices import get_device
from brainsleep.sleep.inputs import make_sleep_input
from brainsleep.sleep import load_model
from brainsleep.sleep.network import NetworkSpec

def no_nvcc(directory, device):  # generation only: the binary is never run here
    (Path(directory) / "main").write_text("")

standalone._make = no_nvcc
root = Path(sys.argv[1])
rng = np.random.default_rng(0)
x, y = rng.random((30, 64)), np.arange(30) % 3
T = 400
options = {"masked-mean": {"patch": 3}, "samples": {"every": 3, "pool_size": 40},
           "class-means": {"every": 2}}
device, model = get_device("cuda_standalone"), load_model("src")
for kind in ("masked-mean", "mean", "samples", "class-means", "noise"):
    inp = make_sleep_input(kind, x.reshape(30, 8, 8), y, T, **options.get(kind, {}))
    spec = NetworkSpec.for_inputs((64, 10, 8, 4), inp, 0.001, (1, 2, 3), ())
    spec = device.build_spec(spec)
    build = standalone.get_standalone_build(model, spec, device, None, root)
    objects = (build.directory / "objects.cu").read_text()
    args = build.manifest["interface"]["args"]
    missing = [n for n in args if f'name == "{n}"' not in objects]
    print("KIND", kind, json.dumps({"missing": missing, "steps": spec.n_steps,
          "largest": max(a["size"] for a in args.values())}))
"""


@pytest.mark.cuda_build
@pytest.mark.slow
def test_every_input_kind_generates_for_cuda_standalone(tmp_path):
    """Each input kind's network is generated for brian2cuda (no GPU or nvcc needed to
    generate), takes its data as run arguments the generated code reads, and never as a
    (T, n_in) array."""
    from tests.test_cuda_setup import run_cuda_script

    pytest.importorskip("brian2cuda")
    proc = run_cuda_script(CUDA_KINDS_SCRIPT, tmp_path, timeout=1800)
    found = {
        line.split()[1]: json.loads(line.split(maxsplit=2)[2])
        for line in proc.stdout.splitlines()
        if line.startswith("KIND ")
    }
    assert set(found) == {"masked-mean", "mean", "samples", "class-means", "noise"}
    for kind, got in found.items():
        assert got["missing"] == [], (kind, got)
        # compact data: per step at most a few numbers (a patch position, an image
        # index), never the (T, n_in) intensities (T: the build's step capacity)
        assert got["largest"] <= max(2 * got["steps"], 40 * N_IN), (kind, got)
