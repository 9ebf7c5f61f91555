"""Pruning the trained-baseline cache (brainsleep/cache.py, brainsleep/experiment/baselines.py).

Entries are written by the real :class:`BaselineCache` (tiny weights); ages are set with
os.utime; locks are held as a running cell would hold them.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from filelock import FileLock

from brainsleep.cache import list_baselines, prune_baselines
from brainsleep.experiment.baselines import BaselineCache

REPO = Path(__file__).resolve().parents[1]
DAY = 86400.0


def make_entry(root: Path, key: str, days_ago: float) -> Path:
    path = BaselineCache(root).store(key, [np.ones((3, 2)), np.zeros((2, 1))], {"seed": 0})
    (root / f"{key}.lock").touch()
    ts = time.time() - days_ago * DAY
    os.utime(path, (ts, ts))
    return path


def run_cli(*args: str, cache: Path | str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "brainsleep.cache", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "BRAINSLEEP_BASELINE_CACHE": str(cache)},
        timeout=120,
    )


def test_loading_an_entry_marks_its_last_use(tmp_path):
    old = make_entry(tmp_path, "a" * 40, days_ago=10)
    [info] = list_baselines(tmp_path)
    assert info.key == "a" * 40 and info.size_bytes == old.stat().st_size
    assert BaselineCache(tmp_path).load("a" * 40) is not None
    assert time.time() - old.stat().st_mtime < 60


def test_prune_removes_stale_entries_with_their_locks_and_keeps_recent_ones(tmp_path):
    old = make_entry(tmp_path, "a" * 40, days_ago=10)
    recent = make_entry(tmp_path, "b" * 40, days_ago=1)
    dry = prune_baselines(tmp_path, older_than=dt.timedelta(days=5), dry_run=True)
    assert dry == [old] and old.is_file()
    assert prune_baselines(tmp_path, older_than=dt.timedelta(days=5)) == [old]
    assert not old.exists() and not (tmp_path / f"{'a' * 40}.lock").exists()
    assert recent.is_file() and BaselineCache(tmp_path).load("b" * 40) is not None
    assert prune_baselines(tmp_path, everything=True) == [recent]
    assert list_baselines(tmp_path) == []


def test_prune_skips_an_entry_a_run_holds_and_keeps_its_write_in_progress(tmp_path):
    key = "c" * 40
    entry = make_entry(tmp_path, key, days_ago=10)
    tmp = tmp_path / f".{key}.npz.x1y2.tmp"  # as atomic_write_with names it
    tmp.write_bytes(b"partial")
    messages: list[str] = []
    with FileLock(str(tmp_path / f"{key}.lock")):
        assert prune_baselines(tmp_path, everything=True, log=messages.append) == []
    assert entry.is_file() and tmp.is_file()
    assert messages and "a run holds it" in messages[0]
    # Lock free: the temporary file is a killed write's leftover, removed even without a rule.
    assert prune_baselines(tmp_path) == [tmp]
    assert entry.is_file() and not tmp.exists()


def test_cli_prunes_baselines_only_when_asked(tmp_path):
    builds, cache = tmp_path / "builds", tmp_path / "baselines"
    entry = make_entry(cache, "d" * 40, days_ago=10)
    listed = run_cli("list", "--root", str(builds), cache=cache)
    assert listed.returncode == 0, listed.stderr
    assert f"baseline cache: {cache}: 1 trained baseline(s)" in listed.stdout

    plain = run_cli("prune", "--all", "--root", str(builds), cache=cache)
    assert plain.returncode == 0, plain.stderr
    assert entry.is_file() and "add --baselines" in plain.stdout

    asked = run_cli("prune", "--older-than", "5", "--baselines", "--root", str(builds), cache=cache)
    assert asked.returncode == 0, asked.stderr
    assert f"removed baseline {entry}" in asked.stdout and not entry.exists()


def test_cli_baseline_root_option_moves_it(tmp_path):
    entry = make_entry(tmp_path / "elsewhere", "b" * 40, days_ago=10)
    args = ("--root", str(tmp_path / "builds"), "--baseline-root", str(entry.parent))
    listed = run_cli("list", *args, cache="off")
    assert "1 trained baseline(s)" in listed.stdout
    pruned = run_cli("prune", "--all", "--baselines", *args, cache="off")
    assert pruned.returncode == 0, pruned.stderr
    assert not entry.exists()


def test_cli_says_when_the_baseline_cache_is_off(tmp_path):
    listed = run_cli("list", "--root", str(tmp_path), cache="off")
    assert "baseline cache: off" in listed.stdout
    pruned = run_cli("prune", "--all", "--baselines", "--root", str(tmp_path), cache="off")
    assert pruned.returncode == 0 and "baseline cache is off" in pruned.stdout


def test_unused_locks_go_and_a_dry_run_creates_nothing(tmp_path):
    """A lock without an entry (a run killed while training, or left by a removed write)
    is a leftover; a dry run only looks, so it creates no lock file either."""
    orphan = tmp_path / f"{'e' * 40}.lock"
    orphan.touch()
    tmp = tmp_path / f".{'f' * 40}.npz.a1.tmp"  # a killed write whose lock file is gone
    tmp.write_bytes(b"partial")
    kept = make_entry(tmp_path, "a" * 40, days_ago=0)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert sorted(prune_baselines(tmp_path, dry_run=True)) == sorted([orphan, tmp])
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    busy = tmp_path / f"{'9' * 40}.lock"
    with FileLock(str(busy)):  # a run training this key right now
        assert sorted(prune_baselines(tmp_path)) == sorted([orphan, tmp])
    assert busy.exists() and kept.is_file() and (tmp_path / f"{'a' * 40}.lock").exists()
    assert prune_baselines(tmp_path, everything=True) == [busy, kept]  # leftovers first
    assert not list(tmp_path.iterdir())  # no entry, no lock, nothing
