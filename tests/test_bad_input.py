"""Bad input is refused before any data loading, training or compiling (issue 10).

Each refusal: exit code 2, one ``error: ...`` line naming the problem, ``--out`` never
created. New names (MAX_SEED, ...) are imported inside the tests, so that this file
also runs, and fails test by test, against the code before the fix.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from brainsleep.experiment.__main__ import build_parser, main
from brainsleep.experiment.config import (
    ConfigError,
    ExperimentConfig,
    validate,
)
from brainsleep.sleep import SleepParams, load_model, run_sleep
from brainsleep.sleep.model import MODELS_DIR
from brainsleep.subsets import make_subset

REPO = Path(__file__).resolve().parents[1]
SRC = (MODELS_DIR / "src.py").read_text()
ON_POST = "w += pre_fired * inc * g - (1 - pre_fired) * dec * g"


def argv(data_dir, out, *extra, device="reference"):
    return [
        "--data-dir", str(data_dir),
        "--device", device,
        "--fractions", "0.5",
        "--hidden", "24", "16",
        "--epochs", "1",
        "--finetune-epochs", "1",
        "--sleep-steps", "20",
        "--sleep-preset", "mnist_class_incremental",
        "--record-spikes", "none",
        "--build-root", str(out.parent / "builds"),
        "--out", str(out),
        "--no-progress",
        *extra,
    ]  # fmt: skip


def refused(capsys, data_dir, tmp_path, *extra, device="reference") -> str:
    """Run the CLI; assert exit 2, one ``error:`` line, nothing written; return the line."""
    out = tmp_path / "never"
    code = main(argv(data_dir, out, *extra, device=device))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert not out.exists()
    return lines[0]


def config(data_dir, tmp_path, **fields) -> ExperimentConfig:
    base = {
        "datasets": ["mnist"],
        "fractions": [0.5],
        "hidden": [24, 16],
        "device": "reference",
        "sleep_preset": "mnist_class_incremental",
        "data_dir": str(data_dir),
        "out": str(tmp_path / "never"),
        "build_root": str(tmp_path / "builds"),
    }
    return ExperimentConfig(**{**base, **fields})


def model_file(tmp_path: Path, text: str, name: str = "rule.py") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def line_of(text: str, needle: str) -> int:
    return next(k for k, line in enumerate(text.splitlines(), 1) if needle in line)


# ------------------------------------------------- 1. model files: names, trial run, once

UNKNOWN_NAMES = [
    # (edit of models/src.py, unknown name, block and key, text on the reported line)
    ((ON_POST, ON_POST.replace("w +=", "w += foo *")), "foo", 'SYNAPSE["on_post"]', "foo"),
    (("g_w = 2 *", "g_w = bar *"), "bar", 'SYNAPSE["equations"]', "g_w = bar"),
    (('"v >= v_thresh"', '"v >= v_thresh + baz"'), "baz", 'NEURON["threshold"]', "baz"),
    (('"v_post += alpha * w"', '"q_post += alpha * w"'), "q_post", 'SYNAPSE["on_pre"]', "q_post"),
    (("int(lastspike_pre == t)", "int(v_pre > 0)"), "v_pre", 'SYNAPSE["on_post"]', "v_pre"),
    (('"v = decay * v"', '"v = decay * v * leak"'), "leak", 'NEURON["decay_step"]', "* leak"),
]


@pytest.mark.parametrize(("edit", "name", "where", "needle"), UNKNOWN_NAMES)
def test_unknown_name_names_it_the_block_and_the_line(tmp_path, edit, name, where, needle):
    text = SRC.replace(*edit)
    assert text != SRC
    path = model_file(tmp_path, text)
    with pytest.raises(ValueError) as info:
        load_model(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert f"'{name}'" in msg and where in msg
    assert f"line {line_of(text, needle)}:" in msg


def test_run_sleep_raises_value_error_for_an_unknown_name(tmp_path):
    """The docstring promises ValueError, not Brian2's BrianObjectException."""
    path = model_file(tmp_path, SRC.replace(ON_POST, "w += foo"))
    w = [np.full((3, 4), 0.5), np.full((2, 3), 0.5)]
    p = SleepParams.for_model(max_rate=500, inc=0.1, dec=0.1, v_thresh=[0.5, 0.5], alphas=[1, 1])
    with pytest.raises(ValueError, match="'foo'"):
        run_sleep(w, np.full((3, 4), 0.5), p, device="runtime", model=path)


