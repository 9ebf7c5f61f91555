"""A parameter is declared once, in the model file, and everything else reads it.

The issue's test: a copy of ``models/src.py`` that adds a new parameter (a gain in
``on_pre``) runs, is settable from ``--sleep-params`` and searchable, with no edit
outside that file.
"""

from __future__ import annotations

import numpy as np
import pytest

from brainsleep.experiment.config import ConfigError, start_params, validate
from brainsleep.experiment.search import SearchSpace, TrialResult, run_search
from brainsleep.sleep import SleepParams, load_model, run_sleep
from brainsleep.sleep.model import MODELS_DIR
from brainsleep.sleep.params import params_from_set, preset

from .test_bad_input import config

SRC = (MODELS_DIR / "src.py").read_text()


def with_gain(tmp_path, default: float = 1.0):
    """A copy of src.py whose on_pre is scaled by a new declared parameter ``gain``."""
    text = SRC
    for old, new in (
        (
            "PARAMETERS = {",
            "PARAMETERS = {\n"
            f'    "gain": Parameter({default}, doc="scale of transmission", search=(0.5, 2.0)),',
        ),
        ("        alpha : 1 (shared)", "        gain : 1 (shared)\n        alpha : 1 (shared)"),
        ('"on_pre": "v_post += alpha * w"', '"on_pre": "v_post += gain * alpha * w"'),
    ):
        assert text.count(old) == 1, f"src.py changed: update this test's edit of {old!r}"
        text = text.replace(old, new)
    path = tmp_path / "src_gain.py"
    path.write_text(text)
    return path


def det_input(n_steps, n_in, seed=3):
    return (np.random.default_rng(seed).random((n_steps, n_in)) < 0.5).astype(float)


