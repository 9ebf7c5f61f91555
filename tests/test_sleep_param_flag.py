"""--sleep-param NAME=VALUE: one parameter on the command line (sweeps in study specs)."""

from __future__ import annotations

import json

import pytest

from brainsleep.experiment.__main__ import build_parser, config_from_args
from tests.test_experiment import refusal


def cfg_of(*argv):
    return config_from_args(build_parser().parse_args(["--device", "reference", *argv]))


def test_overrides_the_file_name_by_name(tmp_path):
    f = tmp_path / "p.json"
    f.write_text(json.dumps({"max_rate": 50, "inc": 0.1}))
    cfg = cfg_of("--sleep-params", str(f), "--sleep-param", "max_rate=30",
                 "--sleep-param", "v_thresh=[3, 2, 1]")  # fmt: skip
    assert cfg.sleep_params == {"max_rate": 30, "inc": 0.1, "v_thresh": [3, 2, 1]}
    assert cfg_of().sleep_params is None
    assert cfg_of("--sleep-param", "decay=0.99").fingerprint() != cfg_of().fingerprint()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--sleep-param", "max_rate"], "expected NAME=VALUE"),
        (["--sleep-param", "max_rate=fast"], "max_rate must be a number or a list"),
        (["--sleep-param", "inc=1", "--sleep-param", "inc=2"], "inc is given twice"),
        (["--sleep-param", "maxrate=3"], "unknown sleep parameter(s) ['maxrate']"),
        (["--sleep-param", "decay=2"], "decay"),
    ],
)
def test_bad_values_are_refused_in_one_line(argv, message, tmp_path, capsys):
    assert message in refusal([*argv, "--device", "reference"], tmp_path, capsys)
