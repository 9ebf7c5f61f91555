"""Wall times of results directories from their logs (analysis.timing)."""

from __future__ import annotations

import json

import pytest

from analysis.results import ResultsError
from analysis.timing import invocations, run_timing, timing_of_log, wall_text
from brainsleep.formats import LOG_FILE, TIMING_FILE

LOG = """\
2026-12-01 08:14:56,197 INFO brainsleep.experiment: starting results/r (config cc6f8b47)
2026-12-01 08:15:02,925 INFO brainsleep.experiment [pid 1861]: c_s0 baseline accuracy 0.1
2026-12-01 08:38:36,090 ERROR brainsleep.experiment: cell c_s2 failed: ValueError: bad
Traceback (most recent call last):
2026-12-01 09:00:00,000 INFO brainsleep.experiment: resuming results/r (config cc6f8b47)
2026-12-01 09:10:30,500 INFO brainsleep.experiment [pid 7]: c_s2 sleep accuracy 0.2
"""


def test_each_invocation_lasts_from_its_start_to_its_last_line():
    spans = invocations(LOG)
    assert [(a.strftime("%H:%M:%S.%f"), b.strftime("%H:%M:%S.%f")) for a, b in spans] == [
        ("08:14:56.197000", "08:38:36.090000"),
        ("09:00:00.000000", "09:10:30.500000"),
    ]
    timing = timing_of_log(LOG)
    # the 21 min between the two invocations are not counted
    assert timing["wall_s"] == pytest.approx((23 * 60 + 39.893) + (10 * 60 + 30.5))
    assert wall_text(timing["wall_s"]) == "34 min"


def test_a_directory_gives_its_record_or_its_log_or_nothing(tmp_path):
    assert run_timing(tmp_path) is None
    (tmp_path / LOG_FILE).write_text("no invocation here\n")
    assert run_timing(tmp_path) is None
    (tmp_path / LOG_FILE).write_text(LOG)
    assert run_timing(tmp_path) == timing_of_log(LOG)
    record = {"invocations": [{"start": "a", "end": "b", "wall_s": 5.0}], "wall_s": 5.0}
    (tmp_path / TIMING_FILE).write_text(json.dumps(record))
    assert run_timing(tmp_path)["wall_s"] == 5.0  # the record wins (a compact copy's)
    (tmp_path / TIMING_FILE).write_text(json.dumps({"invocations": [], "wall_s": 0}))
    assert run_timing(tmp_path) is None  # nothing recorded is not "0 s"
    (tmp_path / TIMING_FILE).write_text("{}")
    with pytest.raises(ResultsError, match="is not a timing record"):
        run_timing(tmp_path)


@pytest.mark.parametrize(
    "seconds, text",
    [(None, "-"), (44.6, "45 s"), (60, "1 min"), (28 * 60 + 10, "28 min"), (5160, "1 h 26 min")],
)
def test_wall_text(seconds, text):
    assert wall_text(seconds) == text
