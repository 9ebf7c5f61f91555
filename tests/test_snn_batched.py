"""The batched SNN evaluator and the Diehl et al. (2015) conversion (issue 31)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from brainsleep.normalize import normalization_alphas
from brainsleep.sleep import SleepEngine, SleepParams, load_model
from brainsleep.sleep.batched import SPARSE_BELOW, check_batched_model, simulate_batched
from brainsleep.sleep.inference import evaluate_snn, evaluate_snn_batched, inference_params
from brainsleep.sleep.inputs import ImageSequence
from brainsleep.sleep.model import MODELS_DIR
from brainsleep.sleep.snn_protocol import SNNSettings, conversion_params

HAVE_CXX = shutil.which("g++") is not None or shutil.which("c++") is not None
DEVICES = [
    "reference",
    "runtime",
    pytest.param("cpp_standalone", marks=[pytest.mark.standalone, pytest.mark.slow]),
]
MODEL = load_model("src")


def brian_spikes(res, window: int) -> np.ndarray:
    """(image, step in window, layer, neuron) of every spike of a Brian2 run, sorted."""
    step = res.spikes["step"].values
    rows = np.stack(
        [step // window, step % window, res.spikes["layer"].values, res.spikes["neuron"].values],
        axis=1,
    ).astype(np.int64)
    return rows[np.lexsort(rows.T[::-1])]


def random_case(seed: int, sizes=(40, 25, 15, 5), n_images=4):
    rng = np.random.default_rng(seed)
    images = rng.random((n_images, sizes[0])) * (rng.random((n_images, sizes[0])) < 0.6)
    weights = [rng.uniform(-0.25, 0.6, (b, a)) for a, b in zip(sizes, sizes[1:], strict=False)]
    return images, weights


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "values",
    [
        # the Diehl et al. conversion (unit thresholds, no decay) ...
        {"max_rate": 500.0, "v_thresh": [1.0, 1.0, 1.0], "decay": 1.0},
        # ... and the sleep's kind (other thresholds, decay 0.999 every step)
        {"max_rate": 300.0, "v_thresh": [1.7, 0.9, 1.3], "decay": 0.999},
    ],
    ids=["diehl", "sleep-like"],
)
def test_batched_equals_the_brian2_devices_spike_for_spike(device, values, build_root):
    """Same input spikes (those Brian2 drew), same hidden and output spikes, every one."""
    if device == "cpp_standalone" and not HAVE_CXX:
        pytest.skip("no C++ compiler")
    images, weights = random_case(3)
    window = 30
    alphas = [0.9, 0.6, 0.8]
    params = inference_params(SleepParams.for_model(alphas=alphas, **values), MODEL)
    engine = SleepEngine(device, build_root=build_root)
    res = engine.run(weights, ImageSequence(images, window), params, seed=5, record_layers="all")
    expected = brian_spikes(res, window)
    given = np.zeros((len(images), window, images.shape[1]), dtype=bool)
    inp = expected[expected[:, 2] == 0]
    given[inp[:, 0], inp[:, 1], inp[:, 3]] = True
    run = simulate_batched(
        weights,
        alphas,
        values["v_thresh"],
        window=window,
        input_spikes=given,
        decay=values["decay"],
        record=True,
    )
    assert (expected[:, 2] > 0).sum() > 50, "too few hidden spikes to compare"
    np.testing.assert_array_equal(run.spikes, expected)
    # the counts the classification uses are those spikes
    out = expected[expected[:, 2] == 3]
    counts = np.zeros((len(images), 5), dtype=np.int64)
    np.add.at(counts, (out[:, 0], out[:, 3]), 1)
    np.testing.assert_array_equal(run.output_counts[-1], counts)


def test_sparse_and_dense_sums_give_the_same_spikes():
    """Rows gathered (few spikes) or a dense product (many): the same spikes."""
    images, weights = random_case(7, sizes=(60, 50, 40, 6), n_images=6)
    dense = simulate_batched(weights, [1, 1, 1], [1, 1, 1], window=40, images=images, record=True)
    import brainsleep.sleep.batched as batched

    old = batched.SPARSE_BELOW
    try:
        batched.SPARSE_BELOW = 2.0  # everything gathered
        sparse = simulate_batched(
            weights, [1, 1, 1], [1, 1, 1], window=40, images=images, record=True
        )
    finally:
        batched.SPARSE_BELOW = old
    assert 0 < SPARSE_BELOW < 1
    assert len(dense.spikes) > 100
    np.testing.assert_array_equal(dense.spikes, sparse.spikes)


# A 4-2-2 network whose answer is known: hidden k sums pixels 2k and 2k+1, output k copies it.
W1 = np.array([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
W2 = np.eye(2)
IMAGES = np.array([[1, 1, 0, 0], [0, 0, 1, 1], [1, 0.8, 0, 0.1], [0, 0.1, 0.9, 1.0]])
LABELS = np.array([0, 1, 0, 1])


def test_a_known_network_classifies_its_images():
    params = inference_params(
        SleepParams.for_model(alphas=[1.0, 1.0], max_rate=400.0, v_thresh=[1.0, 1.0]), MODEL
    )
    ev = evaluate_snn_batched(
        [W1, W2], IMAGES, LABELS, params, MODEL, window=60, ann_predictions=LABELS
    )
    assert list(ev.predictions) == list(LABELS)
    assert ev.accuracy == ev.agreement == ev.accuracy_lowest_index == 1.0
    assert ev.silent == ev.ties == 0
    assert sorted(ev.curve) == list(range(1, 61))
    assert set(ev.accuracy_by_window) == {15, 30, 45, 60}
    assert ev.spikes_per_image[0] > ev.spikes_per_image[2] > 0


def test_batched_and_device_evaluations_agree_on_a_known_network(build_root):
    params = inference_params(
        SleepParams.for_model(alphas=[1.0, 1.0], max_rate=400.0, v_thresh=[1.0, 1.0]), MODEL
    )
    a = evaluate_snn_batched([W1, W2], IMAGES, LABELS, params, MODEL, window=60)
    b = evaluate_snn(
        [W1, W2], IMAGES, LABELS, params, SleepEngine("runtime", build_root=build_root), window=60
    )
    assert list(a.predictions) == list(b.predictions) == list(LABELS)


def test_reset_by_subtraction_keeps_the_surplus():
    """One neuron, 0.75 per step (exact in binary), threshold 1: reset to zero fires
    every 2nd step (rate 1/2); subtraction keeps the surplus and fires at 0.75 per step,
    its ReLU activation (steps 2, 3, 4, 6, 7, 8, 10)."""
    given = np.ones((1, 10, 1), dtype=bool)
    counts = {
        reset: int(
            simulate_batched(
                [np.array([[0.75]])], [1.0], [1.0], window=10, input_spikes=given, reset=reset
            ).output_counts[-1, 0, 0]
        )
        for reset in ("zero", "subtraction")
    }
    assert counts == {"zero": 5, "subtraction": 7}


def test_lowest_index_accuracy_breaks_ties_as_the_reference_max():
    """A tie counts as an error, and as the first tied class in the reference's form."""
    # two outputs copy one hidden neuron: every image is a tie between classes 0 and 1
    w2 = np.array([[1.0, 0.0], [1.0, 0.0]])
    params = inference_params(
        SleepParams.for_model(alphas=[1.0, 1.0], max_rate=500.0, v_thresh=[1.0, 1.0]), MODEL
    )
    images = np.array([[1, 1, 0, 0], [0, 0, 1, 1], [1, 1, 0, 0], [0, 0, 1, 1.0]])
    labels = np.array([0, 1, 1, 0])
    ev = evaluate_snn_batched([W1, w2], images, labels, params, MODEL, window=20)
    assert ev.ties == 0.5  # images 0 and 2; images 1 and 3 light the other pair: silent
    assert ev.silent == 0.5
    assert ev.accuracy == 0.0
    # ties -> class 0 (right for image 0, not 2); silent -> class 0 (right for 3, not 1)
    assert ev.accuracy_lowest_index == 0.5