def test_trial_run_catches_what_the_name_check_cannot(tmp_path):
    """Every name is declared, but the units disagree: the 3-step trial run finds it."""
    path = model_file(tmp_path, SRC.replace('"reset": "v = 0"', '"reset": "v = 0 * mV"'))
    with pytest.raises(ValueError) as info:
        load_model(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert "trial run" in msg and 'NEURON["reset"]' in msg and "unit" in msg


def test_unparsable_equations_name_the_line(tmp_path):
    text = SRC.replace("v_thresh : 1 (shared)", "v_thresh ; 1 (shared)")
    with pytest.raises(ValueError) as info:
        load_model(model_file(tmp_path, text))
    msg = str(info.value)
    assert 'NEURON["equations"]' in msg and f"line {line_of(text, 'v_thresh ;')}:" in msg


def test_cli_refuses_a_model_with_an_unknown_name(data_dir, tmp_path, capsys):
    text = SRC.replace(ON_POST, ON_POST.replace("w +=", "w += foo *"))
    path = model_file(tmp_path, text)
    line = refused(capsys, data_dir, tmp_path, "--model", str(path), device="runtime")
    assert line.startswith("error: --model: ")
    assert "'foo'" in line and 'SYNAPSE["on_post"]' in line
    assert f"line {line_of(text, 'foo')}:" in line


def test_cli_model_error_is_the_only_line_on_stderr(data_dir, tmp_path):
    """In a fresh process: nothing else (no Brian2 log, no traceback) reaches stderr."""
    path = model_file(tmp_path, SRC.replace(ON_POST, "w += foo"))
    out = tmp_path / "never"
    proc = subprocess.run(
        [sys.executable, "-m", "brainsleep.experiment",
         *argv(data_dir, out, "--model", str(path), device="runtime")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    lines = [x for x in proc.stderr.splitlines() if x.strip() and "_get_vc_env" not in x]
    lines = [x for x in lines if x.strip() != "warnings.warn("]  # Brian2's import noise
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: --model: "), proc.stderr
    assert "'foo'" in lines[0]
    assert not out.exists()


def test_model_file_executes_once_per_process(tmp_path):
    counter = tmp_path / "executions"
    text = f"open({str(counter)!r}, 'a').write('x')\n" + SRC
    path = model_file(tmp_path, text)
    first = load_model(path)
    assert load_model(str(path)) is first
    w = [np.full((3, 4), 0.5), np.full((2, 3), 0.5)]
    p = SleepParams.for_model(max_rate=500, inc=0.1, dec=0.1, v_thresh=[0.5, 0.5], alphas=[1, 1])
    run_sleep(w, np.full((2, 4), 0.5), p, device="runtime", model=path)
    assert counter.read_text() == "x"
    path.write_text(text + "\n# edited\n")  # new content: loaded (and checked) again
    assert load_model(path) is not first
    assert counter.read_text() == "xx"


def test_model_check_runs_once_per_process(tmp_path, monkeypatch):
    import brainsleep.sleep.engine as engine

    calls = []
    real = engine.ModelEngine  # the trial run's engine (SleepEngine subclasses it)
    monkeypatch.setattr(engine, "ModelEngine", lambda *a, **k: calls.append(1) or real(*a, **k))
    path = model_file(tmp_path, SRC + "\n# a fresh copy\n")
    load_model(path)
    assert calls, "the trial run did not happen"
    n = len(calls)
    load_model(path)
    load_model(path)
    assert len(calls) == n
    bad = model_file(tmp_path, SRC.replace('"reset": "v = 0"', '"reset": "v = 0 * mV"'), "b.py")
    for _ in range(2):
        with pytest.raises(ValueError, match="trial run"):
            load_model(bad)
    assert len(calls) == n + 1  # the failed check is remembered too


def test_model_check_leaves_brian2_and_numpy_as_they_were(tmp_path):
    import brian2
    from brian2.devices.device import get_device

    before_device = get_device()
    before_prefs = dict(brian2.prefs)
    np.random.seed(123)  # noqa: NPY002  the legacy global state brian2.seed touches
    expected = np.random.random()  # noqa: NPY002
    np.random.seed(123)  # noqa: NPY002
    load_model(model_file(tmp_path, SRC + "\n# another fresh copy\n"))
    assert np.random.random() == expected  # noqa: NPY002
    assert get_device() is before_device
    assert {k: v for k, v in dict(brian2.prefs).items() if before_prefs[k] is not v} == {}


def test_model_help_and_readme_say_model_files_are_code():
    text = " ".join(build_parser().format_help().split())
    assert "Python code" in text and "trust" in text
    readme = (REPO / "README.md").read_text()
    section = readme.split("## 3. Change the plasticity rule", 1)[1].split("\n## ", 1)[0]
    assert "Python code" in section and "trust" in section


# ------------------------------------------------------------------ 3. sleep parameters

GOOD_SET = {"max_rate": 40.0, "inc": 0.02, "dec": 0.07, "v_thresh": [30, 7, 30]}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"alpha_scale": math.nan}, "alpha_scale"),
        ({"alpha_scale": -1.0}, "alpha_scale"),
        ({"alpha_scale": math.inf}, "alpha_scale"),
        ({"v_thresh": [-1.0, 7, 30]}, "v_thresh[0]"),
        ({"v_thresh": [30, 0, 30]}, "v_thresh[1]"),
        ({"v_thresh": [30, math.nan, 30]}, "v_thresh[1]"),
        ({"v_thresh": [30, 7]}, "v_thresh has 2 values"),
        ({"thresholds": [30, 7, 30]}, "unknown sleep parameter(s) ['thresholds']"),
        ({"max_rate": math.nan}, "max_rate"),
        ({"decay": math.nan}, "decay"),
        ({"inc": True}, "inc"),
        ({"dec": "0.1"}, "dec"),
    ],
)
def test_sleep_params_file_refused_naming_the_field(data_dir, tmp_path, capsys, change, field):
    """Refused before any training: by the file reader or against the model's declarations."""
    path = tmp_path / "p.json"
    path.write_text(json.dumps({**GOOD_SET, "alpha_scale": 10.0, **change}))  # NaN as JSON NaN
    line = refused(capsys, data_dir, tmp_path, "--sleep-params", str(path))
    assert field in line


