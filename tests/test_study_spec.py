"""Study specs (``--study FILE``): the committed specs are valid, the command line wins
over the file, bad input anywhere is one line and nothing written, runs go in order."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from brainsleep.cli import ANALYSIS_COMMAND
from brainsleep.experiment.__main__ import build_parser, config_from_args, main
from brainsleep.experiment.study import (
    StudyError,
    StudyRun,
    _check_runs,
    load_study,
    read_study,
    run_study,
)
from brainsleep.subsets import select_subset

REPO = Path(__file__).resolve().parents[1]
SPECS = {
    "fractions": ["reference", "strong", "reference_preset"],
    "reference_protocol": ["ep10", "ep20", "ep40"],
    "imbalance": [
        "reference_5-9x0.1",
        "strong_5-9x0.1",
        "reference_5-9x0.01",
        "strong_5-9x0.01",
        "reference_3x0.01",
        "strong_3x0.01",
    ],
}


def write(tmp_path: Path, text: str, name: str = "spec.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def configs(study, parser=None):
    """The validated configuration of every run (what the CLI checks before running)."""
    parser = parser or build_parser()
    cfgs, _ = _check_runs(study, parser, config_from_args)
    return cfgs


# ------------------------------------------------------------------ committed specs


@pytest.mark.parametrize("stem", sorted(SPECS))
def test_committed_spec_is_valid(stem, tmp_path):
    path = REPO / "studies" / f"{stem}.toml"
    text = path.read_text()
    assert "--study studies/" in text and text.startswith("#"), "say the claim and the command"
    study = read_study(path, ["--device", "reference"], tmp_path / "out")
    assert [r.name for r in study.runs] == SPECS[stem]
    assert [r.out for r in study.runs] == [tmp_path / "out" / n for n in SPECS[stem]]
    cfgs = configs(study)
    assert all(c.seeds == [0, 1, 2, 3, 4] and c.strong for c in cfgs)
    assert not (tmp_path / "out").exists()


def test_fractions_spec_runs():
    study = read_study(REPO / "studies" / "fractions.toml", ["--device", "reference"])
    assert study.out == Path("results") / "fractions"
    by_name = {r.name: c for r, c in zip(study.runs, configs(study), strict=True)}
    assert by_name["reference"].recipe == "reference" and by_name["reference"].search == 20
    assert by_name["strong"].recipe == "strong"
    preset = by_name["reference_preset"]
    assert (preset.recipe, preset.search, preset.sleep_preset) == (
        "reference",
        0,
        "reduced_mnist_10ep",
    )
    assert all(c.datasets == ["mnist", "fashion-mnist"] for c in by_name.values())


def test_reference_protocol_takes_exactly_5000_images():
    study = read_study(REPO / "studies" / "reference_protocol.toml", ["--device", "reference"])
    cfgs = configs(study)
    assert [(c.epochs, c.sleep_preset) for c in cfgs] == [
        (10, "reduced_mnist_10ep"),
        (20, "reduced_mnist_20ep"),
        (40, "reduced_mnist_40ep"),
    ]
    for c in cfgs:
        assert (c.subset, c.val_fraction, c.search) == ("first", 0.0, 0)
        (f,) = c.fractions
        assert select_subset(np.arange(60_000) % 10, f, "first").size == 5000


def test_imbalance_spec_one_imbalance_per_run():
    study = read_study(REPO / "studies" / "imbalance.toml", ["--device", "reference"])
    got = [(c.recipe, c.imbalance, c.fractions) for c in configs(study)]
    assert got == [
        (recipe, imb, [0.1]) for imb in ("5-9x0.1", "5-9x0.01", "3x0.01")
        for recipe in ("reference", "strong")
    ]  # fmt: skip


# ------------------------------------------------------------------ the format


SPEC = """
description = "two runs"
[defaults]
seeds = [0, 1, 2]
fractions = 0.5          # one value for a list option
hidden = [8, 8]
strong = true
val_fraction = 0.2       # underscores as well as dashes
pref = ["codegen.target=numpy"]
[[runs]]
name = "a"
recipe = "reference"
[[runs]]
name = "b"
recipe = "strong"
seeds = [3]
strong = false           # a run's key replaces the default's
"""


def test_defaults_then_run_then_command_line(tmp_path):
    path = write(tmp_path, SPEC)
    runs = load_study(path, ["--device", "runtime"], tmp_path / "root")
    assert all(isinstance(r, StudyRun) for r in runs)
    a, b = runs
    assert (a.out, b.out) == (tmp_path / "root" / "a", tmp_path / "root" / "b")
    parser = build_parser()
    pa, pb = (parser.parse_args(list(r.argv)) for r in runs)
    assert (pa.seeds, pb.seeds) == ([0, 1, 2], [3])
    assert (pa.strong, pb.strong) == (True, False)
    assert (pa.recipe, pb.recipe) == ("reference", "strong")
    assert pa.fractions == [0.5] and pa.val_fraction == 0.2 and pa.hidden == [8, 8]
    assert pa.pref == ["codegen.target=numpy"]
    assert pa.out == str(tmp_path / "root" / "a")


def test_command_line_overrides_every_run(tmp_path, capsys):
    path = write(tmp_path, SPEC)
    study = read_study(
        path, ["--seeds", "0", "--workers", "2", "--no-progress", "--device", "runtime"]
    )
    cfgs = configs(study)
    assert [c.seeds for c in cfgs] == [[0], [0]]
    assert all(c.workers == 2 and not c.progress for c in cfgs)
    assert study.out == Path("results") / "spec"  # default: results/<file stem>


def test_command_line_overrides_repeated_options_key_by_key(tmp_path):
    """--sleep-param and --sleep-input-option next to --study were refused as "given
    twice" although the command line wins over the file (issue 32)."""
    path = write(
        tmp_path,
        '[defaults]\nsleep_param = ["max_rate=40", "decay=0.99"]\n'
        'sleep_input = "noise"\nsleep_input_option = ["level=0.1"]\n'
        '[[runs]]\nname = "a"\n[[runs]]\nname = "b"\nsleep_param = ["inc=0.5"]\n',
    )
    cli = ["--sleep-param", "max_rate=50", "--sleep-input-option=level=0.2", "--pref",
           "codegen.target=numpy"]  # fmt: skip
    a, b = configs(read_study(path, cli))
    assert a.sleep_params == {"max_rate": 50, "decay": 0.99}
    assert b.sleep_params == {"inc": 0.5, "max_rate": 50}  # the run's list replaces [defaults]
    assert a.sleep_input_options == b.sleep_input_options == {"level": 0.2}
    # on a plain command line a key given twice is still refused
    from brainsleep.experiment.config import ConfigError, parse_input_options

    with pytest.raises(ConfigError, match="given twice"):
        parse_input_options(["level=0.1", "level=0.2"])