def test_plasticity_left_on_is_refused():
    params = SleepParams.for_model(alphas=[1.0, 1.0], v_thresh=[1.0, 1.0])  # inc, dec on
    with pytest.raises(ValueError, match="plasticity off"):
        evaluate_snn_batched([W1, W2], IMAGES, LABELS, params, MODEL, window=5)


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('"threshold": "v >= v_thresh"', '"threshold": "v > v_thresh"', "threshold"),
        ('"reset": "v = 0"', '"reset": "v = 0.1"', "reset"),
        ('"on_pre": "v_post += alpha * w"', '"on_pre": "v_post += 2 * alpha * w"', "on_pre"),
    ],
)
def test_the_batched_evaluator_runs_only_the_dynamics_it_implements(tmp_path, old, new, key):
    """Keyed by content: an edited statement is refused in one line naming it."""
    text = (MODELS_DIR / "src.py").read_text()
    assert old in text
    path = tmp_path / "edited.py"
    path.write_text(text.replace(old, new))
    edited = load_model(path)
    with pytest.raises(ValueError, match=rf"\[{key!r}\].*--snn-evaluator device"):
        check_batched_model(edited)
    SNNSettings(evaluator="device").check(edited)  # the Brian2 devices run it
    check_batched_model(MODEL)
    check_batched_model(load_model("src_additive"))  # same neuron and transmission