def test_sleep_params_file_with_nan_refused_by_the_cli(data_dir, tmp_path, capsys):
    path = tmp_path / "p.json"
    path.write_text('{"max_rate": 40, "inc": 0.02, "dec": 0.07, "v_thresh": [30, 7, 30],'
                    ' "alpha_scale": NaN}')  # fmt: skip
    line = refused(capsys, data_dir, tmp_path, "--sleep-params", str(path))
    assert "alpha_scale" in line


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"v_thresh": [0.0, 1.0]}, r"v_thresh\[0\] must be > 0"),
        ({"v_thresh": [1.0, -2.0]}, r"v_thresh\[1\] must be > 0"),
        ({"alphas": [1.0, -0.5]}, r"alphas\[1\] must be >= 0"),
        ({"alphas": [math.nan, 1.0]}, "alphas"),
    ],
)
def test_sleep_params_refuse_bad_thresholds_and_alphas(change, match):
    base = {"max_rate": 10, "inc": 0.1, "dec": 0.1, "v_thresh": [1, 1], "alphas": [1, 1]}
    with pytest.raises(ValueError, match=match):
        SleepParams.for_model(**{**base, **change})


# ----------------------------------------------------------------------------- 4. seeds


def test_max_seed_is_one_constant():
    from brainsleep.sleep.params import MAX_SEED

    assert MAX_SEED == 2**31 - 1


@pytest.mark.parametrize("seed", ["2147483648", "-1"])
def test_cli_refuses_seeds_the_engine_cannot_take(data_dir, tmp_path, capsys, seed):
    line = refused(capsys, data_dir, tmp_path, "--seeds", "0", seed)
    assert "--seeds" in line and "2147483647" in line


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--search", "2", "--search-range", "foo=[1,2]"], "not a searched parameter"),
        (["--search", "2", "--search-range", "dec=[2,1]"], "0 < LO <= HI"),
        (["--search", "2", "--search-range", "dec"], "NAME=[LO,HI]"),
        (["--search-range", "dec=[1e-5,10]"], "needs --search"),
        (["--search-val", "seen"], "needs --protocol class-incremental"),
    ],
)
def test_cli_refuses_bad_search_options(data_dir, tmp_path, capsys, args, match):
    line = refused(capsys, data_dir, tmp_path, *args)
    assert match in line