def test_new_parameter_runs_and_acts(tmp_path):
    path = with_gain(tmp_path)
    sizes = (12, 9, 4)
    rng = np.random.default_rng(1)
    weights = [rng.uniform(-0.3, 0.6, (sizes[k + 1], sizes[k])) for k in range(2)]
    x = det_input(40, 12)
    common = {"alphas": [1.0, 1.0], "max_rate": 1000.0, "v_thresh": [0.8, 0.8]}

    def run(model, **values):
        params = SleepParams.for_model(model, **common, **values)
        return run_sleep(weights, x, params, device="runtime", model=model, seed=2)

    src = run("src")
    same = run(path, gain=1.0)
    silent = run(path, gain=0.0)
    layers = silent.spikes["layer"].values
    assert (layers == 0).any() and not (layers > 0).any()  # gain 0: nothing transmitted
    np.testing.assert_array_equal(same.spikes["neuron"].values, src.spikes["neuron"].values)
    for a, b in zip(same.weights, src.weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert '"gain": 0.0' in silent.spikes.attrs["params"]  # recorded by name


def test_new_parameter_settable_by_name_and_checked(tmp_path, data_dir):
    path = with_gain(tmp_path)
    cfg = validate(
        config(data_dir, tmp_path, device="runtime", model=str(path), sleep_params={"gain": 0.25})
    )
    params = params_from_set(start_params(cfg), [1.0, 1.0, 1.0], cfg.model)
    # the file overrides the preset by name; the preset the rest; the declaration "decay"
    assert params["gain"] == 0.25 and params["max_rate"] == preset(cfg.sleep_preset)["max_rate"]
    assert params["decay"] == 0.999
    with pytest.raises(ConfigError, match="gain must be >= 0"):
        validate(
            config(
                data_dir, tmp_path, device="runtime", model=str(path), sleep_params={"gain": -1.0}
            )
        )
    # the same file on the reference model: a name it does not declare
    with pytest.raises(ConfigError, match=r"unknown sleep parameter\(s\) \['gain'\]"):
        validate(config(data_dir, tmp_path, sleep_params={"gain": 0.25}))


def test_new_parameter_is_searched(tmp_path):
    path = with_gain(tmp_path)
    space = SearchSpace.for_model(path, 3)
    assert "gain" in space.names and "v_thresh_3" in space.names
    seen = []

    def objective(cand: dict) -> TrialResult:
        seen.append(cand)
        return TrialResult(-abs(np.log(cand["gain"])))

    start = {"max_rate": 40.0, "v_thresh": [30, 7, 30], "alpha_scale": 10.0}
    best, history = run_search(start, 6, 0, objective, tmp_path / "j", space=space, progress=False)
    assert seen[0]["gain"] == 1.0  # trial 0: the declared default
    assert len({c["gain"] for c in seen}) == 6
    assert all(0.5 <= c["gain"] <= 2.0 for c in seen)
    assert {"gain", "v_thresh_1"} <= set(history[0])


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        # a shared variable nothing would set
        (("        alpha : 1 (shared)", "        k : 1 (shared)\n        alpha : 1 (shared)"),
         "shared variable 'k' is not declared in PARAMETERS"),
        # a declaration no block uses
        (("PARAMETERS = {", 'PARAMETERS = {\n    "k": Parameter(1.0),'),
         r"PARAMETERS \['k'\] are not shared variables"),
        # units that disagree
        (('42.162268,\n        "Hz",', '42.162268,\n        "1",'), "has unit '1' but INPUT"),
        # not a Parameter
        (("PARAMETERS = {", 'PARAMETERS = {\n    "k": 1.0,'), "must be a brainsleep"),
        # constants are numbers: an object has no stable digest (results never resume)
        (("CONSTANTS = {", 'CONSTANTS = {\n    "k": object(),'),
         r"CONSTANTS\['k'\] must be a finite number, got object"),
        (("CONSTANTS = {", 'CONSTANTS = {\n    "k": True,'), "must be a finite number, got bool"),
        (("CONSTANTS = {", 'CONSTANTS = {\n    "k": "0.1",'), "must be a finite number, got str"),
        (("CONSTANTS = {", 'CONSTANTS = {\n    "k": 10**400,'), "must be a finite number, got int"),
        # nor anything else in a block whose description changes from process to process
        (('"reset": "v = 0",', '"reset": "v = 0",\n    "note": object(),'),
         "object <object object at 0x.* has no stable description"),
    ],
)  # fmt: skip
def test_malformed_declarations_are_refused_at_load(tmp_path, edit, match):
    text = SRC.replace(*edit)
    assert text != SRC
    path = tmp_path / "bad.py"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_model(path)


def test_constants_may_be_numpy_numbers_and_quantities(tmp_path):
    """Numbers of any kind with a stable description are constants (numpy scalars, a
    scalar Brian2 quantity): only objects without one are refused (above)."""
    text = SRC.replace(
        "CONSTANTS = {",
        'import numpy as np\nfrom brian2 import ms\nCONSTANTS = {\n    "k": np.float32(0.5),\n'
        '    "tau": 10 * ms,',
    )
    path = tmp_path / "numbers.py"
    path.write_text(text)
    assert load_model(path).constants["k"] == 0.5


def test_model_digest_does_not_depend_on_string_hashing(tmp_path):
    """A set in a block is described with its members sorted: the digest (and every
    results fingerprint) is the same in processes with different string hashing."""
    import subprocess
    import sys

    text = SRC.replace(
        '"reset": "v = 0",', '"reset": "v = 0",\n    "tags": {"alpha", "beta", "gamma", "delta"},'
    )
    path = tmp_path / "tagged.py"
    path.write_text(text)
    code = f"from brainsleep.sleep.model import model_content_digest as d; print(d({str(path)!r}))"
    digests = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**__import__("os").environ, "PYTHONHASHSEED": seed},
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        for seed in ("1", "2", "3")
    }  # fmt: skip
    assert len(digests) == 1 and len(next(iter(digests))) == 64