def test_percentile_normalisation_on_a_known_case():
    """One layer, activations 1..1000 (w = 1 on x = i / 1000 * 1000): the 99.9th
    percentile of the positive activations, not the maximum (1000) nor the weight."""
    x = np.arange(0, 1001, dtype=float)[:, None]  # 0 is not positive: left out
    norm = normalization_alphas([np.array([[1.0]])], x, hidden_scale=1.0, percentile=99.9)
    assert norm.s[0] == pytest.approx(np.percentile(np.arange(1, 1001), 99.9))
    assert norm.alphas[0] == pytest.approx(1 / norm.s[0])
    assert normalization_alphas([np.array([[1.0]])], x, hidden_scale=1.0).s == [1000.0]
    assert norm.to_dict()["percentile"] == 99.9
    assert "percentile" not in normalization_alphas([np.array([[1.0]])], x).to_dict()
    with pytest.raises(ValueError, match="percentile"):
        normalization_alphas([np.array([[1.0]])], x, percentile=0)


def test_diehl2015_parameters_are_the_papers():
    """Unit thresholds, no decay, P(spike) = x per 1 ms step, plasticity off, alphas of
    the data-based normalisation with the reference code's prev = f."""
    rng = np.random.default_rng(0)
    weights = [rng.uniform(-0.1, 0.3, (6, 8)), rng.uniform(-0.1, 0.3, (5, 6)), np.eye(3, 5)]
    x = rng.random((50, 8))
    params, record = conversion_params(
        SNNSettings("diehl2015"), MODEL, weights, x, hidden_scale=0.5
    )
    assert params["v_thresh"] == (1.0, 1.0, 1.0) and params["decay"] == 1.0
    assert params["inc"] == params["dec"] == 0.0
    assert 2 * params.dt * params["max_rate"] == 1.0  # models/src.py's P = 2 dt max_rate x
    norm = normalization_alphas(weights, x, hidden_scale=0.5, quirk=True)
    assert params.alphas == tuple(norm.alphas)
    assert record["s"] == norm.s


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        (SNNSettings("nope"), "--snn-protocol nope"),
        (SNNSettings("diehl2015", reset="half"), "--snn-reset half"),
        (SNNSettings("sleep", reset="subtraction"), "diehl2015"),
        (SNNSettings("sleep", percentile=99.9), "diehl2015"),
        (SNNSettings("diehl2015", percentile=120.0), "--snn-percentile 120"),
        (SNNSettings("diehl2015", reset="subtraction", evaluator="device"), "batched"),
        (SNNSettings(evaluator="gpu"), "--snn-evaluator gpu"),
    ],
)
def test_bad_settings_are_refused_in_one_line(settings, match):
    with pytest.raises(ValueError, match=match) as err:
        settings.check(MODEL)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("extra", "flag"),
    [
        (("--snn-eval", "10", "--snn-protocol", "diehl"), "--snn-protocol diehl"),
        (("--snn-eval", "10", "--snn-protocol", "sleep", "--snn-reset", "subtraction"), "2015"),
        (("--snn-eval", "10", "--snn-protocol", "diehl2015", "--snn-percentile", "0"), "(0, 100]"),
        (("--snn-eval", "10", "--snn-evaluator", "gpu"), "--snn-evaluator gpu"),
        (("--snn-protocol", "diehl2015"), "needs --snn-eval"),
        (("--snn-percentile", "99.9"), "needs --snn-eval"),
    ],
)
def test_bad_snn_options_are_refused_before_training(data_dir, tmp_path, capsys, extra, flag):
    from .test_bad_input import refused

    assert flag in refused(capsys, data_dir, tmp_path, *extra)


