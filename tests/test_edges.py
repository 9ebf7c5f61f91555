"""Edges of the newer features refused in one line before anything is written (issue 32)."""

from __future__ import annotations

import pytest

from .test_bad_input import refused


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (("--sleep-input-option", "patch=5.5"), "patch=5.5 must be a whole number"),
        (("--sleep-input-option", "patch=11.0"), "patch=11.0 must be a whole number"),
        (("--sleep-input-option", "patch=true"), "patch=True must be a whole number"),
        (
            ("--sleep-input", "samples", "--sleep-input-option", "every=1.5"),
            "every=1.5 must be a whole number",
        ),
        (("--sleep-input", "noise", "--sleep-input-option", "level=true"), "must be a number"),
        (
            ("--sleep-input", "class-means", "--sleep-input-option", "classes=[0,1.5]"),
            "a list of whole numbers",
        ),
    ],
)
def test_sleep_input_options_are_type_checked_before_training(
    data_dir, tmp_path, capsys, extra, words
):
    """patch=5.5 used to pass validation, train the baseline and die in the sleep with a
    53-line traceback; patch=true ran as a 1-pixel patch."""
    assert words in refused(capsys, data_dir, tmp_path, *extra)


def test_well_typed_options_still_pass(data_dir, tmp_path):
    from brainsleep.experiment.config import validate

    from .test_bad_input import config

    for name, options in (
        ("masked-mean", {"patch": 7}),
        ("noise", {"level": 1}),
        ("noise", {"level": 0.25}),
        ("class-means", {"classes": [0, 1], "every": 2}),
    ):
        validate(config(data_dir, tmp_path, sleep_input=name, sleep_input_options=options))


def test_cache_prune_with_an_enormous_age_removes_nothing(tmp_path, capsys):
    """--older-than 1e10 days is more than a timedelta holds: it used to raise an
    OverflowError traceback; it means "nothing that old"."""
    from brainsleep.cache import main

    build = tmp_path / "root" / "cpp_standalone-0123456789abcdef0123"
    build.mkdir(parents=True)
    assert main(["prune", "--older-than", "1e10", "--root", str(tmp_path / "root")]) == 0
    assert build.is_dir()
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("blocked", ["best.json", "best.csv", "best.md"])
def test_pooled_refuses_an_out_whose_files_are_folders_before_computing(tmp_path, capsys, blocked):
    """It re-scored everything and then failed with a traceback, leaving best.csv and
    best.md behind; now it is refused first (the run directory is not even read)."""
    from brainsleep.experiment.pooled import main

    (tmp_path / blocked).mkdir()
    out = tmp_path / "best.json"
    code = main([str(tmp_path / "no_run"), "--setting", "x", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "is not a file" in err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [blocked]


def test_an_out_inside_another_runs_cells_is_refused(data_dir, tmp_path, capsys):
    """It was accepted, after which the outer run could not be pooled (issue 32)."""
    from brainsleep.experiment.__main__ import main

    from .test_experiment import argv

    outer = tmp_path / "outer"
    (outer / "cells").mkdir(parents=True)
    (outer / "config.json").write_text('{"fingerprint": "x"}')
    inner = outer / "cells" / "mine"
    code = main(argv(data_dir, inner, tmp_path / "builds", "--device", "reference"))
    err = capsys.readouterr().err
    assert code == 2 and "inside the cells of the results directory" in err, err
    assert not inner.exists()
    # a study's root there too
    spec = tmp_path / "s.toml"
    spec.write_text('[[runs]]\nname = "a"\n')
    assert main(["--study", str(spec), "--out", str(inner), "--device", "reference"]) == 2
    assert "inside the cells" in capsys.readouterr().err
    assert not inner.exists()


def test_the_same_model_in_another_checkout_resumes(data_dir, tmp_path, capsys):
    """The fingerprint held the model's absolute path: the same commit checked out
    elsewhere refused to resume or grow its results (issue 32). Content decides."""
    import shutil

    from brainsleep.experiment.__main__ import main
    from brainsleep.experiment.config import ExperimentConfig
    from brainsleep.sleep.model import MODELS_DIR

    from .test_experiment import argv

    here, there = tmp_path / "a" / "models", tmp_path / "b" / "models"
    for d in (here, there):
        d.mkdir(parents=True)
        shutil.copy(MODELS_DIR / "src.py", d / "src.py")
    fp = {d: ExperimentConfig(model=str(d / "src.py")).fingerprint() for d in (here, there)}
    assert fp[here] == fp[there] == ExperimentConfig(model="src").fingerprint()
    (there / "src.py").write_text((there / "src.py").read_text() + "\n# edited\n")
    assert ExperimentConfig(model=str(there / "src.py")).fingerprint() != fp[here]
    shutil.copy(MODELS_DIR / "src.py", there / "src.py")
    out, builds = tmp_path / "run", tmp_path / "builds"
    common = ("--device", "reference")
    assert main(argv(data_dir, out, builds, *common, "--model", str(here / "src.py"))) == 0
    before = (out / "metrics.csv").read_bytes()
    capsys.readouterr()
    assert main(argv(data_dir, out, builds, *common, "--model", str(there / "src.py"))) == 0
    assert "different configuration" not in capsys.readouterr().err
    assert (out / "metrics.csv").read_bytes() == before


def test_every_option_of_the_experiment_reaches_its_configuration():
    """No option is parsed and then ignored: each one's value is read into the
    configuration (config_from_args, by name or through its list of options named like
    their configuration field, or _sleep_params for the sleep-parameter options), except
    --study and --runs, which pick the runs of a study (tests/test_study_spec.py).
    Options a protocol cannot honour are refused by validate (tests/test_bad_input.py)."""
    import inspect

    from brainsleep.experiment import cli

    source = inspect.getsource(cli.config_from_args) + inspect.getsource(cli._sleep_params)
    dests = {a.dest for a in cli.build_parser()._actions if a.dest != "help"}
    assert len(dests) > 30
    unread = sorted(d for d in dests if f"args.{d}" not in source and d not in cli._SAME_NAMES)
    assert unread == ["runs", "study"]
    assert set(cli._SAME_NAMES) <= dests  # the pass-through list names parsed options only


@pytest.mark.parametrize(
    "module",
    [
        "brainsleep.experiment.pooled",
        "brainsleep.cache",
        "brainsleep.analysis.export",
        "brainsleep.analysis.__main__",
    ],
)
def test_every_option_of_the_other_commands_is_read(module):
    """The other command lines: each option's value is read (``.<dest>``) in the module
    that parses it; none is parsed and then ignored."""
    import argparse
    import importlib
    import inspect
    import re

    m = importlib.import_module(module)
    parser = m.build_parser()
    actions = list(parser._actions)
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for sub in a.choices.values():
                actions += sub._actions
    dests = {a.dest for a in actions if a.dest not in ("help", argparse.SUPPRESS)}
    assert dests
    source = inspect.getsource(m)
    assert sorted(d for d in dests if not re.search(rf"\.{d}\b", source)) == []
