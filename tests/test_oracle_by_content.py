"""The numpy oracle runs a model only when its content is the rule it implements (issue 29).

It used to run its own SRC for any model named ``src``: a copy of src.py with a declared
``gain`` (as the model file invites) run with gain = 0 still spiked on the reference
device, while the Brian2 devices (which run the model's equations) stayed silent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from brainsleep.sleep import SleepEngine, SleepParams
from brainsleep.sleep.model import MODELS_DIR, model_content_digest
from brainsleep.sleep.reference import ORACLE_MODEL_CONTENT

SRC = (MODELS_DIR / "src.py").read_text()


def with_gain(folder: Path) -> Path:
    """src.py with a declared ``gain`` on the transmission, saved as ``src.py``."""
    text = SRC.replace(
        "PARAMETERS = {\n",
        'PARAMETERS = {\n    "gain": Parameter(1.0, doc="transmission gain"),\n',
    )
    text = text.replace('"on_pre": "v_post += alpha * w"', '"on_pre": "v_post += gain * alpha * w"')
    text = text.replace(
        "        alpha : 1 (shared)      # layer scale of the conversion, set by the engine\n",
        "        alpha : 1 (shared)      # layer scale of the conversion, set by the engine\n"
        "        gain : 1 (shared)\n",
    )
    assert text.count("gain") >= 3
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "src.py"
    path.write_text(text)
    return path


def test_the_oracle_implements_the_shipped_src():
    assert model_content_digest("src") == ORACLE_MODEL_CONTENT


def test_an_edited_copy_named_src_is_refused_by_the_oracle(tmp_path):
    path = with_gain(tmp_path / "mine")
    with pytest.raises(ValueError, match="runtime, cpp_standalone or cuda_standalone") as err:
        SleepEngine("reference", path)
    assert "\n" not in str(err.value)
    # the Brian2 devices run it, and with gain = 0 nothing reaches the hidden layers
    rng = np.random.default_rng(0)
    weights = [rng.uniform(0, 0.5, (20, 784)), rng.uniform(0, 0.5, (20, 20)), np.ones((10, 20))]
    params = SleepParams.for_model(path, alphas=[1, 1, 1], gain=0.0, v_thresh=[0.5] * 3)
    x = np.full((30, 784), 0.5)
    res = SleepEngine("runtime", path).run(weights, x, params, seed=1, record_layers="all")
    assert (res.spikes["layer"].values == 0).any()
    assert not (res.spikes["layer"].values > 0).any()


def test_the_command_line_refuses_it_before_training(data_dir, tmp_path, capsys):
    from .test_bad_input import refused

    path = with_gain(tmp_path / "mine")
    line = refused(capsys, data_dir, tmp_path, "--model", str(path), device="reference")
    assert "differs from it" in line
