"""Runs that share a cell's training share its trained baseline (a sweep trains once)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brainsleep.experiment.__main__ import main
from brainsleep.experiment.baselines import BaselineCache, BaselineCacheError

from .test_experiment import argv


def _run(data_dir, build_root, out, *extra):
    assert main(argv(data_dir, out, build_root, "--device", "reference", *extra)) == 0
    return pd.read_csv(out / "metrics.csv")


def _weights(out):
    with np.load(next(out.glob("cells/*/weights_baseline.npz"))) as z:
        return [z[k] for k in z.files]


def test_a_second_run_loads_the_baseline_and_gets_the_same_results(
    data_dir, build_root, tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv("BRAINSLEEP_BASELINE_CACHE", "off")
    alone = _run(data_dir, build_root, tmp_path / "alone")  # trained without the cache
    monkeypatch.setenv("BRAINSLEEP_BASELINE_CACHE", str(tmp_path / "cache"))
    with caplog.at_level(logging.INFO, logger="brainsleep.experiment"):
        first = _run(data_dir, build_root, tmp_path / "first")
        assert "trained before" not in caplog.text
        second = _run(data_dir, build_root, tmp_path / "second", "--sleep-steps", "30")
        assert "baseline: trained before, from" in caplog.text
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    alone_w, first_w, second_w = (_weights(tmp_path / n) for n in ("alone", "first", "second"))
    assert len(alone_w) == len(first_w) == len(second_w) == 3
    for w_alone, w_first, w_second in zip(alone_w, first_w, second_w, strict=True):
        np.testing.assert_array_equal(w_first, w_alone)
        np.testing.assert_array_equal(w_second, w_alone)
    # every stage of the cached run equals the run that trained its own baseline
    pd.testing.assert_frame_equal(first, alone)
    base = lambda df: df[df["stage"] == "baseline"].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(base(second), base(alone))


def test_another_seed_or_recipe_trains_its_own(data_dir, build_root, tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINSLEEP_BASELINE_CACHE", str(tmp_path / "cache"))
    _run(data_dir, build_root, tmp_path / "a")
    _run(data_dir, build_root, tmp_path / "b", "--seeds", "1")
    _run(data_dir, build_root, tmp_path / "c", "--epochs", "2")
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 3


def test_a_damaged_entry_is_named_and_trained_again(
    data_dir, build_root, tmp_path, monkeypatch, caplog
):
    """A changed, overwritten or truncated entry (a truncated .npz raised a raw
    BadZipFile traceback) is named in a warning and trained again under the key's lock;
    the run's baseline equals the undamaged one."""
    monkeypatch.setenv("BRAINSLEEP_BASELINE_CACHE", str(tmp_path / "cache"))
    _run(data_dir, build_root, tmp_path / "a")
    (entry,) = (tmp_path / "cache").glob("*.npz")
    good = entry.read_bytes()
    with np.load(entry) as z:
        contents = {k: z[k] for k in z.files}
    contents["layer1"] = contents["layer1"] + 1e-9  # a changed weight under its old record
    np.savez(entry, **contents)
    changed = entry.read_bytes()
    damages = {
        "changed": (changed, "does not match its record"),
        "not a zip": (b"not a zip", "cannot read the cached baseline"),
        "truncated": (good[: len(good) // 2], "cannot read the cached baseline"),
        "empty": (b"", "cannot read the cached baseline"),
    }
    for k, (damaged, message) in enumerate(damages.values()):
        entry.write_bytes(damaged)
        with pytest.raises(BaselineCacheError, match=f"{entry}.*delete it"):
            BaselineCache(tmp_path / "cache").load(entry.stem)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="brainsleep"):
            _run(data_dir, build_root, tmp_path / f"b{k}")
        assert f"{entry}" in caplog.text and message in caplog.text
        assert "training it again" in caplog.text
        assert entry.read_bytes() == good  # retrained to the same bytes
        for w, w_good in zip(_weights(tmp_path / f"b{k}"), _weights(tmp_path / "a"), strict=True):
            np.testing.assert_array_equal(w, w_good)


def test_off_disables_it(monkeypatch):
    monkeypatch.setenv("BRAINSLEEP_BASELINE_CACHE", "off")
    assert BaselineCache.default() is None


def test_two_concurrent_runs_train_once_and_agree(data_dir, build_root, tmp_path):
    """Two processes started together on the same cells: one trains, the other waits for
    the entry's lock and loads it; both end with the same baseline."""
    import os
    import subprocess
    import sys

    from .test_experiment import REPO

    env = {
        **os.environ,
        "BRAINSLEEP_BASELINE_CACHE": str(tmp_path / "cache"),
        "PYTHONPATH": str(REPO),
    }
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "brainsleep.experiment",
                *argv(data_dir, tmp_path / name, build_root, "--device", "reference"),
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for name in ("a", "b")
    ]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    logs = [(tmp_path / n / "log.txt").read_text() for n in ("a", "b")]
    assert sum("baseline: trained before, from" in text for text in logs) == 1
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    for w_a, w_b in zip(_weights(tmp_path / "a"), _weights(tmp_path / "b"), strict=True):
        np.testing.assert_array_equal(w_a, w_b)


