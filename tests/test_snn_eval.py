"""SNN evaluation: the converted spiking network classifies like its ANN (issue 16)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from brainsleep.sleep import SleepEngine, SleepParams, load_model, run_sleep
from brainsleep.sleep.inference import classify, evaluate_snn, inference_params
from brainsleep.sleep.inputs import ImageSequence
from brainsleep.sleep.model import MODELS_DIR

from .test_bad_input import refused

HAVE_CXX = shutil.which("g++") is not None or shutil.which("c++") is not None
DEVICES = [
    "reference",
    "runtime",
    pytest.param("cpp_standalone", marks=[pytest.mark.standalone, pytest.mark.slow]),
]

# A 4-2-2 network whose ANN answer is known: hidden unit k sums pixels 2k and 2k+1,
# output k copies hidden k. Images light one pair of pixels (with some noise).
W1 = np.array([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
W2 = np.eye(2)
IMAGES = np.array([[1, 1, 0, 0], [0, 0, 1, 1], [1, 0.8, 0, 0.1], [0, 0.1, 0.9, 1.0]])
LABELS = np.array([0, 1, 0, 1])


def ann_classes(images):
    h = np.maximum(images @ W1.T, 0)
    return np.argmax(np.maximum(h @ W2.T, 0), axis=1)


def engine(device, build_root, model=None):
    if device == "cpp_standalone" and not HAVE_CXX:
        pytest.skip("no C++ compiler")
    return SleepEngine(device, model, build_root=build_root)


@pytest.mark.parametrize("device", DEVICES)
def test_snn_gives_the_anns_class_on_a_known_network(device, build_root):
    assert list(ann_classes(IMAGES)) == list(LABELS)
    params = SleepParams.for_model(alphas=[1.0, 1.0], max_rate=400.0, v_thresh=[1.0, 1.0])
    ev = evaluate_snn(
        [W1, W2],
        IMAGES,
        LABELS,
        params,
        engine(device, build_root),
        window=60,
        batch=3,  # two runs, the second padded: one build serves both
        ann_predictions=ann_classes(IMAGES),
    )
    assert list(ev.predictions) == list(LABELS)
    assert ev.accuracy == 1.0 and ev.agreement == 1.0 and ev.silent == 0 and ev.ties == 0
    assert ev.spikes_per_image[0] > ev.spikes_per_image[2] > 0
    assert set(ev.accuracy_by_window) == {15, 30, 45, 60}
    assert ev.metrics()["snn_accuracy"] == 1.0


@pytest.mark.parametrize("device", DEVICES)
def test_rest_between_images_matches_the_oracle_bit_for_bit(device, build_root):
    """Binary images at max_rate 1000: every firing probability is 0 or 1, so the
    reference and Brian2 agree exactly, including the rest at each window start."""
    rng = np.random.default_rng(4)
    images = (rng.random((5, 12)) < 0.5).astype(float)
    weights = [rng.uniform(-0.2, 0.7, (7, 12)), rng.uniform(-0.2, 0.7, (3, 7))]
    params = inference_params(
        SleepParams.for_model(alphas=[1.0, 1.0], max_rate=1000.0, v_thresh=[1.3, 1.1]),
        load_model("src"),
    )
    inputs = ImageSequence(images, 9)
    ref = run_sleep(weights, inputs, params, device="reference", seed=1)
    got = engine(device, build_root).run(weights, inputs, params, seed=1)
    for var in ("layer", "neuron", "step"):
        np.testing.assert_array_equal(ref.spikes[var].values, got.spikes[var].values)
    # plasticity off through the declared parameters: every weight bit-identical
    for w_new, w_old in zip(got.weights, weights, strict=True):
        np.testing.assert_array_equal(w_new, w_old)
    # the rest matters: without it the later windows differ
    assert (ref.spikes["layer"].values > 0).any()
    no_rest = run_sleep(weights, inputs.to_array(1), params, device="reference", seed=1)
    assert not np.array_equal(no_rest.spikes["step"].values, ref.spikes["step"].values)


def test_plasticity_left_on_is_an_error(tmp_path):
    """A model whose learning rates declare no inference value changes the weights: said."""
    text = (MODELS_DIR / "src.py").read_text().replace(", inference=0.0", "")
    path = tmp_path / "src_no_inference.py"
    path.write_text(text)
    params = SleepParams.for_model(path, alphas=[1.0, 1.0], max_rate=400.0, v_thresh=[1.0, 1.0])
    with pytest.raises(ValueError, match="changed the weights of layer"):
        evaluate_snn([W1, W2], IMAGES, LABELS, params, SleepEngine("runtime", path), window=40)


def test_model_without_rest_is_refused(tmp_path):
    text = (MODELS_DIR / "src.py").read_text()
    text = text.replace(
        '    "rest": "v = 0",  # the state between two images in SNN evaluation\n', ""
    )
    path = tmp_path / "src_no_rest.py"
    path.write_text(text)
    params = SleepParams.for_model(path, alphas=[1.0, 1.0], v_thresh=[1.0, 1.0])
    with pytest.raises(ValueError, match=r"no NEURON\['rest'\]"):
        evaluate_snn([W1, W2], IMAGES, LABELS, params, SleepEngine("runtime", path))


def test_ties_and_silence_are_reported_not_hidden():
    counts = np.array([[0, 0, 0], [2, 5, 1], [3, 3, 0], [0, 1, 0]])
    assert list(classify(counts)) == [-1, 1, -2, 1]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"window": 0}, "window"), ({"batch": 0}, "batch"), ({"images": IMAGES[:0]}, "images")],
)
def test_bad_evaluation_arguments(kwargs, match):
    args = {"images": IMAGES, "labels": LABELS[: len(kwargs.get("images", IMAGES))]}
    args.update(kwargs)
    params = SleepParams.for_model(alphas=[1.0, 1.0], v_thresh=[1.0, 1.0])
    with pytest.raises(ValueError, match=match):
        evaluate_snn([W1, W2], params=params, engine=SleepEngine("reference"), **args)


@pytest.mark.parametrize(
    ("extra", "flag"),
    [
        (("--snn-eval", "0"), "--snn-eval"),
        (("--snn-eval", "-5"), "--snn-eval"),
        (("--snn-eval", "10", "--snn-window", "0"), "--snn-window"),
    ],
)
def test_bad_snn_flags_are_refused_before_training(data_dir, tmp_path, capsys, extra, flag):
    line = refused(capsys, data_dir, tmp_path, *extra)
    assert flag in line


def test_fidelity_table_and_figure_from_metrics():
    from brainsleep.analysis.conversion import fidelity_table, plot_snn_fidelity

    rows = []
    for seed in (0, 1):
        cell = f"mnist_f0.1_none_s{seed}"
        base = {"cell": cell, "dataset": "mnist", "imbalance": "none", "fraction": 0.1}
        rows.append({**base, "seed": seed, "stage": "baseline", "accuracy": 0.8})
        rows.append(
            {
                **base,
                "seed": seed,
                "stage": "sleep",
                "accuracy": 0.7,
                "snn_accuracy": 0.6 + seed / 10,
                "snn_baseline_accuracy": 0.75,
                "snn_accuracy_w50": 0.5,
                "snn_accuracy_w100": 0.6 + seed / 10,
                "snn_baseline_accuracy_w50": 0.7,
                "snn_baseline_accuracy_w100": 0.75,
            }
        )
    import pandas as pd

    table = fidelity_table(pd.DataFrame(rows))
    slept = table[table["network"] == "sleep"]
    assert list(slept["ann_accuracy"]) == [0.7, 0.7]
    assert list(slept["snn_accuracy"]) == [0.6, 0.7]
    assert list(table[table["network"] == "baseline"]["ann_accuracy"]) == [0.8, 0.8]
    fig = plot_snn_fidelity(pd.DataFrame(rows))
    lines = fig.axes[0].get_lines()
    assert any(list(line.get_ydata()) == [0.8, 0.8] for line in lines)  # ANN baseline level