def test_an_edited_model_is_refused_by_the_batched_evaluator_at_load(data_dir, tmp_path, capsys):
    from .test_bad_input import refused

    path = tmp_path / "edited.py"
    path.write_text(
        (MODELS_DIR / "src.py").read_text().replace('"reset": "v = 0"', '"reset": "v = -0.5"')
    )
    line = refused(
        capsys, data_dir, tmp_path, "--model", str(path), "--snn-eval", "5", device="runtime"
    )
    assert "--snn-evaluator device" in line


@pytest.mark.parametrize("evaluator", ["batched", "device"])
def test_a_model_whose_inference_values_leave_plasticity_on_is_refused_at_load(
    data_dir, tmp_path, capsys, evaluator
):
    """It was caught only after training and sleep (issue 32): now at load, by a trial
    run with the inference values, before anything is trained or written."""
    from .test_bad_input import refused

    text = (MODELS_DIR / "src.py").read_text()
    assert text.count(", inference=0.0") == 2
    path = tmp_path / "learns.py"
    path.write_text(text.replace(", inference=0.0", ""))
    line = refused(
        capsys, data_dir, tmp_path, "--model", str(path), "--snn-eval", "5",
        "--snn-evaluator", evaluator, device="runtime",
    )  # fmt: skip
    assert "leave plasticity on" in line and "inference=" in line
    SNNSettings().check(MODEL)  # the shipped model switches it off


def test_diehl2015_in_a_run_records_both_networks_and_the_curve(data_dir, tmp_path):
    """--snn-eval N --snn-protocol diehl2015: metrics columns for the baseline and the
    slept network, each with its own normalisation, and the accuracy after every step."""
    import pandas as pd

    from brainsleep.experiment.__main__ import main
    from brainsleep.formats import CELLS_DIR, METRICS_CSV, SNN_CURVE_FILE

    from .test_bad_input import argv

    out = tmp_path / "run"
    extra = ("--snn-eval", "12", "--snn-window", "8", "--snn-protocol", "diehl2015")
    assert main(argv(data_dir, out, *extra)) == 0
    row = pd.read_csv(out / METRICS_CSV).set_index("stage").loc["sleep"]
    for prefix in ("snn_", "snn_baseline_"):
        assert 0 <= row[f"{prefix}accuracy"] <= row[f"{prefix}accuracy_lowest_index"] <= 1
        assert row[f"{prefix}images"] == 12 and row[f"{prefix}window"] == 8
        assert row[f"{prefix}alpha1"] > 0
    (cell,) = (out / CELLS_DIR).iterdir()
    curve = pd.read_csv(cell / SNN_CURVE_FILE)
    assert sorted(set(curve["network"])) == ["baseline", "sleep"]
    assert list(curve[curve["network"] == "sleep"]["step"]) == list(range(1, 9))
    last = curve[(curve["network"] == "sleep") & (curve["step"] == 8)].iloc[0]
    assert last["accuracy"] == row["snn_accuracy"]
    # the settings are part of the configuration: another protocol is another run
    from brainsleep.experiment.config import ExperimentConfig

    a = ExperimentConfig(snn_eval=12, snn_protocol="diehl2015").fingerprint()
    b = ExperimentConfig(snn_eval=12, snn_protocol="sleep").fingerprint()
    assert a != b
    assert ExperimentConfig().fingerprint() == ExperimentConfig(snn_reset="zero").fingerprint()