def test_without_runs_one_run_named_after_the_file(tmp_path):
    path = write(tmp_path, "[defaults]\nseeds = [4]\n", "solo.toml")
    (run,) = load_study(path, [], tmp_path / "r")
    assert run.name == "solo" and run.out == tmp_path / "r" / "solo"
    assert build_parser().parse_args(list(run.argv)).seeds == [4]


def test_study_is_in_help():
    text = build_parser().format_help()
    assert "--study FILE" in text and "study:" in text


BAD = [
    ('[[runs]]\nname = "strong"\nrecipes = "strong"\n', "run 'strong': unknown option 'recipes'"),
    ('[defaults]\nrecipe = ["reference", "strong"]\n', "[defaults]: option 'recipe' takes one"),
    ("[defaults]\nstrong = 'yes'\n", "option 'strong' takes true or false"),
    ("[defaults]\nseeds = {a = 1}\n", "option 'seeds' takes an integer or a list"),
    ("[defaults]\nseeds = [0, 'x']\n", "option 'seeds'"),
    ("[defaults]\nsearch = 2.5\n", "option 'search' takes one value, an integer"),
    ("[defaults]\nsubset = 'nope'\n", "option 'subset': 'nope' is not one of"),
    ("[defaults]\nseeds = [0,\n", "not valid TOML"),
    ('[[runs]]\nname = "a"\n[[runs]]\nname = "a"\n', "run name 'a' is given twice"),
    ('[[runs]]\nrecipe = "strong"\n', "run 1 has no name"),
    ('[[runs]]\nname = "../up"\n', "name '../up' is not a safe directory name"),
    ('[defaults]\nout = "elsewhere"\n', "option 'out' cannot be in a study"),
    ('[[runs]]\nname = "a"\nstudy = "x.toml"\n', "option 'study' cannot be in a study"),
    ("seeds = [0]\n", "unknown top-level key 'seeds'"),
    ('report = "claims"\n[[runs]]\nname = "a"\n', "report must be one of 'report', 'sweep'"),
    ("[defaults]\nseeds = [0]\nseeds-x = 1\n", "unknown option 'seeds-x'"),
    ("[defaults]\nval_fraction = 0.1\nval-fraction = 0.2\n", "'val-fraction' is given twice"),
    # valid for argparse, refused by the configuration's validation: run b, not run a
    ('[[runs]]\nname = "a"\n[[runs]]\nname = "b"\nrecipe = "nope"\n', "run 'b': unknown recipe"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_spec_is_one_line_exit_2_nothing_written(text, message, data_dir, tmp_path, capsys):
    path = write(tmp_path, text)
    out = tmp_path / "root"
    tiny = ["--data-dir", str(data_dir), "--fractions", "0.5", "--hidden", "8", "8"]
    tiny += ["--sleep-steps", "5", "--epochs", "1", "--sleep-preset", "mnist_class_incremental"]
    code = main(["--study", str(path), "--out", str(out), "--device", "reference", *tiny])
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}"), err
    assert message in lines[0], err
    assert not out.exists()


def test_bad_toml_names_its_line(tmp_path):
    path = write(tmp_path, 'description = "x"\n[defaults]\nseeds = 0 1\nrecipe = "strong"\n')
    with pytest.raises(StudyError, match=r"line \d+"):
        read_study(path)


@pytest.mark.parametrize("stem, report", [("remedies", "remedies"), ("input_sweep", "sweep")])
def test_committed_specs_name_the_report_that_answers_them(stem, report):
    """A study's closing line names its own analysis, not the claims report."""
    assert read_study(REPO / "studies" / f"{stem}.toml").report == report


def test_missing_spec_file(tmp_path, capsys):
    missing = tmp_path / "nothing.toml"
    assert main(["--study", str(missing), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: {missing}: no such file"


def test_results_directory_of_another_run_refused(tmp_path, capsys):
    """A run whose directory holds other results is refused before the first run."""
    path = write(tmp_path, '[[runs]]\nname = "a"\n[[runs]]\nname = "b"\n')
    (tmp_path / "root" / "b").mkdir(parents=True)
    (tmp_path / "root" / "b" / "stray.txt").write_text("x")
    code = main(["--study", str(path), "--out", str(tmp_path / "root"), "--device", "reference"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "run 'b'" in err and "non-empty directory" in err, err
    assert not (tmp_path / "root" / "a").exists()


def test_stops_at_the_first_failing_run(tmp_path, capsys):
    path = write(tmp_path, "".join(f'[[runs]]\nname = "{n}"\n' for n in "abc"))
    started = []

    def configure(args):
        print("sleep device: said once", file=sys.stderr)
        return config_from_args(args)

    def execute(cfg, argv):
        started.append(Path(cfg.out).name)
        return 0 if len(started) < 2 else 3

    argv = ["--study", str(path), "--out", str(tmp_path / "r"), "--device", "reference"]
    assert run_study(argv, parser=build_parser(), configure=configure, execute=execute) == 3
    assert started == ["a", "b"]
    captured = capsys.readouterr()
    assert captured.err.count("sleep device: said once") == 1
    assert "run 2/3 'b'" in captured.out and "run 3/3" not in captured.out
    assert "stopped at run 2/3 'b' (exit 3)" in captured.err


def test_runs_picks_runs_in_file_order(tmp_path, capsys):
    path = write(tmp_path, "".join(f'[[runs]]\nname = "{n}"\n' for n in "abc"))
    started = []

    def execute(cfg, argv):
        started.append(Path(cfg.out).name)
        return 0

    argv = ["--study", str(path), "--out", str(tmp_path / "r"), "--device", "reference"]
    kw = dict(parser=build_parser(), configure=config_from_args, execute=execute)
    assert run_study([*argv, "--runs", "c", "a"], **kw) == 0
    assert started == ["a", "c"]
    assert "run 2/2 'c'" in capsys.readouterr().out
    # a stray directory of a run left out is not checked
    (tmp_path / "r" / "b").mkdir(parents=True)
    (tmp_path / "r" / "b" / "stray.txt").write_text("x")
    assert run_study([*argv, "--runs", "c"], **kw) == 0


@pytest.mark.parametrize(
    "with_study, message",
    [
        (True, "--runs: 'zz' is not a run of"),
        (False, "--runs picks runs of a study: give --study FILE too"),
    ],
)
def test_runs_errors(with_study, message, tmp_path, capsys):
    path = write(tmp_path, '[[runs]]\nname = "a"\n')
    out = tmp_path / "r"
    argv = ["--out", str(out), "--device", "reference", "--runs", "a", "zz"]
    assert main(["--study", str(path), *argv] if with_study else argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not out.exists()


def test_runs_is_no_spec_key(tmp_path):
    path = write(tmp_path, '[defaults]\nruns = ["a"]\n')
    with pytest.raises(StudyError, match="option 'runs' cannot be in a study"):
        read_study(path)


# ------------------------------------------------------------------ end to end


@pytest.mark.slow
def test_tiny_study_writes_every_run(data_dir, build_root, tmp_path, capsys):
    path = write(
        tmp_path,
        f"""
        description = "tiny"
        [defaults]
        data-dir = "{data_dir}"
        fractions = [0.5]
        hidden = [8, 8]
        epochs = 1
        finetune-epochs = 1
        sleep-steps = 20
        sleep-preset = "mnist_class_incremental"
        record-spikes = "none"
        build-root = "{build_root}"
        [[runs]]
        name = "short"
        [[runs]]
        name = "long"
        epochs = 2
        """.replace("\n        ", "\n"),
        "tiny.toml",
    )
    root = tmp_path / "root"
    code = main(
        ["--study", str(path), "--out", str(root), "--device", "reference", "--no-progress"]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    for k, name in enumerate(["short", "long"], 1):
        assert f"study tiny: run {k}/2 '{name}' -> {root / name}" in captured.out
        record = json.loads((root / name / "config.json").read_text())
        assert record["config"]["epochs"] == k
        assert record["argv"][-2:] == ["--out", str(root / name)]
        assert (root / name / "metrics.csv").is_file()
    assert f"claims report: {ANALYSIS_COMMAND} report {root}/* --out {root}-report" in captured.out
    # Run again: every run resumes, nothing is refused.
    code = main(
        ["--study", str(path), "--out", str(root), "--device", "reference", "--no-progress"]
    )
    assert code == 0, capsys.readouterr().err


@pytest.mark.parametrize("path", sorted((REPO / "studies").glob("*.toml")), ids=lambda p: p.stem)
def test_every_spec_in_studies_is_valid(path, tmp_path):
    study = read_study(path, ["--device", "reference"], tmp_path / "out")
    assert study.runs and len(configs(study)) == len(study.runs)
    assert not (tmp_path / "out").exists()