# ------------------------------------------------------------------------ 5. preferences


@pytest.mark.parametrize(
    ("pref", "match"),
    [
        ("codegen.nonsense=1", "unknown Brian2 preference"),
        ("nodots=1", "unknown Brian2 preference"),
        ("codegen.target=fortran", "fortran"),
        ("codegen.loop_invariant_optimisations=3", "invalid"),
    ],
)
def test_cli_refuses_bad_brian2_preferences(data_dir, tmp_path, capsys, pref, match):
    import brian2

    before = brian2.prefs["codegen.target"], brian2.prefs["codegen.loop_invariant_optimisations"]
    line = refused(capsys, data_dir, tmp_path, "--pref", pref, device="runtime")
    assert f"--pref {pref.split('=')[0]}" in line and match in line
    after = brian2.prefs["codegen.target"], brian2.prefs["codegen.loop_invariant_optimisations"]
    assert after == before  # checking a value does not leave it set


def test_cli_refuses_preferences_on_the_reference_device(data_dir, tmp_path, capsys):
    line = refused(capsys, data_dir, tmp_path, "--pref", "codegen.target=numpy")
    assert "no effect on the reference device" in line


def test_valid_preference_is_accepted(data_dir, tmp_path):
    cfg = validate(config(data_dir, tmp_path, device="runtime", prefs={"codegen.target": "numpy"}))
    assert cfg.prefs == {"codegen.target": "numpy"}


# -------------------------------------------------------------------------- 6. imbalance


def test_cli_refuses_an_empty_imbalance(data_dir, tmp_path, capsys):
    line = refused(capsys, data_dir, tmp_path, "--imbalance", "")
    assert "--imbalance" in line and "5-9:0.1" in line and "none" in line


# ------------------------------------------------------------------ 7. make_subset seeds


@pytest.mark.parametrize("seed", [-1, 2**31, 1.5])
def test_make_subset_names_the_seed_and_its_range(seed):
    with pytest.raises(ValueError, match=r"seed must be an integer in 0\.\.2147483647"):
        make_subset(np.arange(100) % 10, 0.5, seed=seed)


# --------------------------------------------------------- other arguments that fail late


def test_cli_refuses_fractions_that_leave_no_training_image(data_dir, tmp_path, capsys):
    line = refused(capsys, data_dir, tmp_path, "--fractions", "0.001")
    assert "--fractions 0.001" in line and "0 examples" in line


def test_cli_refuses_an_imbalance_that_empties_classes(data_dir, tmp_path, capsys):
    line = refused(capsys, data_dir, tmp_path, "--imbalance", "5-9:0.001")
    assert "5, 6, 7, 8, 9" in line and "no example" in line


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"val_fraction": math.nan}, "--val-fraction"),
        ({"seeds": [0, 0]}, "--seeds: 0 is given twice"),
        ({"fractions": [0.01, 0.0100000001]}, "same cell"),
        ({"datasets": ["mnist", "MNIST"]}, "--dataset: mnist is given twice"),
        ({"sleep_steps": 2**31}, "--sleep-steps"),
        ({"hidden": [10**7, 10**7]}, "--hidden"),
        ({"hidden": [10**5, 10**5], "device": "runtime"}, "int32"),
        ({"search": 10**13, "val_fraction": 0.2}, "--search"),
        ({"seeds": [2**31]}, "2147483647"),
        ({"imbalance": ""}, "--imbalance"),
    ],
)
def test_validate_refuses_what_would_fail_late(data_dir, tmp_path, fields, match):
    with pytest.raises(ConfigError, match=re.escape(match)):
        validate(config(data_dir, tmp_path, **fields))


def test_validate_refuses_a_build_root_that_is_a_file(data_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    cfg = config(data_dir, tmp_path, device="cpp_standalone", build_root=str(blocker / "b"))
    with pytest.raises(ConfigError, match="--build-root"):
        validate(cfg)