def test_class_incremental_evaluates_the_spiking_network_of_each_sleep(data_dir, tmp_path):
    """--snn-eval in the class-incremental protocol: before and after every sleep, on
    the test images of the tasks seen so far; per task and overall, with the curve."""
    import pandas as pd

    from brainsleep.experiment.__main__ import main

    from .test_incremental import argv as incr_argv

    out = tmp_path / "incr"
    extra = ("--snn-eval", "15", "--snn-window", "6", "--snn-protocol", "diehl2015")
    assert main(incr_argv(data_dir, out, *extra)) == 0
    df = pd.read_csv(out / "incremental.csv")
    slept = df[df["variant"] == "sleep"]
    assert slept["snn_accuracy_slept"].notna().any()
    overall = slept[slept["task"] == "overall"]
    assert len(overall) == 2  # after each of the two tasks
    assert ((overall["snn_accuracy_trained"] >= 0) & (overall["snn_accuracy_trained"] <= 1)).all()
    # tasks not yet seen are not evaluated
    t1 = slept[(slept["after_task"] == 1) & (slept["task_index"] == 2)]
    assert t1["snn_accuracy_slept"].isna().all()
    assert df[df["variant"] == "sequential"].filter(like="snn_").isna().all().all()
    cell = next((out / "cells").iterdir())
    curve = pd.read_csv(cell / "snn_curve_sleep_t1.csv")
    assert sorted(set(curve["network"])) == ["slept", "trained"]
    assert curve["step"].max() == 6


def test_a_sleep_that_changed_nothing_is_recorded_as_such(data_dir, tmp_path):
    """sleep_weights_changed: the fraction of synapses the sleep changed; 0.0 when no
    hidden neuron could fire (thresholds out of reach), > 0 for a sleep that acted."""
    import pandas as pd

    from brainsleep.experiment.__main__ import main
    from brainsleep.formats import METRICS_CSV
    from brainsleep.sleep.core import weights_changed

    from .test_bad_input import argv

    a, b = [np.zeros((2, 3)), np.ones((1, 2))], [np.zeros((2, 3)), np.array([[1.0, 2.0]])]
    assert weights_changed(a, a) == 0.0 and weights_changed(a, b) == 1 / 8
    out = tmp_path / "noop"
    assert main(argv(data_dir, out, "--sleep-param", "v_thresh=[1e9,1e9,1e9]")) == 0
    row = pd.read_csv(out / METRICS_CSV).set_index("stage").loc["sleep"]
    assert row["sleep_weights_changed"] == 0.0
    out = tmp_path / "acts"
    active = ("--sleep-param", "v_thresh=[0.01,0.01,0.01]", "--sleep-param", "max_rate=400")
    assert main(argv(data_dir, out, *active)) == 0
    row = pd.read_csv(out / METRICS_CSV).set_index("stage").loc["sleep"]
    assert row["sleep_weights_changed"] > 0