def test_the_key_covers_every_training_module_and_the_augmentation_library(monkeypatch):
    """training.py imports evaluation.py (early stopping): a key over a hand-picked list of
    modules had left it out, so an edit there reused baselines it would change."""
    from brainsleep.ann.recipes import get_recipe
    from brainsleep.experiment import baselines

    ann_dir = Path(__file__).resolve().parents[1] / "brainsleep" / "ann"
    assert set(ann_dir.glob("*.py")) <= set(baselines.training_sources())
    assert ann_dir / "evaluation.py" in baselines.training_sources()

    x, y = np.zeros((4, 6)), np.arange(4) % 2

    def key() -> str:
        return baselines.baseline_key(get_recipe("reference"), (6, 3, 2), 0, x, y)

    before = key()
    monkeypatch.setattr(baselines, "_library_versions", lambda: {"kornia": "0.0-other"})
    assert key() != before


@pytest.mark.slow
def test_the_strong_control_and_a_strong_recipe_baseline_are_one_training(
    data_dir, build_root, tmp_path, monkeypatch, caplog
):
    """A run's --strong control and the baseline of a run with --recipe strong on the same
    cell are the same training: the second loads the first's network (it trained its
    own before), and both stages' rows and weights are identical to a run without the
    cache."""
    monkeypatch.setenv("BRAINSLEEP_BASELINE_CACHE", "off")
    # the strong control trains the recipe as declared: its 100 epochs (argv gives 3)
    strong_recipe = ("--recipe", "strong", "--epochs", "100")
    alone = _run(data_dir, build_root, tmp_path / "alone", *strong_recipe)
    monkeypatch.setenv("BRAINSLEEP_BASELINE_CACHE", str(tmp_path / "cache"))
    _run(data_dir, build_root, tmp_path / "control", "--strong")
    with caplog.at_level(logging.INFO, logger="brainsleep.experiment"):
        strong = _run(data_dir, build_root, tmp_path / "strong", *strong_recipe)
    assert "baseline: trained before, from" in caplog.text
    control = pd.read_csv(tmp_path / "control" / "metrics.csv")
    row = lambda df, stage: df[df["stage"] == stage].reset_index(drop=True)  # noqa: E731
    cols = ["accuracy", "balanced_accuracy", "weight_hoyer", "train_steps"]
    pd.testing.assert_frame_equal(row(strong, "baseline")[cols], row(alone, "baseline")[cols])
    pd.testing.assert_frame_equal(row(control, "strong")[cols], row(alone, "baseline")[cols])
    with np.load(next((tmp_path / "control").glob("cells/*/weights_strong.npz"))) as z:
        control_w = [z[k] for k in z.files]
    for a, b in zip(control_w, _weights(tmp_path / "alone"), strict=True):
        np.testing.assert_array_equal(a, b)
